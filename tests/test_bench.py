"""The benchmarks print figures; here only that they run their real code paths."""

from conftest import write_crop_cache

from mer.bench.preprocess import stage_breakdown
from mer.bench.train import bench_protocol, bench_train


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


def test_stage_breakdown_sums_each_rule_and_leaves_the_rest_to_snakemake(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, rows in {"spot_apex": [(1.5, 1.2), (2.5, 1.8)], "read_sheet": [(3.0, 2.0)]}.items():
        for k, (wall, cpu) in enumerate(rows):  # the workflow's layout: benchmarks/RULE/DATASET/subSS.tsv
            f = tmp_path / rule / "demo" / f"sub{k:02d}.tsv"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(header + f"{wall}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    table = stage_breakdown(tmp_path, cpu_total=10.0).set_index("stage")
    assert table.loc["spot_apex", "jobs"] == 2 and table.loc["spot_apex", "wall s"] == 4.0
    assert table.loc["spot_apex", "CPU s"] == 3.0 and table.loc["read_sheet", "CPU s"] == 2.0
    assert table.loc["snakemake + unsampled job CPU", "CPU s"] == 5.0
