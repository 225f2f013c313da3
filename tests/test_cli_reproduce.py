import json

import pytest

from ddsa_core import cli


def test_chapters_follow_the_toc():
    names = [c.stem for c in cli.chapters()]
    assert names[:3] == ["01_threat_models", "02_classifiers", "03_attacks"]
    assert all(c.exists() for c in cli.chapters())


@pytest.mark.parametrize("args,message", [
    (dict(profile="full", dataset="mnist"), "'profile' must be one of"),
    (dict(profile="paper", dataset="imagenet"), "'dataset' must be one of"),
    (dict(profile="quick", dataset="mnist", seed=-2), "'seed' must be an integer >= 0"),
    (dict(profile="quick", dataset="mnist", device="tpu"), "'device' must be"),
])
def test_bad_input_fails_before_anything_runs(args, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        cli.run_chapters(out=tmp_path, **args)
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_lists_every_chapter_and_writes_nothing(tmp_path, capsys):
    rows = cli.run_chapters("paper", "mnist", out=tmp_path, dry_run=True)
    assert [r["chapter"] for r in rows] == [c.stem for c in cli.chapters()]
    assert {r["status"] for r in rows} == {"would run"} and list(tmp_path.iterdir()) == []


def test_cli_reports_bad_input(capsys):
    assert cli.main(["reproduce", "--profile", "fast"]) == 2
    assert "'profile' must be one of" in capsys.readouterr().err


def test_already_done_needs_success_and_same_parameters(tmp_path):
    params = {"profile": "quick", "dataset": "mnist", "seed": 0, "device": "auto"}
    nb = tmp_path / "x.ipynb"
    assert not cli.already_done(nb, params)
    done = {"exception": None, "end_time": "2026-11-24T08:48:35", "parameters": params}  # as papermill writes it
    nb.write_text(json.dumps({"metadata": {"papermill": done}}))
    assert cli.already_done(nb, params)
    assert not cli.already_done(nb, {**params, "seed": 1})
    nb.write_text(json.dumps({"metadata": {"papermill": {**done, "exception": True}}}))
    assert not cli.already_done(nb, params)


def test_already_done_reads_a_real_papermill_notebook(tmp_path):
    """papermill itself marks a finished run; a chapter run that way is skipped on the next call."""
    import nbformat
    import papermill

    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), parameters={"x": 2}, progress_bar=False)
    assert cli.already_done(out, {"x": 2})
    assert not cli.already_done(out, {"x": 3})


def test_each_chapter_is_a_text_notebook_with_one_parameters_cell():
    """The chapters' sources are MyST Markdown; jupytext reads each into the notebook papermill runs."""
    for chapter in cli.chapters():
        nb = cli.chapter_notebook(chapter)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert chapter.suffix == ".md" and len(tagged) == 1, chapter.name
        assert nb.metadata["kernelspec"]["name"] == "python3"
        first_code = next(c for c in nb.cells if c.cell_type == "code" and c is not tagged[0])
        assert "check_parameters(globals())" in first_code.source, chapter.name
