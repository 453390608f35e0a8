"""Face crops from the per-subject HDF5 cache, held in memory, split leave-one-subject-out.

A CASME II task has ~250 crops: at 224 px they take ~40 MB as uint8, so every sample is read once at
the start of a fold (or of a fused group of folds) and augmentation runs on the device (mer.train.augment).
"""

import re
from dataclasses import dataclass

import cv2
import h5py
import numpy as np

from mer.datasets.catalog import fold_id, split_fold
from mer.preprocess import flow

# A fold's held-out predictions after every epoch, for the leakage audit alone
# (mer.evaluate.pooling.leakage_audit): never read by training or by any choice; the result is the final
# epoch's predictions.tsv.
AUDIT_FILE = "held_out_by_epoch.tsv"


def subject_key(subject):
    """Canonical subject id: 'sub01', '01' and 1 all give '1'; other ids are returned unchanged."""
    s = str(subject).strip()
    m = re.fullmatch(r"(?:sub)?0*(\d+)", s, flags=re.IGNORECASE)
    return m.group(1) if m else s


def subject_sort_key(subject):
    """Order subjects by dataset, then numerically where they are numbers ('2' before '10';
    'smic_hs-2' before 'smic_hs-10')."""
    dataset, subject = split_fold(str(subject))
    k = subject_key(subject)
    return (dataset, 0, int(k), "") if k.isdigit() else (dataset, 1, 0, k)


@dataclass
class Samples:
    """Samples of a task, in cache order: every one of them (load_samples), or a selection."""
    images: np.ndarray  # (N, S, S, C): uint8 RGB crops (C = 3, or 6 for a difference), float32 flow
    labels: np.ndarray  # int64 (N,), index into `classes`
    subjects: list  # subject id per sample: the cache's, qualified by its dataset where it names one ('casme2-01')
    filenames: list  # clip name per sample ('EP02_01f'; CAS(ME)^3's clips sharing a filename: 'a@166')

    def __len__(self):
        return len(self.labels)

    def select(self, mask):
        mask = np.asarray(mask, dtype=bool)
        return Samples(self.images[mask], self.labels[mask],
                       [s for s, m in zip(self.subjects, mask, strict=True) if m],
                       [f for f, m in zip(self.filenames, mask, strict=True) if m])


def _labelled_groups(h5, task):
    """(name, group, label) for every sample of `h5` with a non-empty label for `task`."""
    key = f"label_{task}"
    for name in sorted(h5):
        g = h5[name]
        if key not in g.attrs:
            raise KeyError(f"{h5.filename}:/{name} has no attribute {key!r} (unknown task {task!r}?)")
        label = g.attrs[key]
        label = label.decode() if isinstance(label, bytes) else str(label)
        if label:
            yield name, g, label


def subject_namer(h5):
    """A cache's sample -> its subject: 'DATASET-SUBJECT' (fold_id) in a cache that names its dataset (the
    workflow's), so that subject 01 of one dataset is never subject 01 of another; else as stored."""
    dataset = h5.attrs.get("dataset")
    dataset = dataset.decode() if isinstance(dataset, bytes) else dataset
    return (lambda g: fold_id(dataset, str(g.attrs["subject"]))) if dataset else (lambda g: str(g.attrs["subject"]))


def subjects_with_samples(cache_paths, task):
    """Subjects having at least one sample labelled for `task`: the LOSO folds (reads attributes only)."""
    subjects = []
    for path in cache_paths:
        with h5py.File(path, "r") as h5:
            name = subject_namer(h5)
            subjects += [name(g) for _, g, _ in _labelled_groups(h5, task)]
    return distinct_subjects(subjects)


def distinct_subjects(samples_subjects):
    """The distinct subjects among the samples' subjects, in fold order (subject_sort_key): one LOSO fold
    each; a subject with no sample for the task is not in the list and so gets no fold."""
    return sorted({str(s) for s in samples_subjects}, key=subject_sort_key)


def load_split(cache_paths, task, frame, held_out, classes, resize=None):
    """Read the task's samples (`frame` crop of each) once; return (train, test) with test = `held_out`."""
    data = load_samples(cache_paths, task, frame, classes, resize)
    is_test = held_out_mask(data, held_out, task)
    return data.select(~is_test), data.select(is_test)


def load_samples(cache_paths, task, frame, classes, resize=None):
    """Every sample labelled for `task`, as one Samples.

    frame: the cache dataset of each sample ('apex'), or several (input_datasets) stacked along channels.
    resize: input size in px; each dataset is resized once here (prepare) when it differs from the cache's.
    """
    names = (frame,) if isinstance(frame, str) else tuple(frame)
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    images, labels, subjects, filenames = [], [], [], []
    for path in cache_paths:
        with h5py.File(path, "r") as h5:
            subject_of = subject_namer(h5)
            for name, g, label in _labelled_groups(h5, task):
                if label not in index:
                    raise ValueError(f"{path}:/{name}: label {label!r} of task {task!r} not in {classes}")
                missing = [f for f in names if f not in g]
                if missing:
                    raise KeyError(f"{path}:/{name} has no {missing} (has {sorted(g)})")
                images.append(assemble([g[f][()] for f in names], resize))
                labels.append(index[label])
                subjects.append(subject_of(g))
                filenames.append(str(g.attrs.get("clip", g.attrs.get("filename", name))))
    if not images:
        raise ValueError(f"no samples labelled for task {task!r} in {len(cache_paths)} cache file(s)")
    return Samples(np.stack(images), np.asarray(labels, dtype=np.int64), subjects, filenames)


# `input` of an experiment: what the model sees (mer.train.augment.Inputs turns it into the network's input)
INPUTS = ("frame", "difference", "flow")


def input_datasets(c):
    """The cache datasets an experiment's input reads, in channel order: `frame` its crop (uint8 RGB);
    `difference` that crop and the onset crop (6 uint8 channels; Inputs subtracts them after augmenting both
    alike); `flow` the onset -> apex flow of the flow cache (mer.preprocess.flow, float32 u, v, strain)."""
    input, frame = c.get("input", "frame"), c["frame"]
    if input == "frame":
        return (frame,)
    if input == "difference":
        if frame == "onset":
            raise ValueError(f"experiment {c.get('name')!r}: input 'difference' needs a frame other than the onset")
        return (frame, "onset")
    if input == "flow":
        if frame != "apex":
            raise ValueError(f"experiment {c.get('name')!r}: input 'flow' is onset -> apex flow; frame must be 'apex'")
        return (flow.DATASET,)
    raise ValueError(f"experiment {c.get('name')!r}: input {input!r} is not one of {INPUTS}")


def assemble(datasets, size=None):
    """One sample's model input (S, S, C): its cached datasets (input_datasets' order) each at the input size
    (prepare), stacked along channels."""
    return np.concatenate([prepare(a, size) for a in datasets], axis=-1)


def clip_input(c, crops, flow_settings=None):
    """The model input (S, S, C) of one clip from its aligned crops {frame choice: RGB uint8} at the crop
    cache's size, as training reads it from the caches: the flow dataset computed from them as the flow cache's
    is (mer.preprocess.flow.flow_clip, with flow_settings {'method', 'lambda'})."""
    return assemble([flow.flow_clip(crops, flow_settings["method"], flow_settings["lambda"])
                     if name == flow.DATASET else crops[name] for name in input_datasets(c)], int(c["size"]))


def prepare(array, size=None):
    """One cached dataset at the model's input size: a uint8 crop resized with INTER_AREA, a flow field
    with mer.preprocess.flow.resize_flow (which also scales its vectors)."""
    if not size or array.shape[0] == size:
        return array
    if array.dtype == np.uint8:
        return cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA)
    return flow.resize_flow(array, size)


def held_out_mask(data, held_out, task="?"):
    """Boolean mask of `held_out`'s samples in `data`; an error if it has none."""
    is_test = np.array([subject_key(s) == subject_key(held_out) for s in data.subjects])
    if not is_test.any():
        raise ValueError(f"held-out subject {held_out!r} has no samples for task {task!r}")
    return is_test


def epoch_seed(seed, epoch, stream=0):
    """A distinct 63-bit seed per (run seed, epoch, stream); streams separate shuffle from model RNG."""
    return (int(seed) * 1_000_003 + int(epoch) * 1_009 + int(stream)) % (2**63 - 1)
