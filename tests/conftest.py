import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_SHEET = ROOT.parent / "shared" / "data" / "casme2" / "CASME2-coding-20140508.csv"
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
TASKS = SCHEMA["properties"]["tasks"]["default"]
EMOTIONS = SCHEMA["properties"]["emotions"]["default"]


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A 3-subject generated demo (frames + coding.csv), made once per test session."""
    from mer.demo import make_demo

    out = tmp_path_factory.mktemp("demo")
    make_demo(out, subjects=3, clips_per_subject=5, seed=1, workers=2)
    return out


def write_jpeg(path, img):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def fake_frames(root, subject, filename, onset, offset, shape=(48, 64)):
    """Small noise JPEGs for frames onset..offset (enough for the sheet's frame checks)."""
    rng = np.random.default_rng(0)
    for f in range(onset, offset + 1):
        write_jpeg(root / f"sub{subject}" / filename / f"img{f}.jpg", rng.integers(0, 255, shape, np.uint8))


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst
