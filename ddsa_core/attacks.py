"""The paper's five attacks (Sec. II-B): FGSM, Rand+FGSM, MIM, PGD and C&W-L2.

``build(name, model, dataset, **overrides)`` returns a callable ``attack(x, y) -> x_adv``.
Defaults are the paper's settings (Sec. IV, Tables 6-9) and, where the paper is silent, the
CleverHans v2.1 defaults it was built on:

======  ===================================================================================
fgsm    eps 0.3 (mnist) / 0.2 (cifar10)
rfgsm   eps as fgsm, alpha 0.05
mim     eps as fgsm, eps_iter 0.06, nb_iter 10, decay 1.0
pgd     eps as fgsm, eps_iter 0.01, nb_iter 40, rand_init True
cw      confidence 10, lr 1.0 (Adam), max_iter 1000, binary_search_steps 5,
        initial_const 1e-2, abort_early True (untargeted L2)
======  ===================================================================================

Every attack is untargeted, works on images in [0, 1] of shape (N, C, H, W), takes integer
labels, runs the model in eval mode and restores each module's train/eval flag afterwards,
differentiates with respect to the input only (model parameters get no ``.grad``), and runs on
whatever device ``x`` is on. The loss of the L-inf attacks is cross-entropy on the model's
logits. FGSM and PGD wrap torchattacks 3.5.1; Rand+FGSM, MIM and C&W are our own because
torchattacks' versions differ from the papers (see each class).

Gradient options of the four L-inf attacks (not the paper's protocol; defaults are the paper's):

``precision="float64"``
    Attack a float64 copy of the model (inputs cast to double, the adversarial images cast back
    to the input's dtype). The cross-entropy's input gradient then underflows only at logit
    margins above 1075 ln 2 ~ 745 instead of 150 ln 2 ~ 104, but its true-class term
    p_y - 1 still rounds to 0 above 53 ln 2 ~ 36.7 (24 ln 2 ~ 16.6 in float32).
``loss="lse_margin"``
    Differentiate L(z, y) = log sum_{j != y} exp(z_j - z_y) instead of CE = log(1 + exp(L)).
    grad CE = (1 - p_y) grad L with 1 - p_y > 0 per sample, and these attacks use only
    sign(grad) or grad / mean|grad| per sample, so in exact arithmetic the attack is the same;
    in floating point L's gradient has neither the cancellation in p_y - 1 nor the underflow.
    FGSM and PGD then run our own loops, as torchattacks' hard-code cross-entropy.

An option at its default is left out of ``params``, so the paper's attacks keep their cache keys;
any other value is in ``params`` and so in every adversarial set's cache key.
See :mod:`ddsa_core.diagnostics` for the checks that show when these options matter.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

SHAPES: dict[str, tuple[int, int, int]] = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
NUM_CLASSES = 10
EPS: dict[str, float] = {"mnist": 0.3, "cifar10": 0.2}  # paper, Tables 6-9

PRECISIONS = ("float32", "float64")  # dtype the L-inf attacks differentiate in (paper: float32)
LOSSES = ("ce", "lse_margin")  # loss the L-inf attacks differentiate (paper: cross-entropy)
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Optional parameters of the L-inf attacks, at their defaults (the paper's protocol).
GRADIENT_OPTIONS: dict[str, str] = {"precision": "float32", "loss": "ce"}

# Override rules: parameter -> (kind, predicate, what is allowed). Kinds: float, int, bool, str.
_Rule = tuple[type, Callable[[Any], bool], str]
PARAMS: dict[str, _Rule] = {
    "eps": (float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "alpha": (float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1], below eps"),
    "eps_iter": (float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]"),
    "nb_iter": (int, lambda v: v >= 1, "an int >= 1"),
    "rand_init": (bool, lambda v: True, "a bool"),
    "decay": (float, lambda v: 0.0 <= v < math.inf, "a finite number >= 0"),
    "confidence": (float, lambda v: 0.0 <= v < math.inf, "a finite number >= 0"),
    "lr": (float, lambda v: 0.0 < v < math.inf, "a finite number > 0"),
    "max_iter": (int, lambda v: v >= 1, "an int >= 1"),
    "binary_search_steps": (int, lambda v: v >= 1, "an int >= 1"),
    "initial_const": (float, lambda v: 0.0 < v < math.inf, "a finite number > 0"),
    "abort_early": (bool, lambda v: True, "a bool"),
    "precision": (str, lambda v: v in PRECISIONS, f"one of {', '.join(map(repr, PRECISIONS))}"),
    "loss": (str, lambda v: v in LOSSES, f"one of {', '.join(map(repr, LOSSES))}"),
}


def _validate_param(key: str, value: Any) -> Any:
    """Check one override against PARAMS; return it as float/int/bool or raise ValueError."""
    kind, ok, allowed = PARAMS[key]
    if kind is bool:
        typed = isinstance(value, bool)
    elif kind is str:
        typed = isinstance(value, str)
    elif kind is int:
        typed = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:
        typed = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not typed or not ok(kind(value)):
        raise ValueError(f"{key} must be {allowed}, got {value!r}")
    return kind(value)


def _check_inputs(x: Any, y: Any, dataset: str) -> None:
    """Raise ValueError unless x is a float (N, C, H, W) batch in [0, 1] and y int64 (N,) labels."""
    shape = SHAPES[dataset]
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() != 4 or tuple(x.shape[1:]) != shape or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, {', '.join(map(str, shape))}) with N >= 1 for "
                         f"{dataset}, got {tuple(x.shape)}")
    lo, hi = x.detach().aminmax()
    if not (lo >= 0 and hi <= 1):  # also false for NaN
        raise ValueError(f"x values must lie in [0, 1], found min {lo.item()} and max {hi.item()}")
    if not isinstance(y, Tensor) or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 torch.Tensor, got {getattr(y, 'dtype', type(y))}")
    if tuple(y.shape) != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    if y.device != x.device:
        raise ValueError(f"y must be on x's device {x.device}, got {y.device}")
    if not bool(((y >= 0) & (y < NUM_CLASSES)).all()):
        raise ValueError(f"y values must be class indices in [0, {NUM_CLASSES})")


def lse_margin(logits: Tensor, y: Tensor) -> Tensor:
    """L(z, y) = log sum_{j != y} exp(z_j - z_y) per sample; cross-entropy is log(1 + exp(L)).

    Its gradient is CE's divided by 1 - p_y, computed without rounding p_y - 1 or exp(-margin).
    """
    true_class = F.one_hot(y, logits.shape[1]).bool()
    diff = (logits - logits.gather(1, y[:, None])).masked_fill(true_class, -math.inf)
    return torch.logsumexp(diff, dim=1)


def _input_grad(model: nn.Module, x: Tensor, y: Tensor, loss: str = "ce") -> Tensor:
    """Gradient of the summed loss J(x, y) w.r.t. x only (per-sample, batch-size free).

    ``loss`` is "ce" (cross-entropy, the paper's) or "lse_margin" (see :func:`lse_margin`).
    """
    x = x.detach().requires_grad_(True)
    logits = model(x)
    total = F.cross_entropy(logits, y, reduction="sum") if loss == "ce" else lse_margin(logits, y).sum()
    return torch.autograd.grad(total, x)[0]


def _project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Clip x_adv to the L-inf ball of radius eps around x, then to the image box [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


class Attack:
    """Base class: validated parameters as attributes and in ``params``, input checks, eval mode."""

    name: str = ""
    #: Optional parameters and their defaults; one at its default is left out of ``params``.
    options: dict[str, Any] = {}
    precision: str = "float32"
    loss: str = "ce"

    @staticmethod
    def defaults(dataset: str) -> dict[str, Any]:
        """The paper's parameter values for this attack on ``dataset``."""
        raise NotImplementedError

    def __init__(self, model: nn.Module, dataset: str, **params: Any) -> None:
        self.model = model
        self.dataset = dataset
        for key, value in params.items():
            setattr(self, key, value)
        self.params: dict[str, Any] = {"name": self.name, "dataset": dataset, **params}

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Check inputs, run the attack in eval mode, restore every module's mode; return x_adv.

        With ``precision="float64"`` the attack runs on a float64 copy of the model (the model
        itself is left as it is) and x_adv comes back in ``x``'s dtype.
        """
        _check_inputs(x, y, self.dataset)
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            model, work = self.model, x.detach()
            if self.precision != "float32":
                dtype = _DTYPES[self.precision]
                model, work = copy.deepcopy(self.model).to(dtype).eval(), work.to(dtype)
            with torch.enable_grad():
                return self._run(model, work, y).detach().to(x.dtype)
        finally:
            for module, training in modes:
                module.training = training

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The attack proper on ``model`` (in eval mode), on validated inputs."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k != "name")
        return f"{type(self).__name__}({args})"


class FGSM(Attack):
    """FGSM, eq. (1): x' = clip(x + eps * sign(grad_x J(x, y)), 0, 1). Wraps torchattacks.FGSM."""

    name = "fgsm"
    options = GRADIENT_OPTIONS
    eps: float

    @staticmethod
    def defaults(dataset: str) -> dict[str, Any]:
        return {"eps": EPS[dataset]}

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        if self.loss == "ce":
            attack = torchattacks.FGSM(model, eps=self.eps)
            attack.set_device(x.device)
            return attack(x, y)
        return (x + self.eps * _input_grad(model, x, y, self.loss).sign()).clamp(0.0, 1.0)


class RandFGSM(Attack):
    """Rand+FGSM (Tramer et al.), eq. (6)-(7): one random sign step of alpha, one FGSM step.

    x_hat = clip(x + alpha * sign(N(0, I))), x' = clip(x_hat + (eps - alpha) * sign(grad J(x_hat))).
    Eq. (7) in the paper omits the sign; Tramer's definition has it, so the total perturbation is
    at most eps. torchattacks.RFGSM instead steps by alpha for 10 steps, which cannot express this.
    The noise uses the global torch RNG: seed it for reproducible examples. It is drawn in
    float32 whatever the precision, so a float64 run starts from the same x_hat.
    """

    name = "rfgsm"
    options = GRADIENT_OPTIONS
    eps: float
    alpha: float

    @staticmethod
    def defaults(dataset: str) -> dict[str, Any]:
        return {"eps": EPS[dataset], "alpha": 0.05}

    def __init__(self, model: nn.Module, dataset: str, **params: Any) -> None:
        if not params["alpha"] < params["eps"]:
            raise ValueError(f"alpha must be below eps for rfgsm, got alpha={params['alpha']} "
                             f"and eps={params['eps']}")
        super().__init__(model, dataset, **params)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        noise = torch.randn(x.shape, dtype=torch.float32, device=x.device).sign().to(x.dtype)
        x_hat = (x + self.alpha * noise).clamp(0.0, 1.0)
        grad = _input_grad(model, x_hat, y, self.loss)
        return (x_hat + (self.eps - self.alpha) * grad.sign()).clamp(0.0, 1.0)


class MIM(Attack):
    """Momentum Iterative Method (Dong et al.), eq. (2)-(3), as CleverHans v2.1 runs it.

    g_{t+1} = decay * g_t + grad / mean|grad|: eq. (2)'s per-sample L1 norm divided by the pixel
    count, as CleverHans (same signs), with its avoid_zero_div guard 1e-12; then
    x_{t+1} = clip_eps(x_t + eps_iter * sign(g_{t+1})).
    Eq. (3) steps by eps; CleverHans steps by eps_iter and projects onto the eps-ball, which we do.
    torchattacks.MIFGSM has no guard: a zero gradient makes its momentum NaN for good and, as
    torch.sign(NaN) == 0, that sample silently stops moving.
    """

    name = "mim"
    options = GRADIENT_OPTIONS
    eps: float
    eps_iter: float
    nb_iter: int
    decay: float

    @staticmethod
    def defaults(dataset: str) -> dict[str, Any]:
        return {"eps": EPS[dataset], "eps_iter": 0.06, "nb_iter": 10, "decay": 1.0}

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        for _ in range(self.nb_iter):
            grad = _input_grad(model, x_adv, y, self.loss)
            grad = grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            momentum = self.decay * momentum + grad
            x_adv = _project(x_adv + self.eps_iter * momentum.sign(), x, self.eps)
        return x_adv


class PGD(Attack):
    """PGD (Madry et al.), the inner maximisation of eq. (4), with CleverHans v2.1 defaults.

    Random start uniform in the eps-ball (clipped to [0, 1]), nb_iter steps of
    x <- clip_eps(x + eps_iter * sign(grad J)). Wraps torchattacks.PGD with every argument explicit;
    with ``loss="lse_margin"`` runs the same loop itself (same random-start draws).
    """

    name = "pgd"
    options = GRADIENT_OPTIONS
    eps: float
    eps_iter: float
    nb_iter: int
    rand_init: bool

    @staticmethod
    def defaults(dataset: str) -> dict[str, Any]:
        return {"eps": EPS[dataset], "eps_iter": 0.01, "nb_iter": 40, "rand_init": True}

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        if self.loss == "ce":
            attack = torchattacks.PGD(model, eps=self.eps, alpha=self.eps_iter,
                                      steps=self.nb_iter, random_start=self.rand_init)
            attack.set_device(x.device)
            return attack(x, y)
        x_adv = x.clone()
        if self.rand_init:
            x_adv = (x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps)).clamp(0.0, 1.0)
        for _ in range(self.nb_iter):
            step = self.eps_iter * _input_grad(model, x_adv, y, self.loss).sign()
            x_adv = _project(x_adv + step, x, self.eps)
        return x_adv


class CarliniWagnerL2(Attack):
    """Untargeted C&W-L2 (Carlini & Wagner 2017), eq. (5), as in Carlini's / CleverHans' code.

    Minimises ||x' - x||_2^2 + c * f(x') over w, x' = (tanh(w) + 1) / 2, with
    f = max(Z_y - max_{i != y} Z_i, -confidence) on the logits Z, Adam (lr) from w = atanh(0.999999
    (2x - 1)) so pixels at exactly 0 or 1 can move. c is binary-searched per sample: on success
    upper = min(upper, c), else lower = max(lower, c); c = (lower + upper) / 2 once an upper bound
    exists, else c * 10. Success means max_{i != y} Z_i - Z_y >= confidence. Abort-early (loss not
    down by 0.01% over max_iter // 10 iterations) is judged on the summed batch loss, as CleverHans
    does. Vectorised over the batch. Returns per input the smallest-L2 successful example, or the
    clean x where none succeeded; ``last_success`` then holds which inputs succeeded.
    torchattacks.CW lacks the binary search, ignores confidence in success, cannot move 0/1 pixels
    and takes the "other" logit as max((1 - onehot) * Z), wrong when logits are negative.
    """

    name = "cw"
    confidence: float
    lr: float
    max_iter: int
    binary_search_steps: int
    initial_const: float
    abort_early: bool

    @staticmethod
    def defaults(dataset: str) -> dict[str, Any]:
        return {"confidence": 10.0, "lr": 1.0, "max_iter": 1000, "binary_search_steps": 5,
                "initial_const": 1e-2, "abort_early": True}

    def __init__(self, model: nn.Module, dataset: str, **params: Any) -> None:
        super().__init__(model, dataset, **params)
        self.last_success: Tensor | None = None

    def _margin(self, logits: Tensor, y: Tensor) -> Tensor:
        """max_{i != y} Z_i - Z_y per sample (the true class masked with -inf)."""
        true_class = F.one_hot(y, logits.shape[1]).bool()
        other = logits.masked_fill(true_class, -math.inf).amax(dim=1)
        return other - logits.gather(1, y[:, None]).squeeze(1)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        n = x.shape[0]
        w0 = torch.atanh((2 * x - 1) * 0.999999)
        lower = torch.zeros(n, device=x.device, dtype=x.dtype)
        upper = torch.full_like(lower, 1e10)
        const = torch.full_like(lower, self.initial_const)
        best_l2 = torch.full_like(lower, math.inf)
        best_adv = x.clone()
        check_every = max(self.max_iter // 10, 1)
        for _ in range(self.binary_search_steps):
            modifier = torch.zeros_like(x, requires_grad=True)
            optimizer = torch.optim.Adam([modifier], lr=self.lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            previous = math.inf
            for step in range(self.max_iter):
                x_adv = (torch.tanh(w0 + modifier) + 1) / 2
                l2 = (x_adv - x).pow(2).flatten(1).sum(dim=1)
                margin = self._margin(model(x_adv), y)
                loss = (l2 + const * (-margin).clamp_min(-self.confidence)).sum()
                modifier.grad = torch.autograd.grad(loss, modifier)[0]
                with torch.no_grad():
                    success = margin >= self.confidence
                    succeeded |= success
                    better = success & (l2 < best_l2)
                    best_l2 = torch.where(better, l2, best_l2)
                    best_adv = torch.where(better[:, None, None, None], x_adv, best_adv)
                if self.abort_early and step % check_every == 0:
                    if loss.item() > previous * 0.9999:
                        break
                    previous = loss.item()
                optimizer.step()
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            const = torch.where(upper < 1e10, (lower + upper) / 2, const * 10)
        self.last_success = best_l2 < math.inf
        return best_adv


ATTACK_CLASSES: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, RandFGSM, MIM, PGD, CarliniWagnerL2)
}


def build(name: str, model: nn.Module, dataset: str, **overrides: Any) -> Attack:
    """Make attack ``name`` for ``model`` with the paper's defaults for ``dataset`` plus overrides.

    The L-inf attacks also take the gradient options ``precision`` and ``loss`` (see the module
    docstring); one given at its default is left out of ``params``, so it does not change the
    adversarial sets' cache keys. Raises ValueError naming the field for an unknown attack,
    dataset or override key, a value of the wrong type or out of range, or a model that is not
    an nn.Module.
    """
    if name not in ATTACK_CLASSES:
        raise ValueError(f"name must be one of {', '.join(ATTACK_CLASSES)}, got {name!r}")
    if dataset not in SHAPES:
        raise ValueError(f"dataset must be one of {', '.join(SHAPES)}, got {dataset!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    cls = ATTACK_CLASSES[name]
    params = cls.defaults(dataset)
    allowed = [*params, *cls.options]
    for key, value in overrides.items():
        if key not in allowed:
            raise ValueError(f"override {key!r} is not a parameter of {name}: allowed "
                             f"{', '.join(allowed)}")
        value = _validate_param(key, value)
        if key in cls.options and value == cls.options[key]:
            continue  # at its default: same attack, same params, same cache key
        params[key] = value
    return cls(model, dataset, **params)
