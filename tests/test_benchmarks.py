"""The book-times benchmark reads the runs CI already makes; these check that it reads them right."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import book_times  # noqa: E402


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
