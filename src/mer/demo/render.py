"""The demo's faces and clips: each subject's identity warped from one public-domain portrait, AU-like motion
rising to the apex and back, head jitter and sensor noise, rendered to frames (mer.demo)."""

import functools
from pathlib import Path

import cv2
import numpy as np

from mer.datasets.catalog import BUILTIN

FRAME_W, FRAME_H = 640, 480
DEFAULT_AMPLITUDE = 5.0  # px in the 640x480 frame: peak AU displacement (about 2% of the face height)
# Head jitter: smooth, mean-reverting global translation of the head, RMS px per axis (peak to peak about
# 0.4 px). Larger (0.3 px) or faster jitter moves the whole face's edges enough to hide the apex of the
# long, slow clips of the CASME II sheet in frame differences.
JITTER_PX = 0.1
JITTER_SMOOTH = 8.0  # frames, Gaussian smoothing of the jitter
NOISE_SIGMA = 2.0  # grey levels, Gaussian sensor noise per channel
NOISE_PAD = 64  # px, the noise bank is this much larger than the frame; frames take shifted windows
JPEG_QUALITY = 90

# The base face: a crop of the astronaut portrait (512x512) around her head, rows/cols in its pixels.
HEAD_ROWS, HEAD_COLS = (0, 260), (120, 330)
HEAD_ELLIPSE = ((227, 108), (84, 108))  # (centre x, y), (semi-axes x, y) of the visible head, portrait px
HEAD_FEATHER = 8.0  # portrait px, Gaussian blur of the head mask's edge
FACE_SCALE = 2.0  # frame px per portrait px for an average subject: face (brow to chin) ~190 px tall
FACE_ANCHOR = (320.0, 250.0)  # frame px where an average subject's landmark centroid lands
BACKGROUND_GREY = 128.0  # grey level at the frame centre; corners darker by VIGNETTE
VIGNETTE = 0.25

# Action units: landmark groups (dlib 68, 0-based; a tuple is the mean of its points), a displacement
# direction in the upright face (x: +1 = away from the face midline, y: +1 = down) and the Gaussian
# falloff sigma as a fraction of the mouth width.
AUS = {
    "1": ([20, 21, 22, 23], (0.0, -1.0), 0.22),  # inner brow raiser
    "2": ([17, 18, 19, 24, 25, 26], (0.0, -1.0), 0.22),  # outer brow raiser
    "4": ([17, 18, 19, 20, 21, 22, 23, 24, 25, 26], (-0.55, 0.85), 0.22),  # brows lowered, drawn together
    "6": ([(41, 48, 31), (46, 54, 35)], (0.0, -1.0), 0.25),  # cheek raiser
    "7": ([40, 41, 46, 47], (0.0, -1.0), 0.12),  # lower eyelids up
    "9": ([31, 35], (0.2, -1.0), 0.18),  # nose wrinkler: nostril wings up
    "10": ([50, 51, 52], (0.0, -1.0), 0.18),  # upper lip raiser
    "12": ([48, 54], (0.6, -0.8), 0.25),  # lip corners up and out
    "14": ([48, 54], (-1.0, 0.0), 0.20),  # dimpler: lip corners tightened inward
    "15": ([48, 54], (0.0, 1.0), 0.22),  # lip corners down
    "17": ([8, 56, 57, 58], (0.0, -1.0), 0.25),  # chin raiser
    "20": ([48, 54], (1.0, 0.15), 0.22),  # lip stretcher
    "43": ([37, 38, 43, 44], (0.0, 1.0), 0.12),  # upper eyelids down: eyes narrowing
}
# Emotion -> (AU, relative weight) lists; the AU text written is the AUs used, joined by '+'.
EMOTION_AUS = {
    "happiness": [("6", 0.4), ("12", 1.0)],
    "disgust": [("4", 1.0), ("9", 0.8), ("10", 0.8)],
    "surprise": [("1", 1.0), ("2", 1.0)],
    "repression": [("14", 0.7), ("15", 1.0), ("17", 0.8)],
    "others": [("7", 1.0), ("43", 1.0)],  # one or both, chosen per clip
    "sadness": [("1", 1.0), ("15", 1.0)],
    "fear": [("1", 1.0), ("2", 1.0), ("4", 0.6), ("20", 1.0)],
    # SAMM's and SMIC's words: each composite class moves as CASME II's clips of that class do
    "anger": [("4", 1.0), ("9", 0.8), ("10", 0.8)],
    "contempt": [("14", 0.7), ("15", 1.0), ("17", 0.8)],
    "other": [("7", 1.0), ("43", 1.0)],
    "negative": [("4", 1.0), ("9", 0.8), ("10", 0.8)],
    "positive": [("6", 0.4), ("12", 1.0)],
}


def stream(seed, subject, purpose, k=0):
    """Independent random stream per (seed, subject, purpose, clip index).

    purpose: 0 sheet rows, 1 identity, 2 clip noise and jitter, 3 label shuffle, 4 clip AUs."""
    return np.random.default_rng([seed, subject, purpose, k])


# ---------------------------------------------------------------------------------------------- base face


@functools.lru_cache(maxsize=1)
def base_face():
    """(head crop BGR float32, feathered head mask float32 0..1, 68 landmarks (68, 2) in crop px)."""
    from skimage.data import astronaut

    from mer.preprocess.landmarks import detect

    rgb = astronaut()
    found = detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), upsample=1)
    if found is None:
        raise RuntimeError("dlib found no face in the astronaut portrait")
    points = found[1].astype(np.float64)
    (r0, r1), (c0, c1) = HEAD_ROWS, HEAD_COLS
    head = cv2.cvtColor(rgb[r0:r1, c0:c1], cv2.COLOR_RGB2BGR).astype(np.float32)
    mask = np.zeros(head.shape[:2], np.float32)
    (ex, ey), (ax, ay) = HEAD_ELLIPSE
    cv2.ellipse(mask, (ex - c0, ey - r0), (ax, ay), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), HEAD_FEATHER)
    return head, mask, points - (c0, r0)


def identity(seed, subject):
    """A subject's look, drawn from its own RNG: face warp, position, skin tone, lighting."""
    rng = stream(seed, subject, 1)
    return {
        "scale": rng.uniform(0.9, 1.1),  # face size relative to FACE_SCALE
        "aspect": rng.uniform(0.93, 1.07),  # width/height factor: face shape
        "angle": rng.uniform(-4.0, 4.0),  # degrees, in-plane head tilt
        "shift": (rng.uniform(-40, 40), rng.uniform(-25, 25)),  # px from FACE_ANCHOR
        "gain": rng.uniform(0.85, 1.15, size=3),  # per-channel (BGR) skin tone gain
        "light": rng.uniform(-0.15, 0.15),  # brightness change at the face edge along light_dir
        "light_dir": rng.uniform(0, 2 * np.pi),  # radians
    }


def face_transform(ident):
    """2x3 affine matrix from base-crop px to frame px for one identity."""
    _, _, points = base_face()
    centre = points.mean(axis=0)
    s = FACE_SCALE * ident["scale"]
    sx, sy = s * np.sqrt(ident["aspect"]), s / np.sqrt(ident["aspect"])
    a = np.deg2rad(ident["angle"])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lin = rot @ np.diag([sx, sy])
    target = np.array(FACE_ANCHOR) + ident["shift"]
    return np.hstack([lin, (target - lin @ centre)[:, None]])


@functools.lru_cache(maxsize=4)
def neutral(seed, subject):
    """(neutral frame uint8 BGR, its 68 landmarks in frame px, 2x3 face transform, head box) of a subject."""
    head, mask, points = base_face()
    ident = identity(seed, subject)
    m = face_transform(ident)
    size = (FRAME_W, FRAME_H)
    face = cv2.warpAffine(head, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, m, size, flags=cv2.INTER_LINEAR)[..., None]
    frame_points = points @ m[:, :2].T + m[:, 2]
    # Skin tone and a linear lighting gradient, relative to the face centre and half-height.
    gx, gy = np.meshgrid(np.arange(FRAME_W, dtype=np.float32), np.arange(FRAME_H, dtype=np.float32))
    cx, cy = frame_points.mean(axis=0)
    half = np.ptp(frame_points[:, 1]) / 2
    d = ((gx - cx) * np.cos(ident["light_dir"]) + (gy - cy) * np.sin(ident["light_dir"])) / half
    light = 1.0 + ident["light"] * np.clip(d, -1.5, 1.5)
    face = face * ident["gain"].astype(np.float32) * light[..., None]
    # Mid-grey background, darker towards the corners.
    r2 = ((gx - FRAME_W / 2) / (FRAME_W / 2)) ** 2 + ((gy - FRAME_H / 2) / (FRAME_H / 2)) ** 2
    background = (BACKGROUND_GREY * (1.0 - VIGNETTE * r2 / 2))[..., None]
    out = alpha * face + (1 - alpha) * background
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), frame_points, m, _head_box(alpha[..., 0])


def _head_box(alpha, margin=16):
    """(x0, y0, x1, y1) px: where the head is visible (alpha > 1/255), plus `margin` px; only this
    region moves, the background stays still."""
    ys, xs = np.nonzero(alpha > 1 / 255)
    return (max(0, int(xs.min()) - margin), max(0, int(ys.min()) - margin),
            min(FRAME_W, int(xs.max()) + 1 + margin), min(FRAME_H, int(ys.max()) + 1 + margin))


# ------------------------------------------------------------------------------------------------ motion


def au_plan(emotion, rng):
    """[(AU, weight)] for one clip: the emotion's AUs (unknown emotions move like 'others') with per-clip
    weights 0.7..1.0 of nominal. Happiness adds the cheek raise in about half the clips; 'others' uses
    one or both of its AUs."""
    aus = EMOTION_AUS.get(emotion, EMOTION_AUS["others"])
    if aus is EMOTION_AUS["happiness"] and rng.random() < 0.5:
        aus = aus[1:]
    if aus is EMOTION_AUS["others"]:
        pick = rng.integers(1, 4)  # bit mask: 1 first only, 2 second only, 3 both
        aus = [au for i, au in enumerate(aus) if pick & (1 << i)]
    return [(au, float(w * rng.uniform(0.7, 1.0))) for au, w in aus]


def au_text(plan):
    return "+".join(au for au, _ in plan)


def displacement_field(plan, points, linear, step=2):
    """Dense field (H, W, 2) float32 in units of the peak displacement (max length 1).

    points: 68 landmarks in frame px; linear: 2x2 linear part of the face transform (directions are
    defined on the upright base face and turn with it). Each AU adds weight * direction * Gaussian at its
    points, scaled so that its own peak is its weight. Evaluated every `step` px and resized.
    """
    gx, gy = np.meshgrid(np.arange(0, FRAME_W, step, dtype=np.float32) + (step - 1) / 2,
                         np.arange(0, FRAME_H, step, dtype=np.float32) + (step - 1) / 2)
    mouth = float(np.linalg.norm(points[54] - points[48]))
    midline = points[27:31, 0].mean()
    field = np.zeros(gx.shape + (2,), np.float32)
    for au, weight in plan:
        group, (ox, oy), sigma_frac = AUS[au]
        sigma = sigma_frac * mouth
        part = np.zeros_like(field)
        for p in group:
            x, y = points[list(p) if isinstance(p, tuple) else p].reshape(-1, 2).mean(axis=0)
            side = 1.0 if x >= midline else -1.0
            v = linear @ np.array([ox * side, oy])
            v = v / np.linalg.norm(v) * np.hypot(ox, oy)
            g = np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma**2))
            part += g[..., None] * v.astype(np.float32)
        part *= weight / np.linalg.norm(part, axis=-1).max()
        field += part
    field /= max(np.linalg.norm(field, axis=-1).max(), 1e-6)
    return cv2.resize(field, (FRAME_W, FRAME_H), interpolation=cv2.INTER_LINEAR)


def time_profile(frames, onset, apex, offset):
    """Motion strength 0..1 at frame numbers `frames`: 0 at onset, 1 at apex, 0 at offset.

    Each ramp is 1 - cos(pi/2 * r), r = 0..1 the fraction of the way to the apex: it starts smoothly
    (zero slope at onset and offset) and meets the other ramp in a peak, so the apex is one frame that
    a motion-based spotter finds, not the middle of a flat top (sin^2 ramps change <2% at apex +-1).
    """
    t = np.asarray(frames, dtype=np.float64)
    r = np.ones_like(t)
    up, down = t < apex, t > apex
    r[up] = (t[up] - onset) / (apex - onset) if apex > onset else 1.0
    r[down] = (offset - t[down]) / (offset - apex) if offset > apex else 1.0
    return 1.0 - np.cos(np.pi / 2 * np.clip(r, 0.0, 1.0))


def head_jitter(n, rng):
    """(n, 2) smooth random translation in px, RMS about JITTER_PX per axis, mean-reverting."""
    pad = int(4 * JITTER_SMOOTH)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / JITTER_SMOOTH) ** 2)
    k /= np.sqrt((k**2).sum())  # unit variance after smoothing white noise
    white = rng.standard_normal((n + 2 * pad, 2))
    return JITTER_PX * np.stack([np.convolve(white[:, i], k, mode="valid") for i in range(2)], axis=1)


# ------------------------------------------------------------------------------------------------ render


def render_clip(job):
    """Write the frames onset..offset of one clip (job: a dict from `make_demo`); returns how many."""
    seed, subj, k = job["seed"], job["subject_num"], job["k"]
    base, points, m, (x0, y0, x1, y1) = neutral(seed, subj)
    onset, apex, offset = job["onset"], job["apex"], job["offset"]
    frames = np.arange(onset, offset + 1)
    rng = stream(seed, subj, 2, k)
    # Backward map over the head box: output pixel x shows the neutral face at x - shift * field - jitter.
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    grid = np.dstack([gx, gy])
    field = None
    if job["amplitude"] > 0 and job["plan"]:
        field = np.ascontiguousarray(displacement_field(job["plan"], points, m[:, :2])[y0:y1, x0:x1])
    shift = job["amplitude"] * time_profile(frames, onset, apex, offset)  # px
    jitter = head_jitter(len(frames), rng)
    # Sensor noise: one bank per clip, split into its positive and negative parts for saturating
    # uint8 add/subtract; each frame takes a differently shifted window (no window used twice).
    noise = np.rint(NOISE_SIGMA * rng.standard_normal((FRAME_H + NOISE_PAD, FRAME_W + NOISE_PAD, 3),
                                                      dtype=np.float32))
    pos, neg = np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
    windows = rng.choice(NOISE_PAD * NOISE_PAD, size=len(frames), replace=len(frames) > NOISE_PAD**2)
    pattern = BUILTIN[job["layout"]]["frame_pattern"]
    gray = BUILTIN[job["layout"]].get("grayscale", False)
    for i, f in enumerate(frames):
        mxy = cv2.scaleAdd(field, -float(shift[i]), grid) if field is not None else grid
        mxy = cv2.add(mxy, (-float(jitter[i, 0]), -float(jitter[i, 1]), 0.0, 0.0))
        map1, map2 = cv2.convertMaps(mxy, None, cv2.CV_16SC2)  # fixed point (1/32 px): faster remap
        img = base.copy()
        img[y0:y1, x0:x1] = cv2.remap(base, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        oy, ox = divmod(int(windows[i]), NOISE_PAD)
        img = cv2.subtract(cv2.add(img, pos[oy:oy + FRAME_H, ox:ox + FRAME_W]),
                           neg[oy:oy + FRAME_H, ox:ox + FRAME_W])
        path = Path(job["out"]) / "frames" / pattern.format(
            subject=job["subject"], filename=job["filename"], frame=int(f), emotion=job["emotion"])
        if i == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []  # SMIC's: .bmp
        ok, buf = cv2.imencode(path.suffix, img, quality)
        if not ok:
            raise RuntimeError(f"image encoding failed for {path}")
        path.write_bytes(buf.tobytes())
    return len(frames)

