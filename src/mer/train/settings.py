"""An experiment's training settings: its config with the defaults filled in, and the device settings that
`auto` resolves to. Read by training and by `mer predict` (a model file's config)."""

import torch

REQUIRED = ("name", "backbone", "task", "classes", "frame", "size")
DEFAULTS = dict(
    pretrained="none", drop_rate=0.0, loss="focal", gamma=2.0, alpha=None, optimizer="adam", lr=1e-4,
    weight_decay=0.0, batch_size=2, epochs=100, seed=0, deterministic=False, checkpoint_every=10,
    augment=dict(grayscale=True, hflip=True, rotate=15), amp="auto", channels_last="auto",
    compile=False, inner_val=0.0, fold_group=1, cuda_graph="auto", input="frame",
)


def resolve(cfg):
    """cfg with DEFAULTS filled in; raises on a missing required key or an unsupported optimizer."""
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"experiment config lacks {missing}")
    c = {**DEFAULTS, **cfg, "augment": {**DEFAULTS["augment"], **(cfg.get("augment") or {})}}
    if c["optimizer"] != "adam":
        raise ValueError(f"optimizer {c['optimizer']!r} not supported (only 'adam')")
    return c


def run_settings(c, device):
    """Device, bf16 autocast and channels_last as resolved for this device."""
    on_cuda = device.type == "cuda"
    return dict(device=device, amp=_auto(c["amp"], on_cuda and torch.cuda.is_bf16_supported()),
                channels_last=_auto(c["channels_last"], on_cuda))


def _auto(value, default):
    return default if value == "auto" else bool(value)
