"""The check of the documented commands (tools/documented_commands.py): what it finds and how it judges."""
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import documented_commands as dc  # noqa: E402


def test_every_documented_command_has_a_check_and_every_check_a_documented_command():
    assert set(dc.documented_commands()) == set(dc.COMMANDS)


def test_commands_are_found_in_inline_code_and_bash_blocks_but_not_elisions(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "README.md").write_text("Run `make   book` or `papermill ... -p x 1`; `profile`, `make -n`.\n"
                                        "```bash\nmake reproduce PROFILE=paper   # = python -m x\n```\n")
    (tmp_path / "book" / "intro.md").write_text("`python -m ddsa_core record --profile paper\n--dataset mnist`\n")
    found = dc.documented_commands(tmp_path)
    assert found == {"make book": "README.md", "make reproduce PROFILE=paper": "README.md",
                     "python -m ddsa_core record --profile paper --dataset mnist": "book/intro.md"}


def test_a_dry_run_appends_the_flag_each_tool_knows():
    assert dc.as_dry_run("make lab") == "make -n lab"
    assert dc.as_dry_run("papermill a.ipynb b.ipynb") == "papermill a.ipynb b.ipynb --prepare-only"
    assert dc.as_dry_run("python -m ddsa_core record") == "python -m ddsa_core record --dry-run"


def test_expect_fails_on_a_bad_exit_code_or_a_missing_output():
    ok = subprocess.CompletedProcess("x", 0, stdout="[record] classifier: would run\n", stderr="")
    assert dc.expect(r"^\[record\] classifier: ")(ok) is None
    assert "no " in dc.expect(r"^\[record\] gray_box: ")(ok)
    assert "exit code 2" in dc.expect(".")(subprocess.CompletedProcess("x", 2, stdout="", stderr="error: bad"))
