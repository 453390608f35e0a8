"""The HDF5 face-crop cache: one file per subject, one group per clip. Training reads only this.

Group `/<clip>` (the filename, or filename@onset for clips sharing one) attrs: subject, filename, clip, emotion,
label_<task>, onset, offset, frame_<frame>, sha1_<frame> (of the source JPEG's bytes).
Datasets `<frame>`, one per frame choice (mer.preprocess.apex.FRAMES): uint8 (S, S, 3) RGB.
Frame choices: onset, apex (spotted), annotated (sheet apex, spotted where missing), mid (non-apex ablation).
"""

import hashlib

import cv2
import h5py
import numpy as np

from mer.datasets.frames import clip_of, decode_frame, frame_path
from mer.io import atomic_path, read_rows
from mer.preprocess.align import align_crop
from mer.preprocess.apex import FRAMES
from mer.preprocess.landmarks import is_ok, rows_by_clip, to_array


def crop_clip(frames, image, points, size=224, align="eyes"):
    """{frame choice: aligned RGB crop (size, size, 3) uint8} of a clip. frames: {frame choice: frame number};
    image(frame): that frame's BGR image; points: the clip's landmarks in px, (68, 2) from one detection,
    or {frame: (68, 2)} from every frame's (each frame is then aligned on its own points)."""
    return {choice: cv2.cvtColor(align_crop(image(f), points[f] if isinstance(points, dict) else points, size,
                                            align), cv2.COLOR_BGR2RGB)
            for choice, f in frames.items()}


def crop_subject(samples_tsv, landmarks_tsv, apex_tsv, subject, root, pattern, out, *, size=224,
                 align="eyes", dataset=None):
    """Align and crop the onset, apex, annotated-apex and mid frames of every spotted clip. `dataset` (the
    workflow's dataset name) is written in the file's attributes: training names the subject by it."""
    samples = {(r["subject"], clip_of(r)): r for r in read_rows(samples_tsv)}
    marks = rows_by_clip(landmarks_tsv)
    # Each spotted clip's apex row, completed with its sample row (emotion, labels); the apex row's own
    # columns win where both have one (onset, offset, reason).
    spotted = [{**samples[(a["subject"], clip_of(a))], **a} for a in read_rows(apex_tsv) if is_ok(a)]
    n = 0
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"subject": subject, "size": size, "align": align})
        if dataset:
            h5.attrs["dataset"] = dataset
        for r in spotted:
            clip = clip_of(r)  # one group per clip: CAS(ME)^3's clips sharing a filename stay apart
            lm = marks.get(clip, [])
            g = h5.create_group(clip)
            g.attrs.update({"subject": subject, "filename": r["filename"], "clip": clip, "emotion": r["emotion"],
                            "onset": int(r["onset"]), "offset": int(r["offset"])})
            g.attrs.update({c: v for c, v in r.items() if c.startswith("label_")})
            frames = {choice: int(r[col]) for choice, col in FRAMES.items()}
            # Per-frame landmarks: each frame's points; else the clip's one detection.
            points = to_array(lm)
            points = {int(m["frame"]): p for m, p in zip(lm, points, strict=True)} if len(lm) > 1 else points[0]
            image, sha1 = _jpeg_reader(root, pattern, subject, r)
            for choice, crop in crop_clip(frames, image, points, size, align).items():
                g.create_dataset(choice, data=crop)
                g.attrs[f"frame_{choice}"] = frames[choice]
                g.attrs[f"sha1_{choice}"] = sha1[frames[choice]]
            n += 1
    print(f"sub{subject}: cached {n} clips at {size}px ({align} alignment)")
    return n


def _jpeg_reader(root, pattern, subject, row):
    """(image(frame) for crop_clip from one clip's JPEGs, {frame: SHA-1 of the file} that it fills)."""
    sha1 = {}

    def image(f):
        path = frame_path(root, pattern, subject, row["filename"], f, row["emotion"])
        data = path.read_bytes()  # read once: decoded and hashed
        sha1[f] = hashlib.sha1(data).hexdigest()
        return decode_frame(data, path, gray=False)

    return image, sha1


def read_cache(path, frame="apex"):
    """(images (N, S, S, 3) uint8, attrs DataFrame) of one subject's cache: the `frame` choice's crops."""
    import pandas as pd  # here, not at the top: the crop jobs, which import this module, never need it

    with h5py.File(path, "r") as h5:
        size = int(h5.attrs["size"])
        images = [h5[name][frame][()] for name in h5]
        attrs = [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5[name].attrs.items()}
                 for name in h5]
    return (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), pd.DataFrame(attrs)
