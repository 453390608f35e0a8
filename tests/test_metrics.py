import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
)

from mer.metrics import classification_metrics

CLASSES = ["happiness", "surprise", "disgust", "repression", "others"]


def test_matches_sklearn_with_absent_predicted_class():
    rng = np.random.default_rng(0)
    y_true = rng.choice(CLASSES, 60).tolist()
    y_pred = rng.choice(CLASSES[:4], 60).tolist()  # 'others' never predicted
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    macro = dict(labels=CLASSES, average="macro", zero_division=0)
    assert m["uf1"] == pytest.approx(f1_score(y_true, y_pred, **macro))
    assert m["uar"] == pytest.approx(recall_score(y_true, y_pred, **macro))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    for i, c in enumerate(CLASSES):
        assert m["per_class"][c] == pytest.approx(dict(precision=p[i], recall=r[i], f1=f[i], support=s[i]))
    assert m["per_class"]["others"]["recall"] == 0.0
    assert m["confusion"] == confusion_matrix(y_true, y_pred, labels=CLASSES).tolist()
    assert m["n_samples"] == 60


def test_class_absent_everywhere_counts_as_zero():
    y = ["happiness", "surprise", "happiness"]
    m = classification_metrics(y, y, CLASSES)
    assert m["accuracy"] == 1.0
    assert m["uf1"] == pytest.approx(2 / 5)  # three classes never seen score 0
    assert len(m["confusion"]) == 5 and all(len(row) == 5 for row in m["confusion"])


def test_rejects_unknown_labels_and_empty_input():
    with pytest.raises(ValueError, match="fear"):
        classification_metrics(["fear"], ["happiness"], CLASSES)
    with pytest.raises(ValueError):
        classification_metrics([], [], CLASSES)
