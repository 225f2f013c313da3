"""Plot style and code-drawn diagrams shared by every chapter of the book.

Only matplotlib and seaborn are used, so this module imports without torch and can be used by
any chapter. Call :func:`set_style` once at the top of a chapter; use :data:`DEFENSE_COLORS`
when a plot compares defenses so that a defense keeps its colour across chapters.
"""
from __future__ import annotations

from typing import Final

import matplotlib as mpl
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

#: The defenses compared in the paper's tables, in the order the tables list them.
DEFENSE_ORDER: Final[tuple[str, ...]] = (
    "No defense",
    "DDSA",
    "MagNet",
    "Adv. training",
    "DDA",
)

_PALETTE: Final[list[tuple[float, float, float]]] = sns.color_palette("colorblind", 10)

#: One fixed colour per defense (seaborn's colour-blind palette), used by every chapter.
DEFENSE_COLORS: Final[dict[str, tuple[float, float, float]]] = {
    "No defense": _PALETTE[7],  # grey
    "DDSA": _PALETTE[0],  # blue
    "MagNet": _PALETTE[2],  # green
    "Adv. training": _PALETTE[4],  # purple
    "DDA": _PALETTE[1],  # orange
}

# Colours of the threat-model diagram.
_KNOWN = _PALETTE[9]  # light blue: the attacker knows the parameters and can differentiate
_HIDDEN = (0.93, 0.93, 0.93)  # light grey: the attacker cannot see inside
_ATTACKER = _PALETTE[3]  # vermillion: the attacker and the gradients it uses
_SUBSTITUTE = _PALETTE[2]  # green
_INK = (0.15, 0.15, 0.15)


def blank_missing_html(frame) -> str:
    """A DataFrame as the notebook's HTML table, with a missing value shown as a blank cell: in the
    book's tables a missing value is a cell that does not apply (BPDA on an undefended classifier, a
    paper value the paper does not give), and pandas would print ``NaN`` there."""
    import pandas as pd

    return frame.to_html(na_rep="", notebook=True, max_rows=pd.get_option("display.max_rows"),
                         max_cols=pd.get_option("display.max_columns"), show_dimensions=False)


def set_style(dpi: int = 110) -> None:
    """Apply the book's single plotting style, and its tables' one rule: a missing value is a blank.

    Seaborn's ``notebook`` context, ``whitegrid`` style and colour-blind palette, plus fixed
    figure and saving resolutions so that figures look the same in every chapter and in the
    rendered book. In IPython, DataFrames render through :func:`blank_missing_html`, and a
    Styler's missing values are blank too.

    Args:
        dpi: resolution of figures shown in notebooks; saved figures use 150 dpi.
    """
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "figure.figsize": (7.0, 4.0),
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "image.cmap": "gray",
        }
    )
    import pandas as pd

    pd.set_option("styler.format.na_rep", "")
    try:
        from IPython import get_ipython
    except ImportError:  # figures work without IPython; only notebooks render HTML tables
        return
    if (shell := get_ipython()) is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, blank_missing_html)


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, *, face: tuple[float, float, float],
         hatch: str | None = None) -> None:
    """Draw a rounded box with centred text; (x, y) is the lower-left corner."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", facecolor=face,
                                edgecolor=_INK, linewidth=1.3, hatch=hatch, hatchcolor=(0.62, 0.62, 0.62)))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=10.0, color=_INK,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": face, "edgecolor": "none"} if hatch else None)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], *, color: tuple[float, float, float] = _INK,
           dashed: bool = False, rad: float = 0.0, label: str | None = None,
           label_xy: tuple[float, float] | None = None) -> None:
    """Draw an arrow from ``start`` to ``end``, optionally curved and labelled."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, linewidth=1.4, color=color,
                                 linestyle=(0, (4, 3)) if dashed else "-", connectionstyle=f"arc3,rad={rad}",
                                 shrinkA=2, shrinkB=2))
    if label is not None:
        lx, ly = label_xy if label_xy is not None else ((start[0] + end[0]) / 2, start[1])
        ax.text(lx, ly, label, ha="center", va="center", fontsize=8.5, color=color)


def threat_model_diagram() -> Figure:
    """The three threat models of the paper (Section I, Fig. 2; Section III.A).

    Each row is the defended pipeline ``x' -> DDSA -> classifier f -> label`` seen by one attacker.
    Light-blue boxes are known to the attacker (architecture and parameters, so it can differentiate
    through them); grey hatched boxes are hidden from it. Dashed red arrows are the gradients the
    attacker uses: through ``f(DDSA(x))`` white-box, through ``f`` alone gray-box, and through a
    substitute trained on label queries (Papernot et al.) black-box.
    """
    fig, ax = plt.subplots(figsize=(9.0, 7.6))
    ax.set(xlim=(0.0, 10.0), ylim=(-1.45, 10.4), aspect="equal")
    ax.axis("off")
    h, x_att, w_att, x_def, w_def, x_clf, w_clf, x_out = 0.9, 0.15, 1.55, 2.85, 1.75, 5.6, 1.75, 8.35
    rows = [  # title, caption, y of the pipeline, DDSA known, classifier known
        ("White-box", "the attacker knows the classifier and the defense", 7.95, True, True),
        ("Gray-box", "the attacker knows the classifier, not the defense", 4.65, False, True),
        ("Black-box", "the attacker knows neither and only sees labels", 1.35, False, False)]
    for title, caption, y, ddsa_known, clf_known in rows:
        yc, top = y + h / 2, y + h
        title_text = ax.text(0.1, top + 1.35, title, fontsize=12, fontweight="bold", color=_INK, va="center")
        ax.annotate(caption, xy=(1.0, 0.5), xycoords=title_text, xytext=(8, 0), textcoords="offset points",
                    fontsize=9.5, color=_INK, va="center")
        _box(ax, x_att, y, w_att, h, "attacker", face=_ATTACKER + (0.25,))  # type: ignore[arg-type]
        _box(ax, x_def, y, w_def, h, "DDSA\ndenoiser", face=_KNOWN if ddsa_known else _HIDDEN,
             hatch=None if ddsa_known else "///")
        _box(ax, x_clf, y, w_clf, h, "classifier $f$", face=_KNOWN if clf_known else _HIDDEN,
             hatch=None if clf_known else "///")
        ax.text(x_out + 0.55, yc, "label", ha="center", va="center", fontsize=10, color=_INK)
        _arrow(ax, (x_att + w_att, yc), (x_def, yc), label="$x'$", label_xy=(2.27, yc + 0.22))  # the forward pass
        _arrow(ax, (x_def + w_def, yc), (x_clf, yc))
        _arrow(ax, (x_clf + w_clf, yc), (x_out, yc))
        if clf_known:
            grad = (r"$\nabla_{x'} J(f(\mathrm{DDSA}(x')), y)$: through the whole pipeline" if ddsa_known
                    else r"$\nabla_{x'} J(f(x'), y)$: the classifier alone, DDSA bypassed")
            _arrow(ax, (x_clf + w_clf / 2, top), (x_att + w_att / 2, top), color=_ATTACKER, dashed=True, rad=0.2,
                   label=grad, label_xy=(4.75, top + 0.8))
            continue
        # label queries go back to the attacker, who trains a substitute underneath
        _arrow(ax, (x_out + 0.55, top), (x_att + w_att / 2 + 0.25, top), dashed=True, rad=0.12,
               label="label queries: 150 seed images + Jacobian augmentation", label_xy=(5.0, top + 0.72))
        ys, xm = y - 1.6, x_att + w_att / 2
        _box(ax, x_att, ys, w_att, h, "substitute\nmodel $g$", face=_SUBSTITUTE + (0.35,))  # type: ignore[arg-type]
        _arrow(ax, (xm - 0.3, y), (xm - 0.3, ys + h))
        ax.text(xm - 0.42, (y + ys + h) / 2, "trains", ha="right", va="center", fontsize=8.5, color=_INK)
        _arrow(ax, (xm + 0.3, ys + h), (xm + 0.3, y), color=_ATTACKER, dashed=True)
        ax.text(x_att + w_att + 0.2, ys + h / 2, r"$\nabla_{x'} J(g(x'), y)$: examples crafted on $g$ transfer to $f$",
                fontsize=8.5, color=_ATTACKER, va="center")
    ax.legend(handles=[Patch(facecolor=_KNOWN, edgecolor=_INK, label="known: architecture, parameters, gradients"),
                       Patch(facecolor=_HIDDEN, edgecolor=_INK, hatch="///", label="hidden from the attacker")],
              loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=9, frameon=False)
    return fig


def training_curves(history, hue: str = "dataset") -> Figure:
    """Loss and held-out metrics per epoch, one panel per metric, one line per ``hue`` value.

    ``history`` is the long-form frame of :func:`ddsa_core.tables.history_frame`.
    """
    grid = sns.relplot(data=history, x="epoch", y="value", hue=hue, col="metric", kind="line", col_wrap=2,
                       marker="o", height=2.8, aspect=1.1, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    grid.set_axis_labels("epoch", "")
    plt.close(grid.figure)
    return grid.figure


def _image(ax: Axes, img, title: str, title_size: float = 9, **kw) -> None:
    """Show one C×H×W image (a tensor or array) on ``ax`` without ticks."""
    arr = img.detach().cpu().permute(1, 2, 0).numpy() if hasattr(img, "detach") else img
    ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, **kw)
    ax.set_title(title, fontsize=title_size, fontweight="normal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def attack_examples(examples: dict, index: int = 0) -> Figure:
    """One row per attack: clean image, perturbation (scaled to its own range), adversarial image, with norms.

    ``examples`` maps an attack name to ``(x, x_adv, y)`` batches, as returned by
    :func:`ddsa_core.experiments.no_defense_run`.
    """
    fig, axes = plt.subplots(len(examples), 3, figsize=(5.4, 1.9 * len(examples)), squeeze=False)
    for row, (name, (x, x_adv, _)) in zip(axes, examples.items()):
        delta = (x_adv[index] - x[index])
        linf, l2 = delta.abs().max().item(), delta.norm().item()
        bound = max(delta.abs().max().item(), 1e-12)
        _image(row[0], x[index], f"{name}: clean", vmin=0, vmax=1)
        _image(row[1], delta.mean(0, keepdim=True), f"perturbation\nL∞ {linf:.3f}, L2 {l2:.2f}",
               cmap="RdBu_r", vmin=-bound, vmax=bound)
        _image(row[2], x_adv[index], "adversarial", vmin=0, vmax=1)
    fig.tight_layout()
    plt.close(fig)
    return fig


def mu_hat_distribution(mu_hat: dict, mu: float = 0.1) -> Figure:
    """Histogram of the units' running mean activations ``mu_hat`` per denoiser, with the target ``mu`` marked."""
    import pandas as pd

    frame = pd.concat([pd.DataFrame({"mu_hat": v.detach().cpu().numpy(), "defense": k}) for k, v in mu_hat.items()])
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    sns.histplot(data=frame, x="mu_hat", hue="defense", palette=DEFENSE_COLORS, bins=40, element="step", ax=ax)
    ax.axvline(mu, color=_INK, linestyle="--", linewidth=1)
    ax.annotate(f"target μ = {mu}", (mu, ax.get_ylim()[1] * 0.9), xytext=(4, 0), textcoords="offset points", fontsize=9)
    ax.set_xlabel("running mean activation μ̂ of a unit of the 2nd FC layer")
    plt.close(fig)
    return fig


def accuracy_vs_eps(frame) -> Figure:
    """Figure 5: accuracy against eps, one panel per defense, one line per attack."""
    grid = sns.relplot(data=frame, x="eps", y="accuracy", hue="attack", col="defense", kind="line", marker="o",
                       col_wrap=2, height=2.6, aspect=1.1)
    grid.set(ylim=(-0.02, 1.02))
    grid.set_titles("{col_name}")
    plt.close(grid.figure)
    return grid.figure


def gray_box_bars(frame) -> Figure:
    """Gray-box accuracy per attack (bars), one colour per defense: a long table of ``threat_models.gray_box`` rows."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    sns.barplot(data=frame, x="attack", y="accuracy", hue="defense", palette=DEFENSE_COLORS, ax=ax)
    ax.set(ylim=(0, 1.05), xlabel="attack (crafted against the plain classifier)", ylabel="accuracy")
    ax.legend(title=None, ncols=len(frame["defense"].unique()), loc="upper center", bbox_to_anchor=(0.5, 1.18), frameon=False)
    plt.close(fig)
    return fig


def threat_model_bars(frame) -> Figure:
    """Accuracy per attack and defense, one panel per threat model (a long table with a ``setting`` column)."""
    grid = sns.catplot(data=frame, x="attack", y="accuracy", hue="defense", col="setting", kind="bar",
                       palette=DEFENSE_COLORS, col_wrap=2, height=2.6, aspect=1.2)
    grid.set(ylim=(0, 1.05))
    grid.set_titles("{col_name}")
    plt.close(grid.figure)
    return grid.figure


def denoised_examples(ex: dict, classes=None) -> Figure:
    """Figures 7-8: clean images (top), their adversarial examples, and the DDSA reconstructions of those
    (bottom), each with the classifier's predicted label and probability."""
    rows = (("clean", "x", "clean_pred"), ("adversarial", "x_adv", "adv_pred"), ("denoised", "denoised", "den_pred"))
    n = len(ex["y"])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.15 * n, 1.45 * len(rows)), squeeze=False)
    name = (lambda k: classes[k]) if classes else str
    for row, (label, images, pred) in enumerate(rows):
        p, k = ex[pred]
        for i in range(n):
            _image(axes[row][i], ex[images][i], f"{name(int(k[i]))}: {100 * float(p[i]):.1f}%", title_size=8, vmin=0, vmax=1)
        axes[row][0].set_ylabel(label)
    fig.tight_layout()
    plt.close(fig)
    return fig


def gradient_masking(margins: dict, thresholds: dict, accuracy) -> Figure:
    """Why sign-gradient attacks stall on a saturated classifier, in two panels.

    Left: the distribution (CDF) of the true-class logit margin per classifier, ``margins``
    mapping a label to the percentiles 0..100 of :func:`ddsa_core.experiments.gradient_masking_run`,
    with ``thresholds`` (label -> margin) drawn as vertical lines. Right: accuracy per attack
    (rows of ``accuracy``) for each column of ``accuracy`` (e.g. the paper's and ours per
    gradient variant); ``accuracy.attrs["title"]`` titles the panel. An empty ``accuracy``
    leaves the right panel with a 'pending' note.
    """
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(7.3, 4.2), gridspec_kw={"width_ratios": [1.0, 1.2]})
    levels = np.linspace(0, 1, 101)
    for (label, pct), color in zip(margins.items(), _PALETTE):
        left.plot(pct, levels, color=color, label=label, linewidth=2)
    styles = ("--", ":", "-.", (0, (5, 1)))
    for (label, value), style in zip(thresholds.items(), styles):
        left.axvline(value, color=_INK, linestyle=style, linewidth=1, label=label)
    left.set_xscale("symlog", linthresh=10)
    left.set_xlabel("true-class logit margin $z_y - \\max_{j \\ne y} z_j$")
    left.set_ylabel("fraction of test images")
    left.set_title("logit margins")
    left.set_xlim(left=-20)
    # legends under the panels: the curves and bars fill each panel's whole height
    below = {"fontsize": 8, "loc": "upper center", "bbox_to_anchor": (0.5, -0.3), "ncol": 1, "frameon": False}
    left.legend(**below)
    if len(accuracy):
        frame = accuracy.reset_index().melt(id_vars=accuracy.index.name or "index", var_name="column",
                                            value_name="accuracy")
        sns.barplot(data=frame, x=accuracy.index.name or "index", y="accuracy", hue="column", ax=right,
                    palette=[_PALETTE[7], *_PALETTE[:len(accuracy.columns) - 1]])
        right.legend(title=None, **below)
        right.set_ylim(0, 1)
        right.set_xlabel("attack")
    else:
        right.text(0.5, 0.5, "pending", ha="center", va="center", transform=right.transAxes)
    right.set_ylabel("accuracy, no defense")
    right.set_title(accuracy.attrs.get("title", ""))
    fig.tight_layout()
    plt.close(fig)
    return fig



def robust_accuracy_heatmap(table) -> Figure:
    """The adaptive battery: robust accuracy per attack (rows) and defense (columns), worst case last."""
    fig, ax = plt.subplots(figsize=(1.3 + 1.25 * table.shape[1], 0.9 + 0.38 * table.shape[0]))
    sns.heatmap(table, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="rocket", cbar_kws={"label": "robust accuracy"}, ax=ax)
    ax.set(xlabel=None, ylabel=None)
    ax.axhline(len(table) - 1, color="white", lw=2)  # the per-example worst case below the line
    plt.close(fig)
    return fig


def adaptive_curves(eps, steps) -> Figure:
    """Robust accuracy of each defense against eps (left) and PGD iterations (right), one restart."""
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.2), sharey=True)
    sns.lineplot(data=eps, x="eps", y="accuracy", hue="defense", palette=DEFENSE_COLORS, marker="o", ax=axes[0])
    sns.lineplot(data=steps, x="steps", y="accuracy", hue="defense", palette=DEFENSE_COLORS, marker="o", ax=axes[1],
                 legend=False)
    axes[0].axhline(0.1, color="grey", ls=":", lw=1)
    axes[0].set(ylim=(-0.02, 1.02), xlabel="eps (L-inf)", ylabel="robust accuracy")
    axes[1].set(xscale="log", xlabel="iterations")
    axes[0].legend(title=None, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def ablation_bars(frame) -> Figure:
    """Sparsity ablation: gray-box and adaptive white-box PGD accuracy per denoiser."""
    long = frame.melt(id_vars="denoiser", value_vars=["gray_fgsm", "gray_pgd", "white_pgd"], var_name="setting",
                      value_name="accuracy")
    fig, ax = plt.subplots(figsize=(8.0, 3.2))
    sns.barplot(data=long, x="denoiser", y="accuracy", hue="setting", ax=ax)
    ax.set(ylim=(0, 1.05), xlabel=None)
    ax.tick_params(axis="x", labelrotation=20)
    ax.legend(title=None, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.18), frameon=False)
    plt.close(fig)
    return fig


def pgd_iterations(frame) -> Figure:
    """Figure 6: gray-box accuracy against the number of PGD iterations, one line per defense."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.lineplot(data=frame, x="nb_iter", y="accuracy", hue="defense", palette=DEFENSE_COLORS, marker="o", ax=ax)
    ax.set(xscale="log", ylim=(-0.02, 1.02), xlabel="PGD iterations (step 0.01)", ylabel="gray-box accuracy")
    ax.legend(title=None, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig
