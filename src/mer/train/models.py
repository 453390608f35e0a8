"""Backbones from timm: SE-ResNeXt-50 (the paper's), ResNeXt-50 and ResNet-50 baselines, or any timm name.

Weights never come from the network unless asked for: `pretrained` is 'none' (random init, the default),
a path to a local weights file, or 'hub' (timm may then download from the Hugging Face hub).
"""

from pathlib import Path

import timm
import torch.nn as nn
from timm.layers import SEModule

# SE reduction ratio of SE-ResNeXt-50 32x4d in Hu et al. (2018): the squeeze layer has channels/16 units.
# timm's resnet.py builds its SE blocks with SEModule's default rd_ratio=1/16; build_model checks it.
SE_REDUCTION = 16


def build_model(backbone, num_classes, pretrained="none", drop_rate=0.0):
    """A timm classifier with `num_classes` outputs; `drop_rate` is dropout before the head (probability)."""
    kwargs = dict(num_classes=num_classes, drop_rate=drop_rate)
    pretrained = str(pretrained)
    if pretrained in ("none", "None", ""):
        model = timm.create_model(backbone, pretrained=False, **kwargs)
    elif pretrained == "hub":
        model = timm.create_model(backbone, pretrained=True, **kwargs)  # the only path that may download
    else:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        # timm's own loader: reads .pth/.bin (torch.load weights_only) or .safetensors, takes the 'model' or
        # 'state_dict' entry of a training checkpoint, and drops the classifier when num_classes differs
        # from the file's 1000 ImageNet classes (the new head keeps its random init).
        # 'file' outranks the cfg's url/hf_hub_id, so nothing is downloaded.
        model = timm.create_model(backbone, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                                  **kwargs)
    if any(isinstance(m, SEModule) for m in model.modules()):
        check_se_reduction(model)
    return model


def check_se_reduction(model, reduction=SE_REDUCTION):
    """Assert every SE block squeezes its channels by `reduction` (256 -> 16 in SE-ResNeXt-50's stage 1)."""
    for name, m in model.named_modules():
        if isinstance(m, SEModule):
            c, r = m.fc1.in_channels, m.fc1.out_channels
            assert r * reduction == c, f"{name}: SE squeezes {c} -> {r} channels, expected 1/{reduction}"


def count_params(model: nn.Module) -> int:
    """Number of parameters (weights and biases; BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
