import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import SEModule

from mer.train.models import build_model, count_params


@pytest.mark.parametrize("backbone", ["seresnext50_32x4d", "resnext50_32x4d", "resnet50"])
def test_param_count_matches_timm(backbone):
    model = build_model(backbone, 5)
    reference = timm.create_model(backbone, num_classes=5)
    assert count_params(model) == sum(p.numel() for p in reference.parameters())
    assert model.get_classifier().out_features == 5


def test_seresnext_se_reduction_is_16():
    model = build_model("seresnext50_32x4d", 5)
    se = [m for m in model.modules() if isinstance(m, SEModule)]
    assert len(se) == 16  # one per bottleneck: 3 + 4 + 6 + 3
    for m in se:
        assert m.fc1.out_channels == m.fc1.in_channels // 16
    assert {m.fc1.in_channels for m in se} == {256, 512, 1024, 2048}


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "checkpoint"])
def test_local_pretrained_file_loads_backbone_and_new_head(tmp_path, fmt):
    source = timm.create_model("test_resnet", num_classes=1000)
    sd = source.state_dict()
    path = tmp_path / f"weights.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        save_file(sd, path)
    elif fmt == "checkpoint":  # a training checkpoint, e.g. another run's model.pt
        torch.save({"model": sd, "epoch": 3}, path)
    else:
        torch.save(sd, path)
    model = build_model("test_resnet", 5, pretrained=str(path))
    got = model.state_dict()
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v), k
    assert model.fc.out_features == 5 and got["fc.weight"].shape[0] == 5


def test_missing_pretrained_file_is_named(tmp_path):
    missing = tmp_path / "nope" / "weights.pth"
    with pytest.raises(FileNotFoundError, match="weights.pth"):
        build_model("resnet50", 5, pretrained=str(missing))


def test_random_init_is_seeded():
    torch.manual_seed(1)
    a = build_model("test_resnet", 3)
    torch.manual_seed(1)
    b = build_model("test_resnet", 3, pretrained="none")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
