import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
)

from mer.metrics import bootstrap_uf1, classification_metrics, macro_f1, paired_bootstrap_uf1, resample_within

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


def _random_predictions(n=60, subjects=6, seed=3):
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d", "e"]
    y_true = rng.choice(classes, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice(classes, n))  # 60% right, plus chance hits
    return classes, y_true, y_pred, np.repeat([f"{s:02d}" for s in range(subjects)], n // subjects)


def test_macro_f1_of_confusions_equals_sklearn():
    classes, y_true, y_pred, _ = _random_predictions()
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    assert macro_f1(cm) == pytest.approx(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    only_two = confusion_matrix(["a", "a", "b"], ["a", "b", "b"], labels=classes)  # classes never seen count 0
    assert macro_f1(only_two) == pytest.approx(f1_score(["a", "a", "b"], ["a", "b", "b"], labels=classes,
                                                        average="macro", zero_division=0))
    assert macro_f1(np.stack([cm, only_two])).shape == (2,)


def test_resampling_keeps_each_subjects_clip_count():
    groups = np.array(["01"] * 3 + ["02"] * 5 + ["10"] * 2)
    rows = resample_within(groups, 50, seed=0)
    assert rows.shape == (50, 10)
    for r in rows:
        assert sorted(groups[r].tolist()) == sorted(groups.tolist())  # a subject's clips stay its own


def test_bootstrap_interval_is_reproducible_and_holds_the_estimate():
    classes, y_true, y_pred, subjects = _random_predictions()
    point = f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)
    low, high = bootstrap_uf1(y_true, y_pred, subjects, classes, n_boot=500, seed=7)
    assert (low, high) == bootstrap_uf1(y_true, y_pred, subjects, classes, n_boot=500, seed=7)
    assert low < point < high and high - low > 0.05
    assert (low, high) != bootstrap_uf1(y_true, y_pred, subjects, classes, n_boot=500, seed=8)


def test_paired_bootstrap_of_identical_predictions_is_exactly_zero():
    classes, y_true, y_pred, subjects = _random_predictions()
    assert paired_bootstrap_uf1(y_true, y_pred, y_pred, subjects, classes, n_boot=300) == (0.0, 0.0, 0.0)
    other = np.where(np.arange(len(y_true)) % 4 == 0, y_true, y_pred)  # a better predictor
    diff, low, high = paired_bootstrap_uf1(y_true, y_pred, other, subjects, classes, n_boot=300)
    assert diff == pytest.approx(f1_score(y_true, other, labels=classes, average="macro")
                                 - f1_score(y_true, y_pred, labels=classes, average="macro"))
    assert low <= diff <= high
    back = paired_bootstrap_uf1(y_true, other, y_pred, subjects, classes, n_boot=300)
    assert back == pytest.approx((-diff, -high, -low))
