"""Onset -> apex optical flow of the aligned crops: the motion input (`input: flow`) of OFF-ApexNet, STSTNet and HTNet.

Three channels per clip, float32 (S, S, 3): u and v, the displacement in px at the crop's size (+u right, +v
down) that carries each onset pixel to the apex frame, and the optical strain magnitude (dimensionless).
Computed once per subject from the crop cache into flow/subSS.h5 (compute_flow rule), laid out as the crop
cache (one group per clip, the same attributes) with dataset `flow_apex`; the method and its parameters
are in the file's and every group's attributes.

Method: TV-L1 (opencv-contrib's DualTVL1OpticalFlow), as those papers use: the most accurate of the three
on a known shift, and a micro-expression moves the face by about 1 px at crop size, so small errors matter.
`flow.method` offers OpenCV's faster DIS and Farneback where preprocessing time matters more (their errors
and times: docs/benchmarks.md, flow-methods).
"""

import cv2
import h5py
import numpy as np

from mer.io import atomic_path

METHODS = ("tvl1", "dis", "farneback")
DATASET = "flow_apex"  # the dataset name in a flow cache: onset -> apex


def optical_flow(onset, apex, method="tvl1", lam=0.15):
    """(S, S, 2) float32 flow from `onset` to `apex` (uint8 RGB or grayscale crops of one size)."""
    a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) if x.ndim == 3 else x for x in (onset, apex))
    if method == "tvl1":
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        tvl1.setLambda(float(lam))  # weight of the data term against smoothness (OpenCV's default 0.15)
        return tvl1.calc(a, b, None)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise ValueError(f"flow method {method!r} is not one of {METHODS}")


def strain(u, v):
    """Optical strain magnitude sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2) of a flow field, with central
    differences (numpy.gradient): the norm of the symmetric strain tensor (u_x, (u_y+v_x)/2; ., v_y)."""
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def flow_input(onset, apex, method="tvl1", lam=0.15):
    """(S, S, 3) float32: u, v (px), strain magnitude."""
    f = optical_flow(onset, apex, method, lam)
    u, v = f[..., 0], f[..., 1]
    return np.dstack([u, v, strain(u, v)]).astype(np.float32)


def flow_clip(crops, method="tvl1", lam=0.15):
    """A clip's flow input (flow_input) from its crops {frame choice: RGB uint8}: onset -> apex."""
    return flow_input(crops["onset"], crops["apex"], method, lam)


def resize_flow(flow, size):
    """A flow input resized to (size, size): the field is resampled (INTER_AREA) and u, v are scaled with
    the image, since they are in px; strain, a ratio of lengths, is not."""
    s = flow.shape[0]
    if s == size:
        return flow
    out = cv2.resize(flow, (size, size), interpolation=cv2.INTER_AREA)
    out[..., :2] *= size / s
    return out


def flow_subject(crops_h5, out, method="tvl1", lam=0.15):
    """Write the flow cache of one subject's crop cache (see the module doc); returns the clip count."""
    params = {"flow_method": method, "flow_lambda": float(lam)}
    with h5py.File(crops_h5, "r") as src, atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({**dict(src.attrs), **params})
        for name in src:
            g = h5.create_group(name)
            g.attrs.update({**dict(src[name].attrs), **params})
            crops = {frame: src[name][frame][()] for frame in ("onset", "apex")}
            g.create_dataset(DATASET, data=flow_clip(crops, method, lam))
        n = len(src)
    print(f"{out}: onset->apex flow ({method}) of {n} clips")
    return n
