"""Fused fold groups (mer.train.fused): each fold ends where training it alone ends."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_crop_cache
from test_loop import config

from mer.train.augment import Inputs, to_device
from mer.train.fused import FusedAdam, FusedModels, _Step
from mer.train.loop import train_fold, train_fused
from mer.train.losses import FocalLoss
from mer.train.models import build_model

# clips per subject: held out 01, 02, 03 leave 22, 15 and 19 training samples, so at batch 4 the folds
# take 5, 3 and 4 steps per epoch (two of the sets are odd)
CLIPS = {"01": 2, "02": 9, "03": 5, "04": 8}
HELD = ["01", "02", "03"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_crop_cache(tmp_path_factory.mktemp("crops"), subjects=tuple(CLIPS), n=CLIPS)


@pytest.fixture
def float64():
    """The whole pipeline in float64 (models, inputs, loss): fp32 rounding is then too small to show."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def load(path):
    return torch.load(path / "model.pt", weights_only=True)


def max_rel(a, b):
    """Largest |a - b| relative to the largest |a| of the tensor."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item()


def train_both(cache, tmp_path, cfg):
    for h in HELD:
        train_fold(cache, h, cfg, tmp_path / "alone" / h, threads=2, progress=False)
    infos = train_fused(cache, HELD, cfg, [tmp_path / "fused" / h for h in HELD], threads=2, progress=False)
    return infos


def test_fused_group_equals_each_fold_alone(cache, tmp_path, float64):
    cfg = config(epochs=3, batch_size=4, lr=1e-3)
    infos = train_both(cache, tmp_path, cfg)
    assert [i["n_train"] for i in infos] == [22, 15, 19]
    for h in HELD:
        a, b = load(tmp_path / "alone" / h), load(tmp_path / "fused" / h)
        assert a["model"].keys() == b["model"].keys()
        for k in a["model"]:  # weights and BatchNorm buffers
            if k.endswith("num_batches_tracked"):
                assert torch.equal(a["model"][k], b["model"][k]), k
            else:
                assert max_rel(a["model"][k], b["model"][k]) < 1e-5, (h, k)
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
        for i, sa in a["optimizer"]["state"].items():  # Adam's moments and step count
            sb = b["optimizer"]["state"][i]
            assert torch.equal(sa["step"], sb["step"]), (h, i)
            assert max_rel(sa["exp_avg"], sb["exp_avg"]) < 1e-5 and max_rel(sa["exp_avg_sq"], sb["exp_avg_sq"]) < 1e-5
        pa = pd.read_csv(tmp_path / "alone" / h / "predictions.tsv", sep="\t")
        pb = pd.read_csv(tmp_path / "fused" / h / "predictions.tsv", sep="\t")
        pd.testing.assert_frame_equal(pa, pb, rtol=1e-6, atol=1e-6)
        aa = pd.read_csv(tmp_path / "alone" / h / "held_out_by_epoch.tsv", sep="\t")
        ab = pd.read_csv(tmp_path / "fused" / h / "held_out_by_epoch.tsv", sep="\t")
        pd.testing.assert_frame_equal(aa, ab, rtol=1e-6, atol=1e-6)  # the audit's per-epoch predictions too
        ma = pd.read_csv(tmp_path / "alone" / h / "metrics.csv")
        mb = pd.read_csv(tmp_path / "fused" / h / "metrics.csv")
        np.testing.assert_allclose(ma[["loss", "train_acc"]], mb[["loss", "train_acc"]], rtol=1e-6)
    # each fold took its own number of steps: 3 epochs x 5, 3 and 4
    steps = [int(load(tmp_path / "fused" / h)["optimizer"]["state"][0]["step"]) for h in HELD]
    assert steps == [15, 9, 12]


def test_fused_group_in_float32_gives_the_same_predictions(cache, tmp_path):
    # fp32: grouped convolutions and batched products sum in another order, and Adam's normalisation turns
    # that rounding on near-zero gradients into visible weight differences, so predictions are the check
    # here. Probabilities: 0.0135 apart at most since the 1x1 products choose their layout (VmapConv2d),
    # under 0.01 before; 0.02 bounds that rounding, far from a different model (which moves them by ~0.1)
    cfg = config(epochs=3, batch_size=4, lr=1e-3)
    train_both(cache, tmp_path, cfg)
    for h in HELD:
        pa = pd.read_csv(tmp_path / "alone" / h / "predictions.tsv", sep="\t")
        pb = pd.read_csv(tmp_path / "fused" / h / "predictions.tsv", sep="\t")
        assert pa.y_pred.tolist() == pb.y_pred.tolist()
        np.testing.assert_allclose(pa.filter(like="prob_"), pb.filter(like="prob_"), atol=0.02)


def test_a_fold_sitting_out_does_not_move():
    torch.manual_seed(0)
    models = [build_model("test_resnet", 3) for _ in range(3)]
    fused = FusedModels(models, "cpu")
    adam = FusedAdam(fused.params, lr=1e-3)
    images = to_device(np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), "cpu")
    labels = torch.arange(12) % 3
    run = dict(device=torch.device("cpu"), amp=False, channels_last=False)
    step = _Step(fused, adam, FocalLoss(), Inputs((0.5,) * 3, (0.5,) * 3), images, labels, run, k=3, b=4)
    fused.train()
    idx, flip, angle = torch.arange(12).view(3, 4), torch.zeros(3, 4, dtype=torch.bool), torch.full((3, 4), 5.0)
    for _ in range(2):
        step(idx, flip, angle, torch.ones(3))

    def fold1():
        return [t[1].clone() for t in [*fused.params, *fused.buffers, *adam.exp_avg, *adam.exp_avg_sq,
                                      adam.step_count]]

    def fold0():
        return [t[0].clone() for t in fused.params]

    before, other = fold1(), fold0()
    for _ in range(3):
        step(idx, flip, angle, torch.tensor([1.0, 0.0, 1.0]))
    assert all(torch.equal(a, b) for a, b in zip(before, fold1(), strict=True))  # bit-identical
    assert not all(torch.equal(a, b) for a, b in zip(other, fold0(), strict=True))
    assert adam.step_count.tolist() == [5, 2, 5]


def test_fused_adam_is_torch_adam():
    torch.manual_seed(1)
    shapes = [(5, 3), (7,), (2, 3, 3, 3)]
    ref = [torch.randn(s, requires_grad=True) for s in shapes]
    opt = torch.optim.Adam(ref, lr=1e-3, weight_decay=1e-2)
    mine = [p.detach().clone()[None] for p in ref]
    adam = FusedAdam(mine, lr=1e-3, weight_decay=1e-2)
    for t in range(6):
        grads = [torch.randn(s) * 10.0 ** -t for s in shapes]
        for p, g in zip(ref, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        adam.step([g[None] for g in grads], torch.ones(1))
    for p, q in zip(ref, mine, strict=True):
        torch.testing.assert_close(p.detach(), q[0], rtol=1e-6, atol=1e-9)
    state = adam.fold_state_dict(0)
    assert state["param_groups"] == opt.state_dict()["param_groups"]
    for i, s in opt.state_dict()["state"].items():
        torch.testing.assert_close(s["exp_avg"], state["state"][i]["exp_avg"])
        assert torch.equal(s["step"], state["state"][i]["step"])


def test_resume_is_exact(cache, tmp_path):
    cfg = config(epochs=3, batch_size=4, checkpoint_every=1)
    full = [tmp_path / "full" / h for h in HELD]
    parted = [tmp_path / "parted" / h for h in HELD]
    train_fused(cache, HELD, cfg, full, threads=2, progress=False)
    ckpt = tmp_path / "group.ckpt.pt"
    assert train_fused(cache, HELD, cfg, parted, threads=2, progress=False, checkpoint=ckpt,
                       max_epochs_this_run=1) is None  # killed after epoch 1
    assert ckpt.exists() and not (parted[0] / "model.pt").exists()
    infos = train_fused(cache, HELD, cfg, parted, threads=2, progress=False, checkpoint=ckpt)
    assert [i["resumed_from_epoch"] for i in infos] == [1, 1, 1] and not ckpt.exists()
    for a_dir, b_dir in zip(full, parted, strict=True):
        a, b = load(a_dir), load(b_dir)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert (a_dir / "predictions.tsv").read_bytes() == (b_dir / "predictions.tsv").read_bytes()
        assert (a_dir / "held_out_by_epoch.tsv").read_bytes() == (b_dir / "held_out_by_epoch.tsv").read_bytes()
        pd.testing.assert_series_equal(pd.read_csv(a_dir / "metrics.csv").loss, pd.read_csv(b_dir / "metrics.csv").loss)


def test_what_a_group_cannot_fuse(cache, tmp_path):
    with pytest.raises(ValueError, match="drop_rate"):
        train_fused(cache, HELD, config(drop_rate=0.2), [tmp_path / h for h in HELD], progress=False)
    with pytest.raises(ValueError, match="fewer training samples than batch_size 16"):
        train_fused(cache, HELD, config(batch_size=16), [tmp_path / h for h in HELD], progress=False)


def test_a_lone_fold_smaller_than_a_batch(cache, tmp_path):
    # a group of one whose training set (15 samples) is smaller than a batch trains on one batch of all
    cfg = config(batch_size=16, epochs=1)
    info = train_fused(cache, ["02"], cfg, [tmp_path / "02"], progress=False)[0]
    alone = train_fold(cache, "02", cfg, tmp_path / "alone", progress=False)
    assert info["n_train"] == alone["n_train"] == 15
    a = torch.load(tmp_path / "02" / "model.pt", weights_only=True)["optimizer"]["state"][0]["step"]
    assert int(a) == 1


def test_seeds_fuse_like_folds(cache, tmp_path):
    """One subject held out under two seeds in one fused group (an experiment's `seeds` under fold_group), and
    the same folds trained alone with those seeds: the same predictions, each with its own seed."""
    cfg = config(epochs=2, batch_size=4, lr=1e-3)
    members = [("01", 0), ("01", 1), ("02", 1)]
    for h, s in members:
        train_fold(cache, h, {**cfg, "seed": s}, tmp_path / "alone" / f"{s}-{h}", threads=2, progress=False)
    infos = train_fused(cache, [h for h, _ in members], cfg, [tmp_path / "fused" / f"{s}-{h}" for h, s in members],
                        threads=2, progress=False, seeds=[s for _, s in members])
    assert [i["seed"] for i in infos] == [1, 1001, 1002]  # seed * 1000 + subject, as alone
    for h, s in members:
        pa = pd.read_csv(tmp_path / "alone" / f"{s}-{h}" / "predictions.tsv", sep="\t")
        pb = pd.read_csv(tmp_path / "fused" / f"{s}-{h}" / "predictions.tsv", sep="\t")
        assert pa.y_pred.tolist() == pb.y_pred.tolist()
        np.testing.assert_allclose(pa.filter(like="prob_"), pb.filter(like="prob_"), atol=0.01)
        assert load(tmp_path / "fused" / f"{s}-{h}")["config"]["seed"] == s
    a, b = (pd.read_csv(tmp_path / "fused" / f"{s}-01" / "predictions.tsv", sep="\t") for s in (0, 1))
    assert not np.allclose(a.filter(like="prob_"), b.filter(like="prob_"))  # two seeds, two models


@pytest.mark.parametrize("size", [2, 16])  # 2 px: the activations are copied; 16 px: the weight is
@pytest.mark.parametrize("stride", [1, 2])
def test_vmap_conv_is_the_convolution(size, stride):
    """VmapConv2d computes nn.Conv2d's function under vmap: 1x1 as a product in either layout, 3x3 as is,
    with and without bias; in bf16 within bf16's rounding."""
    from torch.func import functional_call, stack_module_state, vmap

    from mer.train.fused_models import VmapConv2d

    torch.manual_seed(0)
    for conv in (torch.nn.Conv2d(24, 40, 1, stride=stride, bias=True), torch.nn.Conv2d(24, 40, 1, bias=False),
                 torch.nn.Conv2d(24, 48, 3, stride=stride, padding=1, groups=8)):
        convs = [conv] + [torch.nn.Conv2d(24, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                          groups=conv.groups, bias=conv.bias is not None) for _ in range(2)]
        params, _ = stack_module_state(convs)
        x = torch.randn(3, 2, 24, size, size)
        want = torch.stack([c(x[k]) for k, c in enumerate(convs)])
        for dtype, tol in ((None, 1e-5), (torch.bfloat16, 3e-2)):
            mine = VmapConv2d.of(conv, dtype)
            got = vmap(lambda p, xk, m=mine: functional_call(m, p, (xk,)))(params, x)
            assert got.dtype == torch.float32 and got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item())
