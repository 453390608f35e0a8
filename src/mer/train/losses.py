"""Softmax focal loss (Lin et al., 2017) for single-label multi-class classification, and plain cross entropy.

Hand-rolled because neither torch nor timm ships a multi-class softmax focal loss:
torchvision.ops.sigmoid_focal_loss is the per-class binary (sigmoid) form, a different loss.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class FocalLoss(nn.Module):
    """FL = -alpha_y * (1 - p_y)^gamma * log p_y, where p_y is the softmax probability of the true class.

    gamma: focusing parameter (0 gives cross entropy).
    alpha: optional per-class weights (list, one per class, in label-index order).
    reduction 'mean' is the plain mean over samples (as in Lin et al.), so with alpha it differs from
    F.cross_entropy(weight=alpha), which divides by the sum of the weights instead.
    """

    def __init__(self, gamma=2.0, alpha=None, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
        self.gamma = float(gamma)
        self.reduction = reduction
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits, target):
        # at least float32 under bf16 autocast: (1 - p)^gamma and log p lose too much in bf16
        logits = logits if logits.dtype == torch.float64 else logits.float()
        logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)  # log p_y
        loss = -((1.0 - logp.exp()) ** self.gamma) * logp
        if self.alpha is not None:
            if self.alpha.numel() != logits.shape[1]:
                raise ValueError(f"alpha has {self.alpha.numel()} weights for {logits.shape[1]} classes")
            loss = loss * self.alpha[target]
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self):
        return f"gamma={self.gamma}, alpha={None if self.alpha is None else self.alpha.tolist()}"


def build_loss(name, gamma=2.0, alpha=None):
    """'focal' -> FocalLoss(gamma, alpha); 'ce' -> nn.CrossEntropyLoss (alpha, if given, as class weights)."""
    if name == "focal":
        return FocalLoss(gamma=gamma, alpha=alpha)
    if name == "ce":
        weight = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight)
    raise ValueError(f"unknown loss {name!r}: expected 'focal' or 'ce'")
