"""Apex spotting on sequences with a known apex."""

import numpy as np
import pytest

from mer.preprocess.apex import REGIONS, _ratio, apex_of_curve, frame_choices, region_boxes, spot_clip, spot_curve


def clip_with_apex(t=40, apex=23, amp=40.0, noise=2.0, seed=0):
    """(T, 120, 160) frames: textured background; inside each box a texture shifts with a
    triangular-smooth profile that peaks at `apex`."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (120, 160)).astype(np.float32)
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1)) / 3
    prof = np.where(np.arange(t) <= apex, np.arange(t) / apex, (t - 1 - np.arange(t)) / (t - 1 - apex))
    prof = np.sin(prof * np.pi / 2) ** 2
    frames = []
    for p in prof:
        f = base.copy()
        f[40:80, 40:120] += amp * p * np.sin(np.arange(80) / 3.0)[None, :]
        frames.append(f + rng.normal(0, noise, f.shape))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


BOXES = [(40 + 8 * k, 40, 48 + 8 * k, 80) for k in range(len(REGIONS))]


@pytest.mark.parametrize("apex", [8, 23, 31])
@pytest.mark.parametrize("eps", [1, 3])
def test_spotted_apex_matches_known_apex(apex, eps):
    clip = clip_with_apex(apex=apex)
    m = spot_curve(clip, BOXES, eps=eps)
    # The denominator is smallest where F_i ~ F_{i-eps}: about eps/2 frames after a symmetric peak.
    assert -1 <= apex_of_curve(m, eps) - apex <= (eps + 1) // 2 + 1


def test_ratio_matches_the_formula():
    rng = np.random.default_rng(3)
    clip = rng.uniform(0, 255, (6, 4, 5)).astype(np.float32)
    got = _ratio(clip, 0, 2)
    for i in range(6):
        prev = clip[max(i - 2, 0)]
        want = ((np.abs(clip[i] - clip[0]) + 1) / (np.abs(clip[i] - prev) + 1)).mean()
        assert got[i] == pytest.approx(want, rel=1e-6)


def test_offset_term_is_switchable():
    clip = clip_with_apex(apex=20)
    with_off = spot_curve(clip, BOXES, eps=3, use_offset=True)
    without = spot_curve(clip, BOXES, eps=3, use_offset=False)
    assert not np.allclose(with_off, without)
    assert abs(apex_of_curve(without, 3) - 20) <= 1


def test_null_motion_gives_no_preferred_frame():
    # Noise only: M stays near 1 per term, with no peak much above the rest.
    clip = clip_with_apex(amp=0.0)
    m = spot_curve(clip, BOXES, eps=3, use_offset=False)
    assert m[3:].max() / np.median(m[3:]) < 1.3


def test_region_boxes_scale_with_mouth_width():
    pts = np.zeros((68, 2), np.float32) + 100
    pts[48], pts[54] = (80, 150), (120, 150)  # mouth 40 px wide
    boxes = region_boxes(pts, (480, 640))
    assert len(boxes) == 10
    assert all(x1 - x0 == 20 and y1 - y0 == 20 for x0, y0, x1, y1 in boxes)
    pts[54] = (160, 150)  # mouth 80 px wide -> boxes of 40 px
    assert region_boxes(pts, (480, 640))[0][2] - region_boxes(pts, (480, 640))[0][0] == 40


def face_points(rng):
    """68 points spread over a 120 x 160 frame at full scale (twice the test clip's)."""
    pts = np.column_stack([rng.uniform(60, 260, 68), rng.uniform(60, 180, 68)]).astype(np.float32)
    pts[48], pts[54] = (120, 160), (200, 160)  # a mouth 80 px wide at full scale
    return pts


def test_spot_clip_scales_the_landmarks_to_the_reduced_clip():
    clip = clip_with_apex(apex=23)
    pts = face_points(np.random.default_rng(0))
    curve, k, boxes = spot_clip(clip, pts, eps=3, region_scale=0.5, reduce=2)
    assert boxes == region_boxes(pts / 2, clip.shape[1:], 0.5)
    np.testing.assert_array_equal(curve, spot_curve(clip, boxes, eps=3))
    assert k == apex_of_curve(curve, 3)
    # per-frame landmarks: one box list per frame; all alike give the one-detection curve
    per_frame, k2, frame_boxes = spot_clip(clip, np.repeat(pts[None], len(clip), 0), eps=3, reduce=2)
    assert len(frame_boxes) == len(clip) and frame_boxes[5] == boxes
    np.testing.assert_allclose(per_frame, curve, rtol=1e-6)
    assert k2 == k


def test_frame_choices_of_a_clip():
    assert frame_choices(range(10, 41), 29, 28) == {"onset": 10, "apex": 29, "annotated": 28, "mid": 19}
    assert frame_choices(range(10, 41), 29)["annotated"] == 29  # no sheet apex: the spotted one
    # mid by position, for frame numbers with gaps (a folder's names): halfway from onset to apex in frames
    assert frame_choices([0, 2, 4, 6, 8, 10], 8)["mid"] == 4
