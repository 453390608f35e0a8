"""dlib's face detector read from mer's cache (mer.preprocess.dlibmodels): the same detector, faster."""

import cv2
import dlib
import pytest

from mer import demo
from mer.datasets.sheet import load_raw
from mer.preprocess.dlibmodels import frontal_face_detector

NAME = f"dlib-{dlib.__version__}-frontal_face_detector.svm"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cached_detector_is_dlibs_own(tmp_path, cache, monkeypatch):
    built = frontal_face_detector()  # none cached yet: built, and saved
    assert (cache / NAME).exists()

    def not_again():
        raise AssertionError("the detector was built again instead of read from the cache")

    monkeypatch.setattr(dlib, "get_frontal_face_detector", not_again)
    cached = frontal_face_detector()
    built.save(str(tmp_path / "built.svm"))
    cached.save(str(tmp_path / "cached.svm"))
    assert (tmp_path / "built.svm").read_bytes() == (tmp_path / "cached.svm").read_bytes()
    frames = tmp_path / "demo"
    demo.make_demo(frames, subjects=2, clips_per_subject=1, workers=1)
    for r in load_raw(frames / "coding.csv").itertuples():
        gray = cv2.imread(str(frames / "frames" / f"sub{r.subject}" / r.filename / f"img{int(r.onset)}.jpg"),
                          cv2.IMREAD_GRAYSCALE)
        assert list(cached(gray, 0)) == list(built(gray, 0)) and len(built(gray, 0)) == 1


def test_a_bad_cache_is_rebuilt_and_an_unwritable_one_ignored(tmp_path, cache, monkeypatch):
    cache.mkdir()
    (cache / NAME).write_bytes(b"not a detector")
    assert isinstance(frontal_face_detector(), dlib.fhog_object_detector)
    dlib.fhog_object_detector(str(cache / NAME))  # written again, readable
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MER_CACHE_DIR", str(tmp_path / "a-file" / "mer"))  # cannot be created
    assert isinstance(frontal_face_detector(), dlib.fhog_object_detector)
    assert not list(tmp_path.glob("**/*.part"))
