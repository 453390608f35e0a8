"""A leave-one-subject-out fold: which samples train, validate and test, and its seeded draws.

No model selection touches the held-out subject: its predictions come from the final-epoch weights.
"""

import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mer.datasets.catalog import split_fold
from mer.train.augment import draw_epoch
from mer.train.data import distinct_subjects, held_out_mask, subject_key

# held_out of the final model (train_final): every subject trains, none is held out.
FINAL = "final"


def fold_seed(seed, held_out):
    """Seed of one experiment's fold: seed * 1000 + subject number (crc32 of the id if not a number). The
    subject's own id: 'casme2-01' seeds as '01' does."""
    key = subject_key(split_fold(str(held_out))[1])
    return int(seed) * 1000 + (int(key) if key.isdigit() else zlib.crc32(key.encode()) % 1000)


@dataclass
class Fold:
    """One LOSO fold: indices into the task's samples (load_samples), and where its files go."""
    held_out: str
    seed: int
    train: np.ndarray  # int64 indices of the training samples
    val: np.ndarray  # inner validation samples (training subjects held back; empty unless inner_val)
    test: np.ndarray  # the held-out subject's samples
    out_dir: Path


def plan_fold(data, held_out, c, out_dir):
    """The Fold of `held_out` over `data` (every sample of the task); held_out FINAL: every
    sample trains (an empty test set). With c['test_datasets'] (cross-dataset), held_out is a dataset:
    its samples are the test set and the samples of c['datasets'] train."""
    seed = fold_seed(c["seed"], held_out)
    trains = np.ones(len(data.subjects), dtype=bool)
    if c.get("test_datasets"):  # cross-dataset: train on `datasets`, test on the held-out dataset
        dataset = np.array([split_fold(s)[0] for s in data.subjects])
        trains = np.isin(dataset, list(c["datasets"]))
    if held_out == FINAL:
        is_test = np.zeros(len(data.subjects), dtype=bool)
    elif c.get("test_datasets"):
        is_test = dataset == held_out
        if not is_test.any():
            raise ValueError(f"test dataset {held_out!r} has no samples for task {c['task']!r}")
    else:
        is_test = held_out_mask(data, held_out, c["task"])
    train = np.flatnonzero(trains & ~is_test)
    train, val = _inner_val_split(train, [data.subjects[i] for i in train], float(c["inner_val"]), seed)
    if len(train) == 0:
        raise ValueError(f"no training samples left without subject {held_out!r}")
    tested = {subject_key(data.subjects[i]) for i in np.flatnonzero(is_test)}
    assert not tested & {subject_key(data.subjects[i]) for i in train}, "held-out subject in train"
    return Fold(str(held_out), seed, train, val, np.flatnonzero(is_test), Path(out_dir))


def epoch_batches(fold, epoch, c):
    """The fold's batches of one epoch: sample indices (steps, b) into the task's samples, flip, angle."""
    order, flip, angle = draw_epoch(len(fold.train), fold.seed, epoch, int(c["batch_size"]),
                                    c["augment"]["hflip"], c["augment"]["rotate"])
    return torch.from_numpy(fold.train)[order], flip, angle


def _inner_val_split(train, subjects, fraction, seed):
    """Hold `fraction` of the training subjects (at least one, never all) out as an inner validation set.

    train: sample indices; subjects: their subject ids. Returns (train, val) index arrays.
    """
    if fraction <= 0:
        return train, train[:0]
    distinct = distinct_subjects(subjects)
    k = min(max(1, round(fraction * len(distinct))), len(distinct) - 1)
    chosen = set(random.Random(seed).sample(distinct, k)) if k > 0 else set()
    is_val = np.array([s in chosen for s in subjects], dtype=bool)
    return train[~is_val], train[is_val]
