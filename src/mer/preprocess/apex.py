"""Apex spotting after Quang et al.: local intensity change in 10 landmark-placed regions.

For frame i and reference frame j (onset or offset), per pixel of a region:
    f(i, j) = (|F_i - F_j| + 1) / (|F_i - F_{i-eps}| + 1)
averaged over the pixels of the region and then over the 10 regions. M_i = f(i, onset) + f(i, offset)
(the offset term can be switched off) and the apex is argmax M_i over onset+eps..offset.
The first eps frames are skipped: there F_{i-eps} would be clamped to the onset and the ratio would
divide by noise alone. Since the denominator is smallest where F_i ~ F_{i-eps}, the peak of M sits
up to about eps/2 frames after the true apex of a symmetric rise and fall.
"""

import numpy as np

from mer.datasets.frames import FrameError, clip_of, frame_path, read_clip, read_frame
from mer.io import write_rows
from mer.preprocess.landmarks import detect_near, face_shift, included_clips, is_ok, rows_by_clip, to_array

# Region centres as dlib-68 indices (or pairs averaged): eyebrows, glabella, inner eye corners,
# nose sides, lip corners, chin. Sides are from the subject's point of view as dlib numbers them.
REGIONS = {
    "brow_right": [19],
    "brow_left": [24],
    "glabella": [21, 22],
    "eye_corner_right": [39],
    "eye_corner_left": [42],
    "nose_side_right": [31],
    "nose_side_left": [35],
    "lip_corner_right": [48],
    "lip_corner_left": [54],
    "chin": [8],
}


def region_boxes(points, frame_shape, scale=0.5):
    """Square boxes (x0, y0, x1, y1) in px, side = scale * mouth width (points 48-54), clipped to the frame."""
    side = scale * float(np.linalg.norm(points[54] - points[48]))
    half = max(1.0, side / 2)
    h, w = frame_shape[:2]
    boxes = []
    for idx in REGIONS.values():
        cx, cy = points[idx].mean(axis=0)
        x0, y0 = int(round(max(0, cx - half))), int(round(max(0, cy - half)))
        x1, y1 = int(round(min(w, cx + half))), int(round(min(h, cy + half)))
        boxes.append((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    return boxes


def _ratio(clip, ref, eps):
    """Mean over pixels of (|F_i - F_ref| + 1) / (|F_i - F_{i-eps}| + 1) for each frame i (float32)."""
    prev = np.concatenate([np.repeat(clip[:1], eps, axis=0), clip[:-eps]]) if eps else clip
    num = np.abs(clip - clip[ref]) + 1.0
    den = np.abs(clip - prev) + 1.0
    return (num / den).reshape(len(clip), -1).mean(axis=1)


def spot_curve(clip, boxes, eps=3, use_offset=True):
    """M_i for every frame of a (T, H, W) grayscale clip; boxes from `region_boxes`.

    boxes may be one list for the clip or one list per frame (per-frame landmarks)."""
    per_frame = isinstance(boxes[0], list | tuple) and isinstance(boxes[0][0], list | tuple)
    t = len(clip)
    m = np.zeros(t, dtype=np.float64)
    for r in range(len(REGIONS)):
        if per_frame:
            # Each frame's region taken at that frame's box, resized to the onset box's size.
            x0, y0, x1, y1 = boxes[0][r]
            patches = []
            for k in range(t):
                a0, b0, a1, b1 = boxes[k][r]
                p = clip[k, b0:b1, a0:a1]
                patches.append(p if p.shape == (y1 - y0, x1 - x0) else _resize(p, (x1 - x0, y1 - y0)))
            region = np.stack(patches).astype(np.float32)
        else:
            x0, y0, x1, y1 = boxes[r]
            region = clip[:, y0:y1, x0:x1].astype(np.float32)
        f = _ratio(region, 0, eps)
        if use_offset:
            f = f + _ratio(region, t - 1, eps)
        m += f
    return m / len(REGIONS)


def _resize(patch, size):
    import cv2

    return cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR)


COLUMNS = ["subject", "filename", "clip", "onset", "offset", "apex_sheet", "apex_spotted", "apex_annotated",
           "annotated_fallback", "mid", "face_shift", "ok", "reason"]


# The frame choices of a clip (an experiment's `frame`), each with the apex table's column that holds it.
FRAMES = {"onset": "onset", "apex": "apex_spotted", "annotated": "apex_annotated", "mid": "mid"}


def apex_of_curve(curve, eps):
    """Index (0-based within the clip) of the spotted apex: argmax of M over eps..T-1."""
    start = eps if len(curve) > eps else 0
    return start + int(np.argmax(curve[start:]))


def spot_clip(stack, points, *, eps=3, use_offset=True, region_scale=0.5, reduce=1):
    """(M_i curve, apex index within the clip, region boxes) of a grey clip `stack` (T, H, W) decoded at
    1/reduce scale. points: the clip's landmarks in full-scale px, (68, 2) from one detection or (T, 68, 2)
    from every frame's (then the boxes are per frame)."""
    points = np.asarray(points) / reduce  # in the reduced clip's px
    if points.ndim == 2:
        boxes = region_boxes(points, stack.shape[1:], region_scale)
    else:
        boxes = [region_boxes(p, stack.shape[1:], region_scale) for p in points]
    curve = spot_curve(stack, boxes, eps=eps, use_offset=use_offset)
    return curve, apex_of_curve(curve, eps), boxes


def frame_choices(numbers, apex, annotated=None):
    """{frame choice (FRAMES): frame number} of a clip whose frames are `numbers` (onset..offset): its onset;
    `apex`, the spotted apex; `annotated`, the coding sheet's apex (the spotted one where there is none); and
    mid, the frame halfway (by position) between the onset and the apex, the paper's non-apex ablation."""
    numbers = list(numbers)
    mid = numbers[numbers.index(apex) // 2]
    return {"onset": numbers[0], "apex": apex, "annotated": apex if annotated is None else annotated, "mid": mid}


def check_face(gray, mark, frame, max_shift, upsample=0):
    """(problem or '', eye shift in inter-ocular distances) of the face at `frame` (its grey image) against
    the clip's one landmark row `mark` (a mapping, as made or read back): the face must still be there, near
    the landmark frame's box, and its eyes within `max_shift` inter-ocular distances of where they were."""
    box = tuple(int(float(mark[side])) for side in ("left", "top", "right", "bottom"))
    found = detect_near(gray, box, upsample)
    if found is None:
        return f"face lost at apex frame {frame}: no face near the box found at frame {mark['frame']}", float("nan")
    shift = face_shift(to_array([mark])[0], found)
    if shift > max_shift:
        return (f"face moved {shift:.2f} inter-ocular distances between frame {mark['frame']} and apex frame "
                f"{frame} (more than apex.max_face_shift {max_shift})"), shift
    return "", shift


def spot_subject(samples_tsv, landmarks_tsv, subject, root, pattern, out, curves_out, *, eps=3,
                 use_offset=True, region_scale=0.5, threads=1, max_face_shift=0.3, upsample=0, reduce=2):
    """Spot every clip of one subject. Writes per clip (out): sheet apex, spotted apex, the annotated
    choice (sheet apex, or the spotted one where the sheet has none, flagged), and the mid frame
    (midway between onset and spotted apex, the paper's non-apex ablation); and the M_i curves. Returns the
    clips' rows (dicts).

    With one landmark row per clip, the face is detected again at the spotted apex (`check_face`): a
    clip whose face is gone there, or has moved more than `max_face_shift` inter-ocular distances
    (None: no check), is excluded with the reason, since its crops would be aligned on the wrong place.
    With per-frame landmarks every frame has its own face already (a frame without one excludes the
    clip at landmarks), and the crops use the apex frame's own points.

    reduce: the clip is decoded in grey scaled down by this factor (1, 2 or 4; libjpeg's DCT scaling),
    and the regions with it. Every frame is decoded once here; the face check decodes the apex frame again
    at full scale."""
    by_clip = rows_by_clip(landmarks_tsv)
    rows, curves = [], []
    for r in included_clips(samples_tsv, subject):
        onset, offset, filename = int(r["onset"]), int(r["offset"]), r["filename"]
        sheet_apex = int(r["apex"]) if r["apex"] else None
        row = {"subject": subject, "filename": filename, "clip": clip_of(r), "onset": onset, "offset": offset,
               "apex_sheet": sheet_apex, "ok": False, "reason": ""}
        lm = by_clip.get(row["clip"], [])
        bad = [m for m in lm if not is_ok(m)]
        if not lm or bad:
            why = bad[0]["reason"] if bad else "no landmark row"
            row["reason"] = f"sub{subject} {filename}: landmarks failed: {why}"
            rows.append(row)
            continue
        try:
            clip = read_clip(root, pattern, subject, filename, onset, offset, threads=threads, reduce=reduce,
                             emotion=r["emotion"])
        except FrameError as e:
            row["reason"] = f"sub{subject} {filename}: {e}"
            rows.append(row)
            continue
        points = to_array(lm)
        m, k, _ = spot_clip(clip, points[0] if len(lm) == 1 else points, eps=eps, use_offset=use_offset,
                            region_scale=region_scale, reduce=reduce)
        apex = onset + k
        curves += [{"subject": subject, "filename": filename, "clip": row["clip"], "frame": onset + k, "m": float(v)}
                   for k, v in enumerate(m)]
        row["apex_spotted"] = apex
        if len(lm) == 1 and max_face_shift is not None:
            try:
                gray = read_frame(frame_path(root, pattern, subject, filename, apex, r["emotion"]))
            except FrameError as e:
                row["reason"] = f"sub{subject} {filename}: {e}"
                rows.append(row)
                continue
            problem, row["face_shift"] = check_face(gray, lm[0], apex, max_face_shift, upsample)
            if problem:
                row["reason"] = f"sub{subject} {filename}: {problem}"
                rows.append(row)
                continue
        fallback = sheet_apex is None
        frames = frame_choices(range(onset, offset + 1), apex, sheet_apex)
        row.update({
            "apex_spotted": apex,
            "apex_annotated": frames["annotated"],
            "annotated_fallback": fallback,
            "mid": frames["mid"],
            "ok": True,
        })
        if fallback:
            print(f"NOTE: sub{subject} {filename}: sheet apex missing; 'annotated' uses spotted apex {apex}")
        rows.append(row)
    write_rows(curves, ["subject", "filename", "clip", "frame", "m"], curves_out)
    write_rows(rows, COLUMNS, out)
    print(f"sub{subject}: spotted {sum(r['ok'] for r in rows)} of {len(rows)} clips")
    return rows
