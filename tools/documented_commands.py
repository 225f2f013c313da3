"""Run the commands the README and the introduction document, as written, and check what the text says.

``python tools/documented_commands.py`` (CI runs it after ``make book``). Every shell command quoted in
``README.md`` or ``book/intro.md`` must appear in :data:`COMMANDS`, so a newly documented command cannot
go unchecked. Each is handled in one of three ways:

- ``run``: run exactly as written; its exit code and output are checked against what the text promises.
- ``dry``: a command that needs a GPU or hours. It runs as written with ``--dry-run`` appended (or, for
  a ``make`` target, ``make -n``, and papermill's ``--prepare-only``), which checks that the command, its
  arguments and the files it names exist, and what it would run, without the compute.
- ``ci``: one of CI's own steps (``make test``, ``make book``...), run and timed by ``.ci/run`` itself.

It prints one Markdown row per command and exits 1 if any check fails.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "REPRODUCING.md", "book/intro.md")
PY = str(ROOT / ".venv" / "bin" / "python")
# A quoted span is a command when it starts with one of these words ("make -n" is a flag, not a command).
COMMAND_START = re.compile(r"^(make [a-z]|(python|\.venv/bin/\S+|bash|papermill|jupyter|pip)\s)")


def documented_commands(root: Path = ROOT) -> dict[str, str]:
    """Every command quoted in the docs, whitespace-normalised, mapped to the file that quotes it.

    Inline code spans and the lines of fenced ``bash`` blocks count; a trailing ``# comment`` is dropped,
    and a span with ``...`` in it is an elided example, not a command.
    """
    found: dict[str, str] = {}
    for doc in DOCS:
        if not (root / doc).exists():  # a doc that is gone leaves its commands "no longer documented" in main()
            continue
        text = (root / doc).read_text()
        spans = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        lines = [line for block in spans for line in block.splitlines()]
        inline = re.findall(r"(?<!`)`([^`\n][^`]*?)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        for span in lines + inline:
            command = " ".join(span.split("#")[0].split())
            if COMMAND_START.match(command + " ") and "..." not in command:
                found.setdefault(command, doc)
    return found


@dataclass
class Check:
    mode: str  # "run", "dry" or "ci"
    check: Callable[[subprocess.CompletedProcess], str | None] | None = None  # None: fine; else what is wrong
    note: str = ""


def sh(command: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def expect(pattern: str) -> Callable[[subprocess.CompletedProcess], str | None]:
    """Exit code 0 and ``pattern`` (a regex) in the output."""
    def check(proc):
        if proc.returncode != 0:
            return f"exit code {proc.returncode}: {(proc.stderr or proc.stdout)[-300:]!r}"
        return None if re.search(pattern, proc.stdout + proc.stderr, flags=re.M) else f"no {pattern!r} in the output"
    return check


def every_chapter(status: str) -> Callable[[subprocess.CompletedProcess], str | None]:
    from ddsa_core.cli import chapters
    return expect(rf"^{len(chapters())} chapters, .*{re.escape(status)}")


def reproduce_wrote(folder: str) -> Callable[[subprocess.CompletedProcess], str | None]:
    """The text: ``reproduce`` writes each executed chapter to ``folder``."""
    def check(proc):
        from ddsa_core.cli import chapters
        wrong = expect(r"^\d+ chapters, ")(proc)
        missing = [f"{c.stem}.ipynb" for c in chapters() if not (ROOT / folder / f"{c.stem}.ipynb").exists()]
        return wrong or (f"no {missing} in {folder}" if missing else None)
    return check


def paper_stages_minutes(proc) -> str | None:
    """REPRODUCING.md: "The committed MNIST run took N min on one H100": one of the runs this command totals."""
    wrong = expect(r"\*\*total\*\*")(proc)
    if wrong:
        return wrong
    said = float(re.search(r"committed MNIST run took (\d+(?:\.\d+)?) min on one H100",
                           (ROOT / "REPRODUCING.md").read_text()).group(1))
    printed = [float(m) for m in re.findall(r"^\| total of the run \| [^|]*H100[^|]*\|.*\(([\d.]+) min\)", proc.stdout, re.M)]
    return None if any(abs(m - said) <= 0.5 for m in printed) else f"its H100 runs took {printed} min; the README says {said}"


def prepared_with(parameters: dict) -> Callable[[subprocess.CompletedProcess], str | None]:
    """papermill's ``--prepare-only`` wrote ``out.ipynb`` with these parameters injected."""
    def check(proc):
        out = ROOT / "out.ipynb"
        try:
            if proc.returncode != 0:
                return f"exit code {proc.returncode}: {proc.stderr[-300:]!r}"
            got = json.loads(out.read_text())["metadata"]["papermill"]["parameters"]
            return None if got == parameters else f"parameters {got}, expected {parameters}"
        finally:
            out.unlink(missing_ok=True)
    return check


def make_runs(expanded: str) -> Callable[[subprocess.CompletedProcess], str | None]:
    """``make -n``: the target exists and runs ``expanded`` (the text says it "=" that command)."""
    return expect(re.escape(expanded).replace(r"\ ", r"\s+"))


COMMANDS: dict[str, Check] = {
    "make test": Check("ci", note="CI's first step"),
    "make test-slow": Check("ci", note="CI's second step"),
    "make book": Check("ci", note="CI's step after the tests and benchmarks (= make execute html linkcheck)"),
    "make execute": Check("ci", note="part of make book"),
    "make html": Check("ci", note="part of make book"),
    "make browser-test": Check("ci", note="CI's last step"),
    "bash .ci/run": Check("ci", note="CI itself"),
    "make lab": Check("run", note="JupyterLab answers on localhost with the chapters, DDSA_DATA and DDSA_CACHE set"),
    "python -m ddsa_core reproduce --profile quick --dataset mnist":
        Check("run", reproduce_wrote("_build/executed/quick/mnist/book"), "every chapter, warm cache"),
    "python benchmarks/paper_stages.py": Check("run", paper_stages_minutes, "the total matches the README's minutes"),
    "make reproduce PROFILE=paper DATASET=mnist":
        Check("dry", make_runs("python -m ddsa_core reproduce --profile paper --dataset mnist"), "make -n"),
    "python -m ddsa_core reproduce --profile paper --dataset mnist": Check("dry", every_chapter("would run")),
    ".venv/bin/jupytext --to ipynb -o - book/02_classifiers.md | .venv/bin/papermill - out.ipynb -p profile paper -p dataset mnist":
        Check("dry", prepared_with({"profile": "paper", "dataset": "mnist"}), "papermill --prepare-only"),
    "python -m ddsa_core record --profile paper --dataset mnist": Check("dry", expect(r"^\[record\] classifier: ")),
    "python -m ddsa_core record": Check("dry", expect(r"^\[record\] classifier: ")),
    "python -m ddsa_core record --profile reduced --dataset cifar10 --stages classifier attacks_no_defense gray_box denoised_examples":
        Check("dry", expect(r"^\[record\] denoised_examples: ")),
    "python -m ddsa_core record --profile paper --dataset mnist --stages classifier_variants":
        Check("dry", expect(r"^\[record\] classifier_variants: ")),
    "python -m ddsa_core record --profile reduced --dataset cifar10 --stages classifier_variants":
        Check("dry", expect(r"^\[record\] classifier_variants: ")),
    "make execute html PROFILE=paper DATASET=mnist":
        Check("dry", make_runs("python -m ddsa_core reproduce --profile paper --dataset mnist"), "make -n"),
}


def as_dry_run(command: str) -> str:
    if command.startswith("make "):
        return command.replace("make ", "make -n ", 1)
    if "papermill" in command:
        return command + " --prepare-only"
    return command + " --dry-run"


def make_folders() -> dict[str, str]:
    """DDSA_DATA and DDSA_CACHE as the Makefile sets them (``?=``: the environment's, when set)."""
    shared = ROOT.parent / "shared" / "data"
    default_data = str(shared) if shared.exists() else str(Path.home() / ".cache" / "ddsa" / "data")
    return {"DDSA_DATA": os.environ.get("DDSA_DATA", default_data),
            "DDSA_CACHE": os.environ.get("DDSA_CACHE", str(ROOT / ".cache"))}


def server_environ(group: int) -> dict[str, str]:
    """The environment of the jupyter-lab process in process group ``group``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pgid = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            cmdline = (stat.parent / "cmdline").read_text()
            if pgid == group and "jupyter-lab" in cmdline:
                pairs = (stat.parent / "environ").read_text().split("\0")
                return dict(kv.split("=", 1) for kv in pairs if "=" in kv)
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return {}


def check_lab(timeout: float = 180) -> str | None:
    """``make lab`` as written: JupyterLab serves book/'s chapters with make's data and cache folders."""
    from ddsa_core.cli import chapters
    t0 = time.perf_counter()
    token = "documented-commands"
    env = {**os.environ, "JUPYTER_TOKEN": token}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen("make lab LAB_ARGS='--no-browser --port=0'", shell=True, cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            url = None
            while url is None and time.perf_counter() - t0 < timeout and proc.poll() is None:
                time.sleep(1)
                log.seek(0)
                found = re.search(r"(http://(?:127\.0\.0\.1|localhost):\d+)/", log.read())
                url = found and found.group(1)
            if url is None:
                log.seek(0)
                return f"no server URL within {timeout:.0f} s: {log.read()[-400:]!r}"
            listing = json.load(urllib.request.urlopen(f"{url}/api/contents?token={token}", timeout=30))
            names = {item["name"] for item in listing["content"]}
            missing = [c.name for c in chapters() if c.name not in names]
            if missing:
                return f"the file browser lacks {missing}"
            environ = server_environ(proc.pid)
            for name, wanted in make_folders().items():
                if environ.get(name) != wanted:
                    return f"JupyterLab runs with {name}={environ.get(name)!r}, not make's {wanted!r}"
            return None
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    documented = documented_commands()
    unchecked = sorted(set(documented) - set(COMMANDS))
    stale = sorted(set(COMMANDS) - set(documented))
    failures = [f"documented in {documented[c]} but not checked here: {c!r}" for c in unchecked]
    failures += [f"checked here but no longer documented: {c!r}" for c in stale]
    print("| command | doc | how | result | s |\n|---|---|---|---|---:|")
    for command, how in COMMANDS.items():
        if command in stale:
            continue
        t0, problem = time.perf_counter(), None
        if how.mode == "ci":
            result = f"run by CI ({how.note})"
        else:
            if command == "make lab":
                problem = check_lab()
            else:
                ran = as_dry_run(command) if how.mode == "dry" else command
                problem = how.check(sh(ran))
            result = "ok" if problem is None else f"FAILED: {problem}"
            if problem:
                failures.append(f"{command!r}: {problem}")
        shown = command if how.mode != "dry" else f"{command} ({how.note or as_dry_run(command).replace(command, '').strip()})"
        print(f"| `{shown}` | {documented[command]} | {how.mode} | {result} | {time.perf_counter() - t0:.0f} |", flush=True)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
