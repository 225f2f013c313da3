import json

import pytest

from ddsa_core import reproduce


def test_chapters_follow_the_toc():
    names = [c.stem for c in reproduce.chapters()]
    assert names[:3] == ["01_threat_models", "02_classifiers", "03_attacks"]
    assert all(c.exists() for c in reproduce.chapters())


@pytest.mark.parametrize("args,message", [
    (dict(profile="full", dataset="mnist"), "'profile' must be one of"),
    (dict(profile="paper", dataset="imagenet"), "'dataset' must be one of"),
    (dict(profile="quick", dataset="mnist", seed=-2), "'seed' must be an integer >= 0"),
    (dict(profile="quick", dataset="mnist", device="tpu"), "'device' must be"),
])
def test_bad_input_fails_before_anything_runs(args, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        reproduce.run(out=tmp_path, **args)
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_bad_input(capsys):
    assert reproduce.main(["--profile", "fast"]) == 2
    assert "'profile' must be one of" in capsys.readouterr().err


def test_already_done_needs_success_and_same_parameters(tmp_path):
    params = {"profile": "quick", "dataset": "mnist", "seed": 0, "device": "auto"}
    nb = tmp_path / "x.ipynb"
    assert not reproduce.already_done(nb, params)
    nb.write_text(json.dumps({"metadata": {"papermill": {"exception": False, "parameters": params}}}))
    assert reproduce.already_done(nb, params)
    assert not reproduce.already_done(nb, {**params, "seed": 1})
    nb.write_text(json.dumps({"metadata": {"papermill": {"exception": True, "parameters": params}}}))
    assert not reproduce.already_done(nb, params)
