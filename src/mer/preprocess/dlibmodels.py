"""Locate dlib's model files shipped in the PyPI package face-recognition-models; dlib's face detector."""

import importlib.util
import os
import tempfile
from pathlib import Path


def model_path(name="shape_predictor_68_face_landmarks.dat"):
    """Path of a model file inside face_recognition_models/models/.

    The package is found without importing it: its __init__ imports pkg_resources, which new
    setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "dlib model files not found: install the PyPI package face-recognition-models "
            "(pip install face-recognition-models==0.3.0)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.exists():
        raise FileNotFoundError(f"dlib model file missing from face-recognition-models: {path}")
    return path


def cache_dir():
    """Where mer keeps files it can rebuild: $MER_CACHE_DIR, else $XDG_CACHE_HOME/mer, else ~/.cache/mer."""
    if os.environ.get("MER_CACHE_DIR"):
        return Path(os.environ["MER_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mer"


def frontal_face_detector():
    """dlib's HOG frontal face detector. dlib builds it from a string compiled into the library, which takes
    hundreds of times longer than reading back a copy saved with the detector's own `save`. Every landmark and
    apex job needs one, so the copy is kept in cache_dir(), one per dlib version, written once. Where the cache
    cannot be read or written, it is built. Written by rename, but not with mer.io.atomic_path: that removes
    other writers' temporary files first, and two jobs may race to write this one."""
    import dlib

    path = cache_dir() / f"dlib-{dlib.__version__}-frontal_face_detector.svm"
    if path.exists():
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError:  # unreadable: rebuilt and written again below
            pass
    detector = dlib.get_frontal_face_detector()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        detector.save(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError):  # a read-only home, a full disk: the built detector serves all the same
        pass
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
    return detector
