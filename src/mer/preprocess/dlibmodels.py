"""Locate dlib's model files shipped in the PyPI package face-recognition-models."""

import importlib.util
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
