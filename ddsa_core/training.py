"""Training: one resumable loop for every network in the book, and the cached Table 2 classifiers.

:func:`fit` checkpoints after every epoch. Each epoch draws its shuffle and its dropout masks
from seeds derived from ``(seed, epoch)``, so a run resumed from its checkpoint ends with the
same weights as an uninterrupted run on the CPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from . import cache, data
from .config import RECIPE_DEFAULTS, Config
from .evaluation import accuracy
from .models import build_classifier
from .runtime import progress, resolve_device

LossFn = Callable[..., torch.Tensor]  # loss_fn(model, *batch) -> scalar
TRAINING_CODE_VERSION = 1  # bump when a change to this loop changes the weights it produces


@dataclass
class Trained:
    """A trained network with its history and where it came from."""

    model: nn.Module
    history: list[dict[str, float]]
    key: str
    train_wall_s: float
    cached: bool
    meta: dict = field(default_factory=dict)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """Adam, RMSprop or SGD with Keras' defaults (eps 1e-7; RMSprop rho 0.9), as the paper used Keras."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-7)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be one of ('adam', 'rmsprop', 'sgd'); got {name!r}")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle and dropout."""
    return seed * 1_000_003 + epoch


def fit(model: nn.Module, tensors: Sequence[torch.Tensor], loss_fn: LossFn, optimizer: torch.optim.Optimizer,
        epochs: int, batch_size: int, seed: int, checkpoint: Path | None = None,
        monitor: Callable[[nn.Module], dict[str, float]] | None = None,
        after_step: Callable[[nn.Module], None] | None = None, desc: str = "train") -> list[dict[str, float]]:
    """Minimise ``loss_fn(model, *batch)`` over shuffled mini-batches of ``tensors``; returns per-epoch history.

    ``after_step`` runs after every optimiser step (the DDSA sparsity rule hooks in here).
    ``monitor`` runs after every epoch in eval mode. With ``checkpoint``, the state is saved after
    each epoch and a later call resumes from it.
    """
    device = next(model.parameters()).device
    history: list[dict[str, float]] = []
    start = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"]) + 1
    n = len(tensors[0])
    steps = (n + batch_size - 1) // batch_size
    bar = progress(total=epochs * steps, initial=start * steps, desc=desc, unit="batch", mininterval=1.0)
    for epoch in range(start, epochs):
        torch.manual_seed(epoch_seed(seed, epoch))  # dropout masks
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))
        model.train()
        total, t0 = 0.0, time.perf_counter()
        for idx in order.split(batch_size):
            batch = [t[idx].to(device, non_blocking=True) for t in tensors]
            loss = loss_fn(model, *batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(model)
            total += loss.item() * len(idx)
            bar.update()
        row = {"epoch": epoch + 1, "loss": total / n, "epoch_s": time.perf_counter() - t0}
        if monitor is not None:
            model.eval()
            row.update(monitor(model))
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
        if checkpoint is not None:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history}
            cache.atomic_write(checkpoint, lambda tmp: torch.save(state, tmp))
    bar.close()
    model.eval()
    return history


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The classifiers' training loss (Table 2's softmax folded into it)."""
    return nn.functional.cross_entropy(model(x), y)


KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), the clip of categorical_crossentropy


def keras_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Keras 2.2.4's ``categorical_crossentropy`` on a softmax output, as a batch mean.

    ``keras/backend/tensorflow_backend.py`` renormalises the probabilities, clips them to
    [eps, 1 - eps] and takes -log of the true class. ``tf.clip_by_value`` passes the gradient only
    inside the bounds (as ``torch.clamp`` does), so an image whose softmax probability of the true
    class rounds above 1 - eps in float32 contributes exactly zero gradient.
    """
    p = torch.softmax(logits, dim=1)
    p = (p / p.sum(dim=1, keepdim=True)).clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)
    return -p.gather(1, y[:, None]).log().mean()


CLASSIFIER_LOSSES: dict[str, LossFn] = {
    "logits": cross_entropy,
    "keras_clipped": lambda model, x, y: keras_cross_entropy(model(x), y),
}


def classifier_loss(cfg: Config) -> LossFn:
    """The classifier's training loss of ``cfg`` (``clf_loss``), on augmented images where ``clf_augment`` says so."""
    loss = CLASSIFIER_LOSSES[cfg.clf_loss]
    if cfg.clf_augment == "none":
        return loss
    return lambda model, x, y: loss(model, data.shift_flip(x), y)


def monitor_split(dataset: str) -> str:
    """The split watched during training: MNIST's validation split; CIFAR-10 has none, so its test set."""
    return "val" if "val" in data.SPLITS[dataset] else "test"


def classifier_key(cfg: Config) -> str:
    """Hash of everything that determines the classifier's weights.

    The recipe fields at :data:`RECIPE_DEFAULTS` are left out of the key, so the classifiers trained
    before the fields existed keep their keys (and the committed records that name them stay valid)."""
    recipe = {f: getattr(cfg, f) for f, default in RECIPE_DEFAULTS.items() if getattr(cfg, f) != default}
    return cache.content_key(
        kind="classifier", arch=f"table2-{cfg.dataset}", dataset=cfg.dataset, source=data.data_source(cfg.dataset),
        optimizer=cfg.clf_optimizer, lr=cfg.clf_lr, batch_size=cfg.clf_batch_size, epochs=cfg.clf_epochs,
        train_size=cfg.train_size, seed=cfg.seed, code=TRAINING_CODE_VERSION, **recipe,
    )


def best_epoch(history: list[dict[str, float]], metric: str) -> int:
    """The epoch Keras' ``ModelCheckpoint(save_best_only=True)`` keeps: the first to reach the maximum of ``metric``."""
    values = [row[metric] for row in history]
    return history[values.index(max(values))]["epoch"]


def load_or_train(kind: str, key: str, model: nn.Module, train: Callable[[nn.Module, Path], list[dict]],
                  meta: dict) -> Trained:
    """The cached weights of ``kind``/``key`` if valid, else ``train(model, checkpoint)`` and cache them."""
    path = cache.artifact_path(kind, key)
    hit = cache.read_artifact(path)
    if hit is not None:
        tensors, stored = hit
        model.load_state_dict(tensors)
        return Trained(model.eval(), stored["history"], key, stored["train_wall_s"], True, stored)
    checkpoint = path.with_suffix(".ckpt")
    t0 = time.perf_counter()
    history = train(model, checkpoint)
    wall = time.perf_counter() - t0
    stored = {**meta, "history": history, "train_wall_s": wall}
    cache.save(path, model.state_dict(), stored)
    checkpoint.unlink(missing_ok=True)
    return Trained(model.eval(), history, key, wall, False, stored)


def classifier(cfg: Config) -> Trained:
    """The Table 2 classifier of ``cfg``, trained as Table 3 says, or loaded from the cache.

    One training run serves both checkpoint rules: while it trains, the weights of the best
    monitored epoch so far are kept beside its checkpoint (so they survive a resume) and cached
    under the ``best_val`` key when it ends.
    """
    device = resolve_device(cfg.device)
    last_cfg = cfg.replace(clf_checkpoint="last")
    watch = monitor_split(cfg.dataset)
    metric = f"{watch}_acc"
    best_key = classifier_key(last_cfg.replace(clf_checkpoint="best_val"))

    def fresh() -> nn.Module:
        torch.manual_seed(cfg.seed)
        return build_classifier(cfg.dataset, cfg.clf_dropout).to(device)

    def train(model: nn.Module, checkpoint: Path) -> list[dict]:
        x, y = data.load(cfg.dataset, "train", cfg.train_size)
        xv, yv = data.load(cfg.dataset, watch, cfg.test_size)
        opt = make_optimizer(cfg.clf_optimizer, model.parameters(), cfg.clf_lr)
        best_path = checkpoint.with_suffix(".best.ckpt")
        best = [-1.0]
        if best_path.exists():
            best[0] = torch.load(best_path, map_location="cpu", weights_only=True)["value"]

        def monitor(m: nn.Module) -> dict[str, float]:
            value = accuracy(m, xv, yv, cfg.eval_batch_size)
            if value > best[0]:  # strictly better, as Keras' save_best_only: ties keep the earlier epoch
                best[0] = value
                state = {"model": {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}, "value": value}
                cache.atomic_write(best_path, lambda tmp: torch.save(state, tmp))
            return {metric: value}

        history = fit(model, (x, y), classifier_loss(cfg), opt, cfg.clf_epochs, cfg.clf_batch_size,
                      cfg.seed, checkpoint, monitor, desc=f"classifier {cfg.dataset}")
        kept = torch.load(best_path, map_location="cpu", weights_only=True)
        cache.save(cache.artifact_path("classifier", best_key), kept["model"],
                   {**meta, "config": last_cfg.replace(clf_checkpoint="best_val").to_dict(), "history": history,
                    "kept_epoch": best_epoch(history, metric), "train_wall_s": sum(h["epoch_s"] for h in history)})
        best_path.unlink(missing_ok=True)
        return history

    meta = {"config": last_cfg.to_dict(), "data_source": data.data_source(cfg.dataset), "monitor_split": watch}
    last = load_or_train("classifier", classifier_key(last_cfg), fresh(), train, meta)
    if cfg.clf_checkpoint == "last":
        return last
    hit = cache.read_artifact(cache.artifact_path("classifier", best_key))
    if hit is None:  # the last epoch was cached before best-epoch weights were kept: train the run again
        rerun = cache.artifact_path("classifier", best_key).with_suffix(".rerun.ckpt")
        train(fresh(), rerun)
        rerun.unlink(missing_ok=True)
        hit = cache.read_artifact(cache.artifact_path("classifier", best_key))
    tensors, stored = hit
    model = fresh()
    model.load_state_dict(tensors)
    return Trained(model.eval(), stored["history"], best_key, stored["train_wall_s"], last.cached, stored)
