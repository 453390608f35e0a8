"""Locate and decode the frames of a clip: a dataset's (sheet row and frame pattern) or a user's own (video, folder)."""

import functools
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

DEFAULT_PATTERN = "sub{subject}/{filename}/img{frame}.jpg"


def clip_of(row):
    """A samples row's clip key (its `clip`: the filename, or filename@onset where clips share a filename,
    as CAS(ME)^3's do); the filename for a table without that column. `row`: a pandas row or a mapping."""
    if isinstance(row, dict):
        return row.get("clip") or row["filename"]
    return getattr(row, "clip", None) or row.filename


class FrameError(RuntimeError):
    """A frame is missing or corrupt; the message names the file."""


def frame_path(root, pattern, subject, filename, frame, emotion="", folders=None):
    """The frame's path below `root` (`pattern`'s fields: subject, filename, frame and, for a dataset whose
    class is a folder as SMIC's, emotion). FrameError if it resolves outside the root: a sheet cell with `..`
    (the sheet reader rejects those first) or a symlink inside the root pointing out of it.
    folders: a dict that the calls for one clip share, holding each folder's real path. os.path.realpath
    costs one lstat per path component, and a clip's frames share their folder, so only the frame itself is
    then looked at; a frame that is a symlink is resolved in full."""
    path = Path(root) / pattern.format(subject=subject, filename=filename, frame=frame, emotion=emotion)
    folder, name = os.path.split(path)
    if folders is None or name in ("", ".", "..") or os.path.islink(path):
        real = os.path.realpath(path)
    else:
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        real = os.path.join(folders[folder], name)
    real_root = _realpath(str(root))
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


def read_frame(path, gray=True, reduce=1):
    """Decode one frame (uint8, HxW if gray else HxWx3 BGR); FrameError names a bad file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FrameError(f"frame missing: {path}") from None
    return decode_frame(data, path, gray, reduce)


# OpenCV flags for a grey decode at full, half and quarter scale: libjpeg scales in the DCT, skipping most
# of the inverse transform's work.
GRAY_FLAGS = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4}


def decode_frame(data, path, gray=True, reduce=1):
    """Decode a frame's bytes (read once by the caller, e.g. to hash them too); `path` names it in errors.
    reduce: 1, 2 or 4, the grey image's scale-down (each side)."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(data):
        raise FrameError(f"corrupt JPEG (truncated or not a JPEG): {path}")
    flag = GRAY_FLAGS[reduce] if gray else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise FrameError(f"frame does not decode: {path}")
    return img


def check_frame(path):
    """None if the frame is there and looks whole, else the problem: a cheap check of size and, for a
    JPEG, its start and end markers (a truncated file lacks the end marker), reading 66 bytes. The full
    decode happens once, in apex spotting, where a frame that still does not decode excludes its clip
    with the reason."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)  # a bare descriptor: no buffered file object for 66 bytes
        try:
            size = os.fstat(fd).st_size
            head, tail = os.pread(fd, 2, 0), os.pread(fd, 64, max(0, size - 64))
        finally:
            os.close(fd)
    except FileNotFoundError:
        return f"frame missing: {path}"
    except OSError as e:
        return f"frame unreadable: {path}: {e.strerror}"
    if size == 0:
        return f"frame empty: {path}"
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(head + tail):
        return f"corrupt JPEG (truncated or not a JPEG): {path}"
    return None


def fingerprint(root, pattern, clips):
    """SHA-256 over the path below `root`, size and modification time (s) of every frame of `clips`
    ((subject, filename, onset, offset[, emotion]) tuples); a missing frame counts as missing. Stands for the
    frames in a job's params: a new or changed frame changes it, a moved data root does not."""
    h = hashlib.sha256()
    for subject, filename, onset, offset, *emotion in clips:
        for f in range(onset, offset + 1):
            rel = pattern.format(subject=subject, filename=filename, frame=f, emotion="".join(emotion))
            try:
                st = os.stat(Path(root) / rel)
                h.update(f"{rel}\t{st.st_size}\t{int(st.st_mtime)}\n".encode())
            except FileNotFoundError:
                h.update(f"{rel}\tmissing\n".encode())
    return h.hexdigest()


def check_clip_frames(clips, root, pattern):
    """For each (subject, filename, onset, offset[, emotion]): None, or the first problem among its frames.
    In one thread: each frame costs a few system calls that the page cache answers at once, so a second
    thread only waits for Python's GIL."""

    def check(clip):
        subject, filename, onset, offset, *emotion = clip
        folders = {}
        for f in range(onset, offset + 1):
            try:
                problem = check_frame(frame_path(root, pattern, subject, filename, f, "".join(emotion), folders))
            except FrameError as e:
                problem = str(e)
            if problem:
                return f"frame {f}: {problem}"
        return None

    return [check(clip) for clip in clips]


def read_clip(root, pattern, subject, filename, onset, offset, gray=True, threads=2, reduce=1, emotion=""):
    """All frames onset..offset as one array (T, H, W[, 3]); grey ones scaled down by `reduce`; decoded in
    `threads` threads (OpenCV releases the GIL while decoding), in this one for threads=1."""
    folders = {}
    paths = [frame_path(root, pattern, subject, filename, f, emotion, folders) for f in range(onset, offset + 1)]
    if threads <= 1:
        return np.stack([read_frame(p, gray, reduce) for p in paths])
    with ThreadPoolExecutor(threads) as pool:
        return np.stack(list(pool.map(lambda p: read_frame(p, gray, reduce), paths)))


# ------------------------------------------------------------------------------- a user's own clip (mer predict)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def open_clip(path):
    """A user's clip: a folder of images (FolderClip) or a video file OpenCV reads (VideoClip)."""
    path = Path(path)
    if path.is_dir():
        return FolderClip(path)
    if not path.exists():
        raise FrameError(f"input not found: {path}")
    return VideoClip(path)


class _Clip:
    """Frames by frame number (`numbers`, ascending); grey frames are kept once decoded."""

    def __init__(self, name, numbers):
        self.name, self.numbers = str(name), list(numbers)
        self._pos = {n: k for k, n in enumerate(self.numbers)}
        self._gray = {}

    def __len__(self):
        return len(self.numbers)

    def __contains__(self, number):
        return number in self._pos

    def position(self, number):
        return self._pos[number]

    def gray(self, number, reduce=1):
        key = (number, reduce)
        if key not in self._gray:
            self._gray[key] = self._decode_gray(self._pos[number], reduce)
        return self._gray[key]

    def gray_stack(self, numbers, reduce=1, threads=2):
        """(T, H, W) uint8 grey frames, scaled down by `reduce`; decoded in `threads` threads."""
        with ThreadPoolExecutor(max(1, threads)) as pool:  # cv2 releases the GIL while decoding
            return np.stack(list(pool.map(lambda n: self.gray(n, reduce), numbers)))


class FolderClip(_Clip):
    """The images of a folder, decoded as the workflow decodes a dataset's frames (read_frame). Frame numbers
    come from the names where every name holds one distinct number (CASME II's img46.jpg is frame 46),
    else they are positions 0, 1, ... in name order."""

    def __init__(self, folder):
        files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise FrameError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder {folder}")
        found = [re.search(r"(\d+)\D*$", p.stem) for p in files]
        numbers = [int(m.group(1)) if m else None for m in found]
        if None not in numbers and len(set(numbers)) == len(numbers):
            numbers, files = zip(*sorted(zip(numbers, files, strict=True)), strict=True)
        else:
            files, numbers = sorted(files), range(len(files))
        super().__init__(folder, numbers)
        self.files = list(files)

    def path(self, number):
        return self.files[self._pos[number]]

    def color(self, number):
        return read_frame(self.path(number), gray=False)

    def _decode_gray(self, k, reduce):
        return read_frame(self.files[k], gray=True, reduce=reduce)


MAX_VIDEO_BYTES = 4 * 2**30  # decoded frames held by VideoClip: 4,600 frames of 640x480 (23 s at 200 fps)


class VideoClip(_Clip):
    """Every frame of a video file (mp4, avi, mov, ...; what OpenCV's FFmpeg reads), numbered 0, 1, ...
    Held decoded in memory (0.9 MB per 640x480 frame). Grey frames scaled down with cv2.INTER_AREA, a box
    filter like libjpeg's DCT scaling of the JPEG frames (their values differ: a video is recompressed)."""

    def __init__(self, path, max_bytes=MAX_VIDEO_BYTES):
        cap = cv2.VideoCapture(str(path))
        frames = []
        try:
            while cap.isOpened():
                ok, img = cap.read()
                if not ok:
                    break
                frames.append(img)
                if len(frames) * img.nbytes > max_bytes:
                    raise FrameError(f"video {path}: more than {len(frames) - 1} frames of {img.shape[1]}x"
                                     f"{img.shape[0]}, over {max_bytes / 2**30:.0f} GiB decoded: cut it into parts "
                                     "(e.g. ffmpeg -ss START -t SECONDS) and predict each")
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        finally:
            cap.release()
        if not frames:
            raise FrameError(f"video unreadable or empty: {path} (OpenCV decoded no frame from it)")
        super().__init__(path, range(len(frames)))
        self.frames = frames

    def color(self, number):
        return self.frames[self._pos[number]]

    def _decode_gray(self, k, reduce):
        g = cv2.cvtColor(self.frames[k], cv2.COLOR_BGR2GRAY)
        if reduce == 1:
            return g
        h, w = g.shape
        return cv2.resize(g, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)  # ceil, as libjpeg
