import time


def bench_train(backbone, sizes, batches, steps=10, device=None, compile=False):
    """Time training steps of `backbone` (5 classes, Adam, focal loss) on random images; print a table.

    For each input size (px) x batch size: 3 warm-up steps, then `steps` timed ones. On CUDA the steps
    run in bf16 autocast with channels_last, as engine.train_fold does (and also compiled, with
    compile=True); on CPU in fp32. The projection is the paper's protocol at the measured speed:
    26 LOSO folds x 100 epochs x 240 training images. Prints figures only.
    """
    # imported here so that the rest of this module does not load torch
    import torch

    from mer.losses import FocalLoss
    from mer.models import build_model, count_params

    folds, epochs, images_per_epoch = 26, 100, 240  # CASME II 5-class LOSO as in the paper
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    modes = [False, True] if (compile and on_cuda) else [False]
    name = torch.cuda.get_device_name(device) if on_cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(f"bench-train {backbone} on {device} [{name}], {'bf16 + channels_last' if on_cuda else 'fp32'}, "
          f"{steps} timed steps after 3 warm-up")
    print(f"projection: {folds} folds x {epochs} epochs x {images_per_epoch} images")
    print(f"{'device':<8} {'size':>5} {'batch':>5} {'compiled':>8} {'images/s':>9} {'ms/step':>9} "
          f"{'protocol':>10}")
    for size in sizes:
        for batch in batches:
            for compiled in modes:
                torch.manual_seed(0)
                model = build_model(backbone, 5).to(device)
                if on_cuda:
                    model = model.to(memory_format=torch.channels_last)
                step_model = torch.compile(model) if compiled else model
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
                criterion = FocalLoss(gamma=2.0)
                x = torch.randn(batch, 3, size, size, device=device)
                if on_cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = torch.randint(0, 5, (batch,), device=device)
                model.train()

                def step(step_model=step_model, optimizer=optimizer, criterion=criterion, x=x, y=y):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
                        loss = criterion(step_model(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()

                for _ in range(3):
                    step()
                if on_cuda:
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                if on_cuda:
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - t0  # wall time of `steps` steps
                ips = steps * batch / seconds
                total_min = folds * epochs * images_per_epoch / ips / 60
                print(f"{device.type:<8} {size:>5} {batch:>5} {'yes' if compiled else 'no':>8} {ips:>9.1f} "
                      f"{1000 * seconds / steps:>9.1f} {int(total_min // 60):>6}h{int(total_min % 60):02d}m",
                      flush=True)
                del model, step_model, optimizer
    print(f"({backbone}: {count_params(build_model(backbone, 5)) / 1e6:.1f} M parameters)")


def bench_preprocess(sheet, work, threads=2):
    """Time the preprocessing DAG (read_sheet, landmarks, apex, crops, report) on a demo that mirrors
    `sheet`, e.g. CASME II's 255 clips / 17,138 frames at 640x480. Prints figures; asserts nothing."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    import yaml

    from mer.demo import make_demo

    work = Path(work).resolve()
    data = work / "data"
    t0 = time.perf_counter()
    if not (data / "coding.csv").exists():
        make_demo(data, mirror=sheet, workers=threads)
    t_demo = time.perf_counter() - t0
    cfg = {"demo": {"enabled": False}, "experiments": [], "results": str(work / "results"),
           "data": {"root": str(data / "frames"), "sheet": str(data / "coding.csv")}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakefile = Path(__file__).resolve().parents[2] / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", str(threads), "--forceall", "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    samples = pd.read_csv(work / "results" / "samples.tsv", sep="\t")
    frames = int((samples.offset - samples.onset + 1)[samples.included].sum())
    errors = pd.read_csv(work / "results" / "preprocessing" / "apex_error.tsv", sep="\t")
    print(f"demo generation (mirror of {sheet}): {t_demo:.1f} s (0 if it already existed)")
    print(f"preprocessing: {len(samples)} clips, {frames} frames, {threads} cores")
    print(f"  wall time {wall:.1f} s, {frames / wall:.0f} frames/s (read_sheet + landmarks + apex + crops + report)")
    print(errors.to_string(index=False))
