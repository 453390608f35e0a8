"""Accuracy, UF1 (unweighted = macro F1) and UAR (unweighted average recall), all from sklearn.metrics, and
bootstrap intervals of UF1.

Every average runs over the full `classes` list (labels=classes), so a class that never occurs, in
truth or prediction, still counts (with F1 = recall = 0): the score cannot be raised by dropping a class.
"""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
)


def classification_metrics(y_true, y_pred, classes):
    """Scores for class-name (or index) labels; `classes` fixes label order (rows/cols of `confusion`)."""
    y_true, y_pred, classes = list(y_true), list(y_pred), list(classes)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        raise ValueError("no samples to score")
    unknown = sorted({str(y) for y in y_true + y_pred} - {str(c) for c in classes})
    if unknown:
        raise ValueError(f"labels {unknown} are not in classes {classes}")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uf1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "uar": float(recall_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "per_class": {
            str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "n_samples": len(y_true),
        # rows = true class, columns = predicted class, both in `classes` order
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


# ------------------------------------------------------------------------------ bootstrap intervals of UF1

def macro_f1(confusion):
    """UF1 of confusion matrices (..., C, C) (rows true, columns predicted), as f1_score(average='macro',
    labels=classes, zero_division=0) gives it. Hand-written because a bootstrap scores thousands of
    resamples: one vectorised pass instead of a sklearn call each; tests compare the two."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    denom = cm.sum(-1) + cm.sum(-2)  # 2 tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0).mean(-1)


def resample_within(groups, n_boot, seed):
    """(n_boot, N) indices of N items, each row resampled with replacement within each group (a subject
    keeps its number of clips in every resample): the stratified bootstrap of a LOSO result."""
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    parts = []
    for g in sorted(set(groups.tolist()), key=str):
        idx = np.flatnonzero(groups == g)
        parts.append(idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))])
    return np.concatenate(parts, axis=1)


def _confusions(y_true, y_pred, rows, classes):
    """Confusion matrices (len(rows), C, C) of the resampled rows (index arrays into y_true and y_pred)."""
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    codes = np.array([index[t] * k + index[p] for t, p in zip(y_true, y_pred, strict=True)])[rows]
    codes = codes + (np.arange(len(rows)) * k * k)[:, None]
    return np.bincount(codes.ravel(), minlength=len(rows) * k * k).reshape(len(rows), k, k)


def runs(y_pred):
    """Predictions as (R, N): one row per run (seed) of an experiment; a single run's (N,) labels give R = 1."""
    preds = np.asarray(y_pred, dtype=object)
    return preds[None] if preds.ndim == 1 else preds


def _mean_uf1(y_true, y_pred, rows, classes):
    """(len(rows),) UF1 of each resample, averaged over the runs of y_pred (see runs)."""
    return np.mean([macro_f1(_confusions(y_true, list(p), rows, classes)) for p in runs(y_pred)], axis=0)


def bootstrap_uf1(y_true, y_pred, groups, classes, n_boot=2000, seed=0, level=0.95):
    """(low, high): the percentile interval of pooled UF1 over `n_boot` resamples of the clips, stratified by
    `groups` (subjects). y_pred may hold several runs (R, N) (seeds): then the interval is of their mean UF1,
    every run scored on the same resampled clips."""
    rows = resample_within(groups, n_boot, seed)
    scores = _mean_uf1(list(y_true), y_pred, rows, list(classes))
    tail = (1 - level) / 2 * 100
    return float(np.percentile(scores, tail)), float(np.percentile(scores, 100 - tail))


def paired_bootstrap_uf1(y_true, pred_a, pred_b, groups, classes, n_boot=2000, seed=0, level=0.95):
    """UF1(b) - UF1(a) on the same clips, and its percentile interval: both scored on the same resamples,
    so what the clips share cancels. pred_a and pred_b may each hold several runs (R, N) (seeds): then the
    difference is of their mean UF1 over runs. Returns (difference, low, high)."""
    y_true, classes = list(y_true), list(classes)
    rows = resample_within(groups, n_boot, seed)
    diff = _mean_uf1(y_true, pred_b, rows, classes) - _mean_uf1(y_true, pred_a, rows, classes)
    whole = np.arange(len(y_true))[None]
    point = float(_mean_uf1(y_true, pred_b, whole, classes)[0] - _mean_uf1(y_true, pred_a, whole, classes)[0])
    tail = (1 - level) / 2 * 100
    return point, float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail))
