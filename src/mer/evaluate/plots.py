"""Figures of a run: its confusion matrices, its accuracy per fold and its folds' training curves (PNG)."""

import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend, nothing left open
from matplotlib.ticker import MaxNLocator

from mer.io import atomic_path
from mer.train.data import subject_sort_key


def plot_confusion(panels, classes, path):
    """Confusion matrices side by side: panels of (matrix, title): all clips, then each dataset's."""
    n = len(panels)
    fig = Figure(figsize=(n * (1.2 * len(classes) + 2.5), 1.1 * len(classes) + 2), layout="constrained")
    for k, (cm, title) in enumerate(panels):
        ax = fig.add_subplot(1, n, k + 1)
        im = ax.imshow(cm, cmap="Blues")
        fig.colorbar(im, ax=ax, label="clips").ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title, fontsize=9)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    _save(fig, path)


def plot_per_fold(per_fold, pooled_acc, name, path):
    """Each fold's accuracy as a bar (per_fold.tsv's rows), the pooled accuracy as a dashed line."""
    fig = Figure(figsize=(max(6, 0.3 * len(per_fold) + 2), 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(per_fold.subject.astype(str), per_fold.accuracy, color="tab:blue")
    ax.axhline(pooled_acc, color="tab:red", linestyle="--", label=f"pooled {pooled_acc:.3f}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out subject")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{name}: accuracy per LOSO fold", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def training_curves(metrics, path, name=""):
    """Plot each fold's per-epoch metrics.csv (as written by mer.train.loop; `metrics` maps the held-out
    subject to its file) into one PNG: training loss and accuracy per epoch, one thin line per fold
    and their mean over folds in bold; the inner-validation accuracy too where a fold recorded it.
    Returns the curves as one long table (subject, epoch, loss, train_acc[, val_acc, ...])."""
    frames = []
    for subject, csv in metrics.items():
        df = pd.read_csv(csv)
        missing = {"epoch", "loss", "train_acc"} - set(df.columns)
        if missing:
            raise ValueError(f"{csv}: no column(s) {sorted(missing)} (not a metrics.csv of mer.train.loop)")
        frames.append(df.assign(subject=str(subject)))
    if not frames:
        raise ValueError("no folds to plot")
    curves = pd.concat(frames, ignore_index=True)
    curves = curves[["subject", *[c for c in curves.columns if c != "subject"]]]
    order = sorted(curves.subject.unique(), key=subject_sort_key)

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    marker = "o" if curves.epoch.nunique() <= 20 else None  # a few epochs: show the points
    panels = [(loss_ax, "loss", "tab:purple", "training"), (acc_ax, "train_acc", "tab:blue", "training")]
    if "val_acc" in curves and curves.val_acc.notna().any():
        panels.append((acc_ax, "val_acc", "tab:orange", "inner validation"))
    for ax, col, color, label in panels:
        for s in order:
            c = curves[curves.subject == s]
            ax.plot(c.epoch, c[col], color=color, alpha=0.3, lw=0.8, marker=marker, ms=2)
        mean = curves.groupby("epoch")[col].mean()
        ax.plot(mean.index, mean.values, color=color, lw=2.2, marker=marker, ms=4,
                label=f"{label}, mean of {len(order)} folds")
    loss_ax.plot([], [], color="grey", alpha=0.5, lw=0.8, label="one fold (thin lines)")
    loss_ax.set_ylim(bottom=0)
    loss_ax.set_ylabel("training loss (mean per clip)")
    loss_ax.set_title(f"{name}: training loss per epoch", fontsize=9)
    acc_ax.set_ylim(0, 1)
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title(f"{name}: accuracy per epoch", fontsize=9)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    _save(fig, path)
    return curves


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    fig.clear()  # a pyplot-free Figure is freed once unreferenced; clear() releases its artists now
