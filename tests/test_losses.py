import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mer.train.losses import FocalLoss, build_loss


def by_hand(logits, target, gamma, alpha=None):
    """FL per sample from the definition: -alpha_y (1 - p_y)^gamma log p_y."""
    p = torch.softmax(logits.double(), dim=1)
    out = []
    for i, y in enumerate(target.tolist()):
        a = 1.0 if alpha is None else alpha[y]
        out.append(-a * (1 - p[i, y]) ** gamma * torch.log(p[i, y]))
    return torch.stack(out)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 5, generator=g) * 3, torch.randint(0, 5, (16,), generator=g)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.1, 0.2, 0.3, 0.25, 0.15]])
def test_focal_matches_formula(batch, gamma, alpha):
    logits, target = batch
    ref = by_hand(logits, target, gamma, alpha)
    torch.testing.assert_close(FocalLoss(gamma, alpha, reduction="none")(logits, target), ref.float())
    torch.testing.assert_close(FocalLoss(gamma, alpha)(logits, target), ref.mean().float())
    torch.testing.assert_close(FocalLoss(gamma, alpha, reduction="sum")(logits, target), ref.sum().float())


def test_gamma_zero_is_cross_entropy(batch):
    logits, target = batch
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target))


def test_focal_down_weights_easy_samples(batch):
    logits, target = batch
    assert FocalLoss(2.0)(logits, target) < F.cross_entropy(logits, target)


def test_gradient_flows(batch):
    logits, target = batch
    logits = logits.clone().requires_grad_()
    FocalLoss(2.0)(logits, target).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_alpha_length_checked(batch):
    logits, target = batch
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(2.0, alpha=[1.0, 1.0])(logits, target)


def test_build_loss(batch):
    logits, target = batch
    focal = build_loss("focal", gamma=2.0, alpha=None)
    assert isinstance(focal, FocalLoss) and focal.gamma == 2.0
    ce = build_loss("ce", gamma=2.0, alpha=None)
    assert isinstance(ce, nn.CrossEntropyLoss)
    torch.testing.assert_close(ce(logits, target), F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("hinge", 2.0, None)
