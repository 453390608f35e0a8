import h5py
import numpy as np
import pytest

from mer.train.data import (
    clip_input,
    distinct_subjects,
    input_datasets,
    load_samples,
    load_split,
    subject_key,
    subjects_with_samples,
)

CLASSES = ["happiness", "surprise", "others"]
FRAMES = ("onset", "apex", "annotated", "mid")


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
                for j, frame in enumerate(FRAMES):
                    g.create_dataset(frame, data=img if frame == "apex" else img // 2)
                    g.attrs[f"frame_{frame}"] = j * 5
                    g.attrs[f"sha1_{frame}"] = "0" * 40
        paths.append(path)
    return paths


def test_split_leaves_one_subject_out(tmp_path):
    paths = write_cache(tmp_path)
    for held in distinct_subjects(["01", "02", "03"]):
        train, test = load_split(paths, "5class", "apex", held, CLASSES)
        assert set(test.subjects) == {held}
        assert held not in set(train.subjects)
        assert set(train.subjects) | set(test.subjects) == {"01", "02", "03"}
        assert len(test) == 5 and len(train) == 10  # 'fear' clips have no 5-class label
        assert train.images.dtype == np.uint8 and train.images.shape == (10, 32, 32, 3)
        assert train.labels.dtype == np.int64
        assert [CLASSES[i] for i in test.labels] == (CLASSES * 2)[:5]
        assert test.filenames[0] == f"EP00_{held}f"


def test_labels_and_frame_choice(tmp_path):
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
    assert distinct_subjects(["10", "2", "2", "01"]) == ["01", "2", "10"]
    assert subject_key("sub07") == subject_key("07") == subject_key(7) == "7"


def test_label_outside_classes_is_an_error(tmp_path):
    paths = write_cache(tmp_path)
    with pytest.raises(ValueError, match="others"):
        load_split(paths, "5class", "apex", "01", CLASSES[:2])




@pytest.mark.parametrize("input", ["frame", "difference", "flow"])
def test_a_clips_input_from_its_crops_is_what_training_reads_from_the_caches(tmp_path, input):
    """clip_input (mer predict's path, from one clip's crops) against load_samples (training's, from the crop
    and flow caches the workflow writes from the same crops)."""
    from mer.preprocess.flow import flow_subject

    paths = write_cache(tmp_path, subjects=("01",), n=2, size=32)
    if input == "flow":
        flow_subject(paths[0], tmp_path / "flow.h5", "dis", 0.15)
        paths = [tmp_path / "flow.h5"]
    c = {"input": input, "frame": "apex", "size": 24}
    data = load_samples(paths, "5class", input_datasets(c), CLASSES, resize=24)
    with h5py.File(tmp_path / "sub01.h5") as h5:
        crops = [{f: h5[name][f][()] for f in FRAMES} for name in sorted(h5) if h5[name].attrs["label_5class"]]
    got = np.stack([clip_input(c, clip, {"method": "dis", "lambda": 0.15}) for clip in crops])
    assert got.shape == data.images.shape == (2, 24, 24, 3 if input != "difference" else 6)
    np.testing.assert_array_equal(got, data.images)
