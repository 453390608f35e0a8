"""Locate and decode the frames of a clip."""

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

DEFAULT_PATTERN = "sub{subject}/{filename}/img{frame}.jpg"


class FrameError(RuntimeError):
    """A frame is missing or corrupt; the message names the file."""


def frame_path(root, pattern, subject, filename, frame):
    """The frame's path below `root`. FrameError if it resolves outside the root: a sheet cell with `..`
    (the sheet reader rejects those first) or a symlink inside the root pointing out of it."""
    path = Path(root) / pattern.format(subject=subject, filename=filename, frame=frame)
    real, real_root = os.path.realpath(path), _realpath(str(root))
    if os.path.commonpath([real, real_root]) != real_root:
        raise FrameError(f"frame path {path} resolves to {real}, outside the data root {real_root} "
                         "(a symlink or '..' leading out of data.root): refused")
    return path


@functools.lru_cache(maxsize=16)
def _realpath(root):
    return os.path.realpath(root)


def _jpeg_complete(data):
    # libjpeg (through OpenCV) "decodes" a truncated file by padding it with grey and only warns,
    # so check the start-of-image and end-of-image markers ourselves.
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" in data[-64:]


def read_frame(path, gray=True):
    """Decode one frame (uint8, HxW if gray else HxWx3 BGR); FrameError names a bad file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FrameError(f"frame missing: {path}") from None
    return decode_frame(data, path, gray)


def decode_frame(data, path, gray=True):
    """Decode a frame's bytes (read once by the caller, e.g. to hash them too); `path` names it in errors."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(data):
        raise FrameError(f"corrupt JPEG (truncated or not a JPEG): {path}")
    flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise FrameError(f"frame does not decode: {path}")
    return img


def check_frame(path):
    """None if the frame exists and decodes, else the problem. Decodes at 1/8 scale (DCT scaling in
    libjpeg), which still reads every entropy-coded block, at a fraction of the cost."""
    path = Path(path)
    if not path.exists():
        return f"frame missing: {path}"
    data = path.read_bytes()
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(data):
        return f"corrupt JPEG (truncated or not a JPEG): {path}"
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        return f"frame does not decode: {path}"
    return None


def check_clip_frames(clips, root, pattern, threads=2):
    """For each (subject, filename, onset, offset): None, or the first problem among its frames."""

    def check(clip):
        subject, filename, onset, offset = clip
        for f in range(onset, offset + 1):
            try:
                problem = check_frame(frame_path(root, pattern, subject, filename, f))
            except FrameError as e:
                problem = str(e)
            if problem:
                return f"frame {f}: {problem}"
        return None

    with ThreadPoolExecutor(max(1, threads)) as pool:  # cv2 releases the GIL while decoding
        return list(pool.map(check, clips))


def read_clip(root, pattern, subject, filename, onset, offset, gray=True, threads=2):
    """All frames onset..offset as one array (T, H, W[, 3])."""
    paths = [frame_path(root, pattern, subject, filename, f) for f in range(onset, offset + 1)]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        return np.stack(list(pool.map(lambda p: read_frame(p, gray), paths)))
