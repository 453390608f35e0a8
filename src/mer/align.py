"""Face alignment: a similarity transform (rotation, uniform scale, shift) from landmarks."""

import functools

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

# Where the eye centres land in the output crop, as fractions of its side.
EYE_Y = 0.36
EYE_HALF_DIST = 0.19


def eye_centres(points):
    """(right, left) eye centres: means of dlib points 36-41 and 42-47 (the image's left eye first)."""
    return points[36:42].mean(axis=0), points[42:48].mean(axis=0)


def eye_targets(size):
    return np.array([[(0.5 - EYE_HALF_DIST) * size, EYE_Y * size],
                     [(0.5 + EYE_HALF_DIST) * size, EYE_Y * size]], dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _template_unit():
    """68-point template in a unit crop: the landmarks of the reference face (scikit-image's public-domain
    astronaut portrait) aligned by its eyes. Used by 'all68' alignment as the shape to fit."""
    from skimage.data import astronaut

    from mer.landmarks import detect

    found = detect(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY))
    if found is None:  # would mean the dlib model is broken
        raise RuntimeError("dlib found no face in the reference portrait")
    pts = found[1].astype(np.float64)
    return SimilarityTransform.from_estimate(np.array(eye_centres(pts)), eye_targets(1.0))(pts)


def transform(points, size, method="eyes"):
    """2x3 matrix mapping frame px to crop px. 'eyes': the two eye centres go to fixed places
    (exact two-point fit); 'all68': least-squares similarity of all 68 points to the template."""
    points = np.asarray(points, dtype=np.float64)
    if method == "eyes":
        tf = SimilarityTransform.from_estimate(np.array(eye_centres(points)), eye_targets(size))
    elif method == "all68":
        tf = SimilarityTransform.from_estimate(points, _template_unit() * size)
    else:
        raise ValueError(f"unknown alignment method {method!r} (use 'eyes' or 'all68')")
    if not tf:  # a FailedEstimation
        raise ValueError("degenerate landmarks: cannot estimate the alignment")
    return tf.params[:2].astype(np.float64)


def align_crop(image, points, size=224, method="eyes"):
    """The aligned size x size crop of `image` (any channels)."""
    m = transform(points, size, method)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
