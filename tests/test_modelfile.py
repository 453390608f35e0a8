"""The model file: what training writes, read back and checked; `mer predict` reads it without training code."""

import subprocess
import sys

import pytest
import torch

from mer.train.modelfile import MODEL_FORMAT, ModelFileError, check_supported, read, save, state


def test_mer_predict_imports_no_training_loop():
    code = "import sys, mer.predict; print(sorted(m for m in sys.modules if m.startswith('mer.train')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "mer.train.modelfile" in loaded
    training = ("mer.train.loop", "mer.train.single", "mer.train.fused", "mer.train.outputs", "mer.train.groups")
    assert not [m for m in training if f"'{m}'" in loaded], loaded


def test_a_saved_state_reads_back_as_written(tmp_path):
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters())
    cfg = {"name": "x", "augment": {"rotate": 15}, "classes": ("a", "b")}
    save(tmp_path / "model.pt", state(net.state_dict(), optimizer.state_dict(), 4, cfg, "02", [{"loss": 1.0}]))
    got = read(tmp_path / "model.pt")
    assert got["format"] == MODEL_FORMAT and got["epoch"] == 4 and got["held_out"] == "02"
    assert got["config"] == {"name": "x", "augment": {"rotate": 15}, "classes": ["a", "b"]}  # plain: a list
    torch.testing.assert_close(got["model"]["weight"], net.weight.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_files_that_are_not_model_files_are_named(tmp_path):
    torch.save({"model": {}, "config": {}, "format": "mer-model/0"}, tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match=r"old.pt: model format 'mer-model/0'"):
        read(tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match="a flow model without its flow settings"):
        check_supported({"input": "flow", "frame": "apex", "preprocess": {"landmarks": {}}}, "m.pt")
