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
import pandas as pd

from mer.datasets.frames import clip_of, decode_frame, frame_path
from mer.io import atomic_path
from mer.preprocess.align import align_crop
from mer.preprocess.landmarks import to_array

KINDS = {"onset": "onset", "apex": "apex_spotted", "annotated": "apex_annotated", "mid": "mid"}


def crop_subject(samples_tsv, landmarks_tsv, apex_tsv, subject, root, pattern, out, *, size=224,
                 align="eyes", dataset=None):
    """Align and crop the onset, apex, annotated-apex and mid frames of every spotted clip. `dataset` (the
    workflow's dataset name) is written in the file's attributes: training names the subject by it."""
    samples = pd.read_csv(samples_tsv, sep="\t", dtype={"subject": str})
    marks = pd.read_csv(landmarks_tsv, sep="\t", dtype={"subject": str})
    apex = pd.read_csv(apex_tsv, sep="\t", dtype={"subject": str})
    key = ["subject", "clip"] if "clip" in samples and "clip" in apex else ["subject", "filename"]
    apex = apex[apex.ok].merge(samples, on=key, suffixes=("", "_sheet"))
    labels = [c for c in samples.columns if c.startswith("label_")]
    n = 0
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"subject": subject, "size": size, "align": align})
        if dataset:
            h5.attrs["dataset"] = dataset
        for r in apex.itertuples():
            clip = clip_of(r)  # one group per clip: CAS(ME)^3's clips sharing a filename stay apart
            lm = marks[marks["clip" if "clip" in marks else "filename"] == clip]
            g = h5.create_group(clip)
            g.attrs.update({"subject": subject, "filename": r.filename, "clip": clip, "emotion": r.emotion,
                            "onset": int(r.onset), "offset": int(r.offset)})
            g.attrs.update({c: "" if pd.isna(getattr(r, c)) else str(getattr(r, c)) for c in labels})
            for kind, col in KINDS.items():
                f = int(getattr(r, col))
                path = frame_path(root, pattern, subject, r.filename, f, r.emotion)
                # Per-frame landmarks: use that frame's points; else the clip's one detection.
                row = lm[lm.frame == f] if len(lm) > 1 else lm
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
    with h5py.File(path, "r") as h5:
        size = int(h5.attrs["size"])
        images = [h5[name][kind][()] for name in h5]
        attrs = [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5[name].attrs.items()}
                 for name in h5]
    return (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), pd.DataFrame(attrs)
