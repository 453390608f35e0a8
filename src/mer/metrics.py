"""Accuracy, UF1 (unweighted = macro F1) and UAR (unweighted average recall), all from sklearn.metrics.

Every average runs over the full `classes` list (labels=classes), so a class that never occurs, in
truth or prediction, still counts (with F1 = recall = 0): the score cannot be raised by dropping a class.
"""

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
