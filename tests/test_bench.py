"""The benchmarks print figures; here only that they run their real code paths."""

from conftest import write_crop_cache

from mer.bench import bench_protocol, bench_train


def test_bench_train_prints_every_mode(capsys):
    bench_train("test_resnet", [32], [2], steps=1, device="cpu", folds=2)
    out = capsys.readouterr().out
    assert "one fold" in out and "fused x2" in out and "graph" not in out  # no CUDA graph on the CPU


def test_bench_protocol_trains_every_fold(tmp_path, capsys):
    crops = tmp_path / "crops"
    crops.mkdir()
    write_crop_cache(crops, n=4)
    bench_protocol(crops, epochs=1, fold_group="all", device="cpu", work=tmp_path / "work", backbone="test_resnet",
                   size=32, batch_size=4)
    out = capsys.readouterr().out
    assert "3 folds of 3 crop caches" in out and "3 fused at once" in out
    assert sorted(p.name for p in (tmp_path / "work" / "all-cpu").iterdir() if p.is_dir()) == ["01", "02", "03"]
