"""The book-times benchmark reads the runs CI already makes; these check that it reads them right."""
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import book_times  # noqa: E402
from bench_attacks import timed  # noqa: E402


def test_book_times_sums_cells_per_chapter_and_reads_papermill_durations(tmp_path):
    junit = tmp_path / "nbval.xml"
    junit.write_text('<testsuites><testsuite>'
                     '<testcase classname="book.02_classifiers.ipynb" name="Cell 0" time="2.5" />'
                     '<testcase classname="book.02_classifiers.ipynb" name="Cell 1" time="1.5" />'
                     '<testcase classname="book.03_attacks.ipynb" name="Cell 0" time="10" />'
                     '<testcase classname="tests.test_x" name="not a chapter" time="99" />'
                     '</testsuite></testsuites>')
    (tmp_path / "stage" / "book").mkdir(parents=True)
    (tmp_path / "stage" / "book" / "02_classifiers.ipynb").write_text(
        json.dumps({"metadata": {"papermill": {"duration": 3.0}}, "cells": []}))
    rows = book_times.table(book_times.cold_times(junit), book_times.warm_times(tmp_path / "stage"))
    assert rows == [{"chapter": "02_classifiers", "cold_s": 4.0, "warm_s": 3.0},
                    {"chapter": "03_attacks", "cold_s": 10.0, "warm_s": None},
                    {"chapter": "total", "cold_s": 14.0, "warm_s": 3.0}]


def test_book_times_says_what_to_run_when_nothing_is_there(tmp_path, capsys):
    assert book_times.main(["--junit", str(tmp_path / "none.xml"), "--stage", str(tmp_path), "--out",
                            str(tmp_path / "o.json")]) == 2
    assert "run make test or make book first" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_attack_timing_repeats_until_each_side_has_its_seconds():
    calls = {"fast": 0, "slow": 0}

    def run(name: str, seconds: float):
        def go():
            calls[name] += 1
            time.sleep(seconds)
        return go
    best = timed([run("fast", 0.001), run("slow", 0.01)], torch.device("cpu"), repeats=2, min_seconds=0.05)
    assert calls["fast"] == calls["slow"]  # interleaved rounds
    assert 1 + 10 < calls["fast"] <= 1 + 50  # a warm-up, then rounds until the 1 ms side has 0.05 s, not 2
    assert 0.001 <= best[0] < best[1]
    calls.update(fast=0, slow=0)
    timed([run("fast", 0.0), run("slow", 0.0)], torch.device("cpu"), repeats=3)
    assert calls == {"fast": 4, "slow": 4}
