"""Tests for ddsa_core.diagnostics: the float thresholds, a hand-computed case, and a saturated model."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddsa_core.diagnostics import CANCEL_MARGIN, UNDERFLOW_MARGIN, saturation, top2_margin, true_margin


def _logit_grad(margin: float, dtype: torch.dtype) -> torch.Tensor:
    """dCE/dz for logits (0, -margin) and label 0, as PyTorch computes it."""
    z = torch.tensor([[0.0, -margin]], dtype=dtype, requires_grad=True)
    F.cross_entropy(z, torch.tensor([0]), reduction="sum").backward()
    return z.grad[0]


@pytest.mark.parametrize("name,dtype", [("float32", torch.float32), ("float64", torch.float64)])
def test_thresholds_are_where_pytorch_rounds_to_zero(name, dtype):
    below, above = CANCEL_MARGIN[name] - 0.01, CANCEL_MARGIN[name] + 0.01
    assert _logit_grad(below, dtype)[0] != 0 and _logit_grad(above, dtype)[0] == 0  # p_y - 1
    assert _logit_grad(above, dtype)[1] != 0  # the rival's term survives
    below, above = UNDERFLOW_MARGIN[name] - 0.01, UNDERFLOW_MARGIN[name] + 0.01
    assert _logit_grad(below, dtype)[1] != 0 and (_logit_grad(above, dtype) == 0).all()


def _three_class_model() -> nn.Module:
    """logits = (x0, x1, x1) for inputs x = (x0, x1)."""
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    return model


def test_hand_computed_case():
    """Margins 10, 20, 50, 120 on logits (m, 0, 0), label 0. Exactly, grad_x CE is proportional
    to (-1, 1). Where p_y - 1 rounds to 0 (m >= 16.6 in float32, 36.7 in float64) only the x1
    entry (> 0) is left; where e^-m underflows too (m >= 104 in float32) nothing is."""
    x = torch.tensor([[10.0, 0.0], [20.0, 0.0], [50.0, 0.0], [120.0, 0.0]])
    y = torch.zeros(4, dtype=torch.int64)
    out = saturation(_three_class_model(), x, y)
    expected = {
        "images": 4, "accuracy": 1.0, "median_top2_margin": 35.0,
        "above_cancel_float32": 0.75, "above_cancel_float64": 0.5, "above_underflow_float32": 0.25,
        "zero_grad_entries_exact": 0.0,
        # float32 per image: both entries, x1 only, x1 only, none
        "zero_grad_images_float32": 0.25, "zero_grad_entries_float32": 4 / 8, "sign_agreement_float32": 4 / 8,
        # float64: both, both, x1 only, x1 only
        "zero_grad_images_float64": 0.0, "zero_grad_entries_float64": 2 / 8, "sign_agreement_float64": 6 / 8,
    }
    assert out == pytest.approx(expected)


def test_margins():
    z = torch.tensor([[3.0, 1.0, -2.0], [0.0, 5.0, 4.0]])
    y = torch.tensor([0, 0])
    torch.testing.assert_close(top2_margin(z), torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(true_margin(z, y), torch.tensor([2.0, -5.0]))


@pytest.fixture(scope="module")
def batch(mnist_test_batch):
    x, y = mnist_test_batch
    return x[:100], y[:100]


def test_scaling_the_last_layer_masks_the_gradient(mnist_classifier, batch):
    """The same classifier with logits x30 predicts the same, but its float32 CE gradient is
    exactly zero for most images and its signs mostly wrong; float64 has no zero image."""
    x, y = batch
    scaled = copy.deepcopy(mnist_classifier)
    with torch.no_grad():
        scaled[-1].weight.mul_(30)
        scaled[-1].bias.mul_(30)
    plain, sat = saturation(mnist_classifier, x, y, batch_size=64), saturation(scaled, x, y, batch_size=64)
    assert sat["accuracy"] == plain["accuracy"]
    assert sat["median_top2_margin"] == pytest.approx(30 * plain["median_top2_margin"], rel=1e-3)
    assert plain["zero_grad_images_float32"] == 0 and sat["zero_grad_images_float32"] > 0.5
    assert sat["zero_grad_entries_float32"] > plain["zero_grad_entries_float32"] + 0.2
    assert plain["sign_agreement_float32"] > 0.98 and sat["sign_agreement_float32"] < 0.3
    assert sat["zero_grad_images_float64"] == 0
    assert sat["sign_agreement_float32"] < sat["sign_agreement_float64"] < plain["sign_agreement_float64"]
    # on the unsaturated model the only zeros are those of the exact gradient (architecture)
    assert plain["zero_grad_entries_float32"] == pytest.approx(plain["zero_grad_entries_exact"], abs=1e-3)


def test_batch_size_does_not_change_the_result(mnist_classifier, batch):
    x, y = batch[0][:30], batch[1][:30]
    assert saturation(mnist_classifier, x, y, batch_size=7) == pytest.approx(saturation(mnist_classifier, x, y))


def test_model_mode_restored():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5)).train()
    saturation(model, torch.rand(4, 2), torch.zeros(4, dtype=torch.int64))
    assert all(m.training for m in model.modules())
    assert all(p.grad is None and p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("args,field", [
    ((lambda x: x, torch.rand(2, 2), torch.zeros(2, dtype=torch.int64)), "model"),
    ((nn.Linear(2, 3), torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)), "x"),
    ((nn.Linear(2, 3), torch.rand(0, 2), torch.zeros(0, dtype=torch.int64)), "x"),
    ((nn.Linear(2, 3), torch.rand(2, 2), torch.zeros(2)), "y"),
    ((nn.Linear(2, 3), torch.rand(2, 2), torch.zeros(3, dtype=torch.int64)), "y"),
])
def test_bad_arguments_raise(args, field):
    with pytest.raises(ValueError, match=field):
        saturation(*args)


def test_bad_batch_size_raises():
    with pytest.raises(ValueError, match="batch_size"):
        saturation(nn.Linear(2, 3), torch.rand(2, 2), torch.zeros(2, dtype=torch.int64), batch_size=0)


def test_thresholds_are_the_closed_forms():
    assert CANCEL_MARGIN["float32"] == pytest.approx(16.6355, abs=1e-4)
    assert UNDERFLOW_MARGIN["float32"] == pytest.approx(103.972, abs=1e-3)
    assert CANCEL_MARGIN["float64"] == pytest.approx(53 * math.log(2))


# --- the reports built on it -------------------------------------------------------------------

def test_gradient_variants_table_puts_the_variants_beside_the_paper():
    from ddsa_core import paper, tables

    rows = [{"attack": a, "variant": v, "accuracy": acc, "images": 10, "craft_s": 1.0}
            for a, accs in (("pgd", (0.05, 0.01, 0.0)), ("fgsm", (0.6, 0.4, 0.2)))
            for v, acc in zip(("float32", "float64", "lse_margin"), accs)]
    table = tables.gradient_variants_table({"rows": rows}, "mnist")
    assert list(table.index) == ["fgsm", "pgd"]  # the paper's row order
    assert list(table.columns) == ["paper", *tables.VARIANT_LABELS.values(), "images"]
    assert table.loc["fgsm", "paper"] == paper.GRAY_BOX["mnist"]["no_defense"]["fgsm"]
    assert table.loc["pgd", tables.VARIANT_LABELS["float64"]] == 0.01
    assert "paper" not in tables.gradient_variants_table({"rows": rows}, "mnist", "craft_s").columns


def test_recorded_gradient_masking_is_pending_when_absent(tmp_path, monkeypatch):
    from ddsa_core import records, tables

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.gradient_diagnostics("cifar10") == {"masking": None, "variants": None, "device": records.PENDING}
    frame = tables.saturation_frame({"this run": {"saturation": dict.fromkeys(tables.SATURATION_LABELS, 0.5)},
                                      "recorded": None})
    assert (frame["recorded"] == "pending").all() and (frame["this run"] == 0.5).all()
    out = saturation(_three_class_model(), torch.tensor([[10.0, 0.0]]), torch.zeros(1, dtype=torch.int64))
    assert set(out) == set(tables.SATURATION_LABELS)  # every statistic has a row label
