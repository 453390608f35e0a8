"""Alignment geometry and the HDF5 cache round trip."""

import h5py
import numpy as np
import pytest

from mer.preprocess.align import align_crop, eye_centres, eye_targets, transform


def face_points(angle_deg=0.0, scale=1.0, shift=(0.0, 0.0)):
    """68 synthetic points: eyes at fixed places, the rest spread below, then rotated/scaled/shifted."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-60, 60, (68, 2))
    pts[36:42] = [-40, -20] + rng.normal(0, 3, (6, 2))
    pts[42:48] = [40, -20] + rng.normal(0, 3, (6, 2))
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (pts @ rot.T) * scale + np.array([320, 240]) + shift


@pytest.mark.parametrize("angle, scale", [(0, 1), (12, 1.3), (-20, 0.7)])
def test_eyes_land_on_targets(angle, scale):
    pts = face_points(angle, scale, (15, -10))
    m = transform(pts, 224, "eyes")
    got = np.array(eye_centres(pts)) @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(got, eye_targets(224), atol=1e-6)
    # A similarity: equal scale on both axes, no shear.
    a, b = m[0, 0], m[1, 0]
    np.testing.assert_allclose(m[:, :2], [[a, -b], [b, a]], atol=1e-9)


def test_alignment_undoes_rotation():
    # A vertical bar rotated by 10 degrees with the face comes out vertical again.
    img = np.zeros((480, 640), np.uint8)
    pts = face_points(0)
    img[100:400, 318:323] = 255
    import cv2

    rot = cv2.getRotationMatrix2D((320, 240), -10, 1.0)  # OpenCV angles are counter-clockwise
    img_r = cv2.warpAffine(img, rot, (640, 480))
    pts_r = pts @ rot[:, :2].T + rot[:, 2]
    a = align_crop(img, pts, 224)
    b = align_crop(img_r, pts_r, 224)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_all68_on_reference_face_is_close_to_eyes():
    import cv2
    from skimage.data import astronaut

    from mer.preprocess.landmarks import detect

    img = astronaut()
    _, pts = detect(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    m_eyes, m_all = transform(pts, 224, "eyes"), transform(pts, 224, "all68")
    np.testing.assert_allclose(m_eyes, m_all, atol=1e-3)  # the template is this face, eye-aligned
    assert align_crop(img, pts, 64, "all68").shape == (64, 64, 3)
    with pytest.raises(ValueError, match="unknown alignment method"):
        transform(pts, 224, "nose")


def test_cache_round_trip(tmp_path):
    from mer.preprocess.crops import read_cache

    path = tmp_path / "sub01.h5"
    imgs = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), np.uint8)
    with h5py.File(path, "w") as h5:
        h5.attrs.update({"subject": "01", "size": 32})
        for k, img in enumerate(imgs):
            g = h5.create_group(f"EP0{k}")
            g.attrs.update({"subject": "01", "filename": f"EP0{k}", "label_5class": "others", "frame_apex": 10 + k})
            g.create_dataset("apex", data=img)
    got, attrs = read_cache(path, "apex")
    np.testing.assert_array_equal(got, imgs)
    assert attrs.filename.tolist() == ["EP00", "EP01", "EP02"] and attrs.frame_apex.tolist() == [10, 11, 12]


def test_similarity_is_scikit_images_estimate():
    # mer.preprocess.align.similarity stands in for skimage's SimilarityTransform (which loads SciPy at import)
    from skimage.transform import SimilarityTransform

    from mer.preprocess.align import similarity

    rng = np.random.default_rng(0)
    for n in (2, 5, 68):
        src, dst = rng.normal(size=(n, 2)) * 50 + 200, rng.normal(size=(n, 2)) * 40 + 100
        assert np.allclose(similarity(src, dst), SimilarityTransform.from_estimate(src, dst).params, atol=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        similarity(np.ones((68, 2)), rng.normal(size=(68, 2)))
