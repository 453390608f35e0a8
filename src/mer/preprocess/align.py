"""Face alignment: a similarity transform (rotation, uniform scale, shift) from landmarks."""

import functools

import cv2
import numpy as np

from mer.preprocess.landmarks import detect, eye_centres

# Where the eye centres land in the output crop, as fractions of its side.
EYE_Y = 0.36
EYE_HALF_DIST = 0.19


def eye_targets(size):
    return np.array([[(0.5 - EYE_HALF_DIST) * size, EYE_Y * size],
                     [(0.5 + EYE_HALF_DIST) * size, EYE_Y * size]], dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _template_unit():
    """68-point template in a unit crop: the landmarks of the reference face (scikit-image's public-domain
    astronaut portrait) aligned by its eyes. Used by 'all68' alignment as the shape to fit."""
    from skimage.data import astronaut

    found = detect(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY))
    if found is None:  # would mean the dlib model is broken
        raise RuntimeError("dlib found no face in the reference portrait")
    pts = found[1].astype(np.float64)
    m = similarity(eye_centres(pts), eye_targets(1.0))
    return pts @ m[:2, :2].T + m[:2, 2]


def similarity(src, dst):
    """3x3 matrix of the least-squares similarity (rotation, uniform scale, shift) taking points `src` to
    `dst` (Umeyama 1991; exact for two points). The same estimate as scikit-image's SimilarityTransform,
    written out because importing skimage.transform loads SciPy, a start-up cost in every crop job."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var = (s**2).sum() / len(src)
    if var == 0:
        raise ValueError("degenerate landmarks: cannot estimate the alignment")
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = (sv * np.diag(sign)).sum() / var
    m = np.eye(3)
    m[:2, :2] = scale * rot
    m[:2, 2] = mu_d - scale * rot @ mu_s
    return m


def transform(points, size, method="eyes"):
    """2x3 matrix mapping frame px to crop px. 'eyes': the two eye centres go to fixed places
    (exact two-point fit); 'all68': least-squares similarity of all 68 points to the template."""
    points = np.asarray(points, dtype=np.float64)
    if method == "eyes":
        return similarity(eye_centres(points), eye_targets(size))[:2]
    if method == "all68":
        return similarity(points, _template_unit() * size)[:2]
    raise ValueError(f"unknown alignment method {method!r} (use 'eyes' or 'all68')")


def align_crop(image, points, size=224, method="eyes"):
    """The aligned size x size crop of `image` (any channels)."""
    m = transform(points, size, method)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
