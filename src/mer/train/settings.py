"""A training run's settings: the experiment config with its defaults, and what they resolve to on a device."""

import contextlib
import os

import torch

from mer.schema import train_defaults

REQUIRED = ("name", "backbone", "task", "classes", "frame", "size")
# The schema's `train` defaults, but for what a run must name itself: its model, task and input (REQUIRED)
# and the data it trains on (the workflow expands `datasets`, `test_datasets` and `seeds` into runs).
DEFAULTS = {k: v for k, v in train_defaults().items()
            if k not in REQUIRED and k not in ("datasets", "test_datasets", "seeds")}
# Settings that cannot change the trained weights; a checkpoint written under other values still resumes.
RUNTIME_KEYS = ("checkpoint_every", "fold_group", "cuda_graph")


def resolve(cfg):
    """cfg with DEFAULTS filled in; raises on a missing required key or an unsupported optimizer."""
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"experiment config lacks {missing}")
    c = {**DEFAULTS, **cfg, "augment": {**DEFAULTS["augment"], **(cfg.get("augment") or {})}}
    if c["optimizer"] != "adam":
        raise ValueError(f"optimizer {c['optimizer']!r} not supported (only 'adam')")
    return c


def device_settings(c, device):
    """Device, bf16 autocast and channels_last as resolved for this device."""
    on_cuda = device.type == "cuda"
    return dict(device=device, amp=_auto(c["amp"], on_cuda and torch.cuda.is_bf16_supported()),
                channels_last=_auto(c["channels_last"], on_cuda))


def _auto(value, default):
    return default if value == "auto" else bool(value)


@contextlib.contextmanager
def determinism(on, warn_only=False):
    """Deterministic kernels while training (restored after).

    On CUDA `warn_only`: adaptive_avg_pool2d's backward (ResNet's global pool) has no deterministic
    CUDA kernel and would otherwise stop the run with an error; it warns instead.
    """
    prev = (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(on, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = on, not on
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]
