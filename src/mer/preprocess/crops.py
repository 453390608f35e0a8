"""The HDF5 face-crop cache: one file per subject, one group per clip. Training reads only this.

Group `/<clip>` (the filename, or filename@onset for clips sharing one) attrs: subject, filename, clip, emotion,
label_<task>, onset, offset, frame_<kind>, sha1_<kind> (of the source JPEG's bytes).
Datasets `<kind>`: uint8 (S, S, 3) RGB.
Kinds: onset, apex (spotted), annotated (sheet apex, spotted where missing), mid (non-apex ablation).
"""

import hashlib

import cv2
import h5py
import numpy as np

from mer.datasets.frames import clip_of, decode_frame, frame_path
from mer.io import atomic_path, read_rows
from mer.preprocess.align import align_crop
from mer.preprocess.landmarks import is_ok, rows_by_clip, to_array

KINDS = {"onset": "onset", "apex": "apex_spotted", "annotated": "apex_annotated", "mid": "mid"}


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
            for kind, col in KINDS.items():
                f = int(r[col])
                path = frame_path(root, pattern, subject, r["filename"], f, r["emotion"])
                # Per-frame landmarks: use that frame's points; else the clip's one detection.
                row = [m for m in lm if int(m["frame"]) == f] if len(lm) > 1 else lm
                data = path.read_bytes()  # read once: decoded and hashed
                crop = align_crop(decode_frame(data, path, gray=False), to_array(row)[0], size, align)
                g.create_dataset(kind, data=cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
                g.attrs[f"frame_{kind}"] = f
                g.attrs[f"sha1_{kind}"] = hashlib.sha1(data).hexdigest()
            n += 1
    print(f"sub{subject}: cached {n} clips at {size}px ({align} alignment)")
    return n


def read_cache(path, kind="apex"):
    """(images (N, S, S, 3) uint8, attrs DataFrame) of one subject's cache."""
    import pandas as pd  # here, not at the top: the crop jobs, which import this module, never need it

    with h5py.File(path, "r") as h5:
        size = int(h5.attrs["size"])
        images = [h5[name][kind][()] for name in h5]
        attrs = [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5[name].attrs.items()}
                 for name in h5]
    return (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), pd.DataFrame(attrs)
