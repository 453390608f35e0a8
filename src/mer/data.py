"""Face crops from the per-subject HDF5 cache, held in memory, split leave-one-subject-out.

A CASME II task has ~250 crops: at 224 px they take ~40 MB as uint8, so every sample is read once at
the start of a fold and augmentation runs on the in-memory arrays.
"""

import re
from dataclasses import dataclass

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import v2


def subject_key(subject):
    """Canonical subject id: 'sub01', '01' and 1 all give '1'; other ids are returned unchanged."""
    s = str(subject).strip()
    m = re.fullmatch(r"(?:sub)?0*(\d+)", s, flags=re.IGNORECASE)
    return m.group(1) if m else s


def subject_sort_key(subject):
    """Order subjects numerically where they are numbers ('2' before '10')."""
    k = subject_key(subject)
    return (0, int(k), "") if k.isdigit() else (1, 0, k)


@dataclass
class Split:
    images: np.ndarray  # uint8 (N, S, S, 3) RGB
    labels: np.ndarray  # int64 (N,), index into `classes`
    subjects: list  # subject id per sample, as stored in the cache ('01')
    filenames: list  # clip name per sample ('EP02_01f')

    def __len__(self):
        return len(self.labels)

    def select(self, mask):
        mask = np.asarray(mask, dtype=bool)
        return Split(self.images[mask], self.labels[mask],
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


def subjects_with_samples(cache_paths, task):
    """Subjects having at least one sample labelled for `task`: the LOSO folds (reads attributes only)."""
    subjects = []
    for path in cache_paths:
        with h5py.File(path, "r") as h5:
            subjects += [str(g.attrs["subject"]) for _, g, _ in _labelled_groups(h5, task)]
    return fold_subjects(subjects)


def fold_subjects(samples_subjects):
    """One LOSO fold per distinct subject among the samples' subjects, sorted; a subject with no
    sample for the task is not in the list and so gets no fold."""
    return sorted({str(s) for s in samples_subjects}, key=subject_sort_key)


def load_split(cache_paths, task, frame, held_out, classes, resize=None):
    """Read the task's samples (`frame` crop of each) once; return (train, test) with test = `held_out`.

    resize: input size in px; crops are resized once here (cv2 INTER_AREA) when it differs from the cache's.
    """
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    images, labels, subjects, filenames = [], [], [], []
    for path in cache_paths:
        with h5py.File(path, "r") as h5:
            for name, g, label in _labelled_groups(h5, task):
                if label not in index:
                    raise ValueError(f"{path}:/{name}: label {label!r} of task {task!r} not in {classes}")
                if frame not in g:
                    raise KeyError(f"{path}:/{name} has no frame {frame!r} (has {sorted(g)})")
                img = g[frame][()]
                if resize and img.shape[:2] != (resize, resize):
                    img = cv2.resize(img, (resize, resize), interpolation=cv2.INTER_AREA)
                images.append(img)
                labels.append(index[label])
                subjects.append(str(g.attrs["subject"]))
                filenames.append(str(g.attrs.get("filename", name)))
    if not images:
        raise ValueError(f"no samples labelled for task {task!r} in {len(cache_paths)} cache file(s)")
    data = Split(np.stack(images).astype(np.uint8), np.asarray(labels, dtype=np.int64), subjects, filenames)
    is_test = np.array([subject_key(s) == subject_key(held_out) for s in subjects])
    if not is_test.any():
        raise ValueError(f"held-out subject {held_out!r} has no samples for task {task!r}")
    train, test = data.select(~is_test), data.select(is_test)
    assert not {subject_key(s) for s in train.subjects} & {subject_key(held_out)}, "held-out subject in train"
    return train, test


def build_transforms(train, mean, std, grayscale=True, hflip=True, rotate=15):
    """uint8 HWC RGB array -> normalised float CHW tensor; flip and rotation (+-`rotate` degrees) if train.

    mean, std: per-channel normalisation, from the timm model's pretrained_cfg.
    grayscale: luminance copied to 3 channels (keeps the ImageNet stem's 3 inputs).
    """
    t = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]  # scale: uint8 0..255 -> float 0..1
    if grayscale:
        t.append(v2.Grayscale(num_output_channels=3))
    if train and hflip:
        t.append(v2.RandomHorizontalFlip())
    if train and rotate:
        t.append(v2.RandomRotation(rotate))
    t.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(t)


class InMemoryDataset(Dataset):
    """(image, label) pairs from arrays; `transform` maps one uint8 HWC image to a tensor.

    An item is an index, or an (index, seed) pair from SeededSampler: the random transform then draws
    from the torch RNG seeded with `seed` (forked, so the caller's RNG is untouched). Each sample's
    augmentation then depends only on (run seed, epoch, sample), not on worker count or process.
    """

    def __init__(self, images, labels, transform=None):
        assert len(images) == len(labels)
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, item):
        i, seed = item if isinstance(item, tuple) else (item, None)
        img = self.images[i]
        if self.transform is not None:
            if seed is None:
                img = self.transform(img)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    img = self.transform(img)
        return img, int(self.labels[i])


class SeededSampler(Sampler):
    """Shuffles with a torch.Generator seeded from (seed, epoch) and gives each item its own
    augmentation seed; call set_epoch(e) before each epoch (like DistributedSampler).

    Hand-rolled because DataLoader workers keep their RNG state across epochs (persistent_workers)
    and so would make a run resumed at epoch k differ from one never stopped.
    """

    def __init__(self, n, seed):
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, stream=1))
        order = torch.randperm(self.n, generator=g).tolist()
        seeds = torch.randint(0, 2**62, (self.n,), generator=g).tolist()
        return iter(zip(order, seeds, strict=True))


def epoch_seed(seed, epoch, stream=0):
    """A distinct 63-bit seed per (run seed, epoch, stream); streams separate shuffle from model RNG."""
    return (int(seed) * 1_000_003 + int(epoch) * 1_009 + int(stream)) % (2**63 - 1)
