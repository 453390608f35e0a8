import h5py
import numpy as np
import pytest
import torch

from mer.data import (
    InMemoryDataset,
    SeededSampler,
    build_transforms,
    fold_subjects,
    load_split,
    subject_key,
    subjects_with_samples,
)

CLASSES = ["happiness", "surprise", "others"]
KINDS = ("onset", "apex", "annotated", "mid")


def write_cache(folder, subjects=("01", "02", "03"), n=5, size=32, unlabelled=()):
    """One h5 per subject shaped like the crop cache; the apex brightness encodes the class.

    Each subject has `n` labelled clips plus one 'fear' clip, which the 5-class task leaves out;
    subjects in `unlabelled` have only such clips.
    """
    paths, rng = [], np.random.default_rng(0)
    for s in subjects:
        path = folder / f"sub{s}.h5"
        with h5py.File(path, "w") as h5:
            h5.attrs.update(subject=s, size=size)
            emotions = ["fear"] if s in unlabelled else [CLASSES[i % 3] for i in range(n)] + ["fear"]
            for i, emotion in enumerate(emotions):
                name = f"EP{i:02d}_{s}f"
                g = h5.create_group(name)
                label = emotion if emotion in CLASSES else ""
                g.attrs.update(subject=s, filename=name, emotion=emotion, label_5class=label,
                               label_3class="positive" if emotion == "happiness" else "negative",
                               onset=0, offset=20)
                level = 40 + 80 * CLASSES.index(emotion) if emotion in CLASSES else 0
                img = np.clip(level + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
                for j, kind in enumerate(KINDS):
                    g.create_dataset(kind, data=img if kind == "apex" else img // 2)
                    g.attrs[f"frame_{kind}"] = j * 5
                    g.attrs[f"sha1_{kind}"] = "0" * 40
        paths.append(path)
    return paths


def test_split_leaves_one_subject_out(tmp_path):
    paths = write_cache(tmp_path)
    for held in fold_subjects(["01", "02", "03"]):
        train, test = load_split(paths, "5class", "apex", held, CLASSES)
        assert set(test.subjects) == {held}
        assert held not in set(train.subjects)
        assert set(train.subjects) | set(test.subjects) == {"01", "02", "03"}
        assert len(test) == 5 and len(train) == 10  # 'fear' clips have no 5-class label
        assert train.images.dtype == np.uint8 and train.images.shape == (10, 32, 32, 3)
        assert train.labels.dtype == np.int64
        assert [CLASSES[i] for i in test.labels] == (CLASSES * 2)[:5]
        assert test.filenames[0] == f"EP00_{held}f"


def test_labels_and_frame_kind(tmp_path):
    paths = write_cache(tmp_path)
    _, test = load_split(paths, "5class", "apex", "02", CLASSES)
    # class index follows CLASSES order; apex brightness 40 + 80 * index
    for img, y in zip(test.images, test.labels, strict=True):
        assert abs(img.mean() - (40 + 80 * y)) < 5
    _, onset = load_split(paths, "5class", "onset", "02", CLASSES)
    assert np.array_equal(onset.images, test.images // 2)


def test_resize_once_at_load(tmp_path):
    paths = write_cache(tmp_path, size=32)
    train, test = load_split(paths, "5class", "apex", "sub01", CLASSES, resize=24)
    assert train.images.shape[1:] == (24, 24, 3) and set(test.subjects) == {"01"}


def test_subject_without_samples_gets_no_fold(tmp_path):
    paths = write_cache(tmp_path, subjects=("01", "02", "03", "04"), unlabelled=("04",))
    assert subjects_with_samples(paths, "5class") == ["01", "02", "03"]
    assert subjects_with_samples(paths, "3class") == ["01", "02", "03", "04"]
    with pytest.raises(ValueError, match="04"):
        load_split(paths, "5class", "apex", "04", CLASSES)
    assert fold_subjects(["10", "2", "2", "01"]) == ["01", "2", "10"]
    assert subject_key("sub07") == subject_key("07") == subject_key(7) == "7"


def test_label_outside_classes_is_an_error(tmp_path):
    paths = write_cache(tmp_path)
    with pytest.raises(ValueError, match="others"):
        load_split(paths, "5class", "apex", "01", CLASSES[:2])


def test_transforms(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    test_tf = build_transforms(False, mean, std)
    x = test_tf(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grayscale copied to 3 channels
    gray = (0.2989 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]) / 255
    assert torch.allclose(x[0], (torch.tensor(gray, dtype=torch.float32) - 0.5) / 0.25, atol=0.02)
    color = build_transforms(False, mean, std, grayscale=False)(img)
    torch.testing.assert_close(color, (torch.tensor(img).permute(2, 0, 1) / 255 - 0.5) / 0.25)
    train_tf = build_transforms(True, mean, std, hflip=True, rotate=15)
    outs = [train_tf(img) for _ in range(8)]
    assert any(not torch.equal(o, x) for o in outs)  # augmented
    assert not build_transforms(False, mean, std, hflip=True, rotate=15)(img).ne(x).any()


def test_seeded_sampler_and_dataset_are_reproducible():
    imgs = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    ds = InMemoryDataset(imgs, np.arange(6), build_transforms(True, (0.5,) * 3, (0.5,) * 3))
    s = SeededSampler(6, seed=3)
    s.set_epoch(2)
    first = list(s)
    assert sorted(i for i, _ in first) == list(range(6))
    assert list(s) == first
    s.set_epoch(3)
    assert list(s) != first
    i, seed = first[0]
    torch.manual_seed(0)
    a = ds[(i, seed)][0]
    outside = torch.rand(1)
    torch.manual_seed(0)
    b = ds[(i, seed)][0]
    assert torch.equal(a, b) and torch.equal(torch.rand(1), outside)  # the caller's RNG is untouched
