"""Training speed: one step of each way of training (bench-train) and a real fused LOSO run (bench-protocol)."""

import copy
import json
import shutil
import time
from pathlib import Path


def bench_train(backbone, sizes, batches, steps=10, device=None, compile=False, folds=None):
    """Time training steps of `backbone` (5 classes, Adam, focal loss, on-device augmentation) on random
    images, in each training mode; print a table of images/s and the projected protocol time.

    Modes: one fold eager (mer.train.single's step; also torch.compile'd with compile=True on CUDA),
    `folds` folds fused eager (mer.train.fused), and fused replayed as a CUDA graph (CUDA only; with
    compile=True also with the forward and loss through torch.compile, compile time not counted). On CUDA
    one fold runs in bf16 autocast with channels_last and a fused group with bf16 convolutions (and once in
    fp32/TF32), as training does; CPU: fp32.
    For each input size (px) x batch size (per fold): 3 warm-up steps, then `steps` timed ones.
    Projection: the paper's protocol at the measured speed, 26 LOSO folds x 100 epochs on CASME II's 249
    samples, each sample in the training sets of the 25 folds that do not hold it out: 100 x 25 x 249
    images in all. Prints the figures and returns them, a dict per row (a failed mode's with its error).
    """
    # imported here so that the rest of this module does not load torch
    import torch

    from mer.train.models import build_model, count_params

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True  # as training picks cuDNN's algorithms (train.deterministic false)
    folds = int(folds or (26 if on_cuda else 6))
    protocol_images = 100 * 25 * 249  # 100 epochs x (26 - 1) training sets per sample x 249 samples
    # (label, folds, CUDA graph, torch.compile, bf16): the last is a fused group's `amp` (mer.train.fused)
    modes = [("one fold", 1, False, False, on_cuda)]
    if compile and on_cuda:
        modes.append(("one fold compiled", 1, False, True, True))
    modes.append((f"fused x{folds}", folds, False, False, on_cuda))
    if on_cuda:
        modes.append((f"fused x{folds} graph", folds, True, False, True))
        modes.append((f"fused x{folds} graph fp32", folds, True, False, False))
        if compile:
            modes.append((f"fused x{folds} graph compiled", folds, True, True, True))
    name = torch.cuda.get_device_name(device) if on_cuda else f"cpu ({torch.get_num_threads()} threads)"
    precision = ("one fold bf16 autocast + channels_last, fused bf16 convolutions (fp32: TF32)" if on_cuda
                 else "fp32")
    print(f"bench-train {backbone} on {device} [{name}], {precision}, {steps} timed steps after 3 warm-up")
    print(f"projection: 26 folds x 100 epochs x 249 samples, each in 25 training sets: {protocol_images:,} images")
    print(f"{'device':<8} {'size':>5} {'batch':>5} {'mode':<23} {'images/s':>9} {'ms/step':>9} {'protocol':>10}")
    rows = []
    for size in sizes:
        for batch in batches:
            for label, k, graph, compiled, bf16 in modes:
                try:
                    step, images_per_step = _bench_step(backbone, size, batch, k, graph, compiled, device, bf16)
                    for _ in range(0 if graph else 3):  # a graph's capture has warmed up already
                        step()
                    if on_cuda:
                        torch.cuda.synchronize(device)
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        step()
                    if on_cuda:
                        torch.cuda.synchronize(device)
                except Exception as e:  # one mode failing (out of memory, say) leaves the others' figures
                    print(f"{device.type:<8} {size:>5} {batch:>5} {label:<23} failed: {type(e).__name__}: {e}",
                          flush=True)
                    rows.append(dict(device=device.type, size=size, batch=batch, mode=label,
                                     error=f"{type(e).__name__}: {e}"))
                    step = None
                    continue
                seconds = time.perf_counter() - t0  # wall time of `steps` steps
                ips = steps * images_per_step / seconds
                total_min = protocol_images / ips / 60
                protocol = f"{int(total_min // 60)}h{int(total_min % 60):02d}m"
                print(f"{device.type:<8} {size:>5} {batch:>5} {label:<23} {ips:>9.1f} {1000 * seconds / steps:>9.1f} "
                      f"{protocol:>10}", flush=True)
                rows.append(dict(device=device.type, size=size, batch=batch, mode=label, images_per_s=round(ips, 1),
                                 ms_per_step=round(1000 * seconds / steps, 1), protocol=protocol))
                del step
                if on_cuda:
                    torch.cuda.empty_cache()
    print(f"({backbone}: {count_params(build_model(backbone, 5)) / 1e6:.1f} M parameters)")
    return rows


def bench_protocol(crops, epochs=1, fold_group="auto", device=None, work="bench/protocol", backbone=None,
                   size=224, batch_size=2, cuda_graph="auto"):
    """A real LOSO training run of every fold at once, as `train.fold_group` runs it in the workflow, from
    a folder of HDF5 crop caches (e.g. `bench-preprocess`'s, of a CASME II-sized mirror): the paper's
    settings (SE-ResNeXt-50, focal loss, Adam 1e-4, 5 classes, `size` px, batch 2) for `epochs` epochs.
    Needs only the library (no Snakemake, no dlib). Prints the wall time and its 100-epoch projection, and
    returns them as a dict of figures."""
    import torch

    from mer.schema import schema, train_defaults
    from mer.train.data import subjects_with_samples
    from mer.train.groups import input_key, train_group
    from mer.train.settings import DEFAULTS

    paths = sorted(str(p) for p in Path(crops).glob("*.h5"))
    if not paths:
        raise FileNotFoundError(f"no *.h5 crop caches in {crops}")
    train = train_defaults()
    classes = list(schema()["properties"]["tasks"]["default"][train["task"]])
    cfg = {**DEFAULTS, **train, "name": "protocol", "classes": classes, "epochs": int(epochs), "size": int(size),
           "batch_size": int(batch_size), "fold_group": fold_group, "checkpoint_every": 10**6,
           "backbone": backbone or train["backbone"], "cuda_graph": cuda_graph}
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    subjects = subjects_with_samples(paths, cfg["task"])
    store = Path(work).resolve() / f"{fold_group}-{device.type}"
    shutil.rmtree(store, ignore_errors=True)  # train afresh: a timing, not a result to reuse
    store.mkdir(parents=True)
    t0 = time.perf_counter()
    train_group(paths, subjects, cfg, store, input_key(cfg, subjects, paths), device=device, progress=False)
    wall = time.perf_counter() - t0
    meta = json.loads((store / "group.json").read_text())
    seconds = [json.loads((store / s / "fold.json").read_text())["seconds"] for s in subjects]
    print(f"bench-protocol: {len(subjects)} folds of {len(paths)} crop caches, {cfg['backbone']}, {size} px, "
          f"batch {batch_size}, {epochs} epoch(s), fold_group {fold_group} -> {meta['size']} fused at once "
          f"(CUDA graph: {cuda_graph}), "
          f"on {device} [{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}]")
    print(f"  wall time {wall:.1f} s (longest fold's own record {max(seconds):.1f} s); 100 epochs would take "
          f"about {wall * 100 / int(epochs) / 60:.1f} min (one-time setup counted in each epoch: an upper bound)")
    return dict(folds=len(subjects), crop_caches=len(paths), backbone=cfg["backbone"], size=int(size),
                batch=int(batch_size), epochs=int(epochs), fold_group=fold_group, fused=meta["size"],
                cuda_graph=cuda_graph, device=device.type, wall_s=round(wall, 1),
                longest_fold_s=round(max(seconds), 1), projected_100_epochs_min=round(wall * 100 / int(epochs) / 60, 1))


def _bench_step(backbone, size, batch, k, graph, compiled, device, bf16=False):
    """A training step of k folds (k = 1: the plain model; else fused) on random uint8 crops; returns
    (step function, images per step). bf16: autocast for one fold, bf16 convolutions for a group."""
    import torch

    from mer.train.augment import Inputs
    from mer.train.fused import FusedAdam, FusedModels, _Step, compute_dtype, products_like_convolutions
    from mer.train.losses import FocalLoss
    from mer.train.models import build_model

    on_cuda = device.type == "cuda"
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4 * k * batch, 3, size, size), generator=g, dtype=torch.uint8).to(device)
    labels = (torch.arange(len(images)) % 5).to(device)
    idx = torch.arange(k * batch, device=device).view(k, batch)
    flip = (torch.rand(k, batch, generator=g) < 0.5).to(device)
    angle = ((torch.rand(k, batch, generator=g) * 2 - 1) * 15).to(device)
    torch.manual_seed(0)
    models = [build_model(backbone, 5)]
    models += [copy.deepcopy(models[0]) for _ in range(k - 1)]  # weights do not matter to a timing
    inputs = Inputs(models[0].pretrained_cfg["mean"], models[0].pretrained_cfg["std"], True, device)
    if k > 1:
        settings = dict(device=device, amp=bf16, channels_last=False)  # as mer.train.fused.fused_settings
        products_like_convolutions(device)  # as mer.train.fused.FusedFolds
        fused = FusedModels(models, device, compute_dtype(settings))
        fused.train()
        step = _Step(fused, FusedAdam(fused.params, lr=1e-4), FocalLoss(), inputs, images, labels, settings, k, batch,
                     compiled=compiled)
        active = torch.ones(k, device=device)
        if graph:
            step.capture(idx, flip, angle, active)
        return (lambda: step(idx, flip, angle, active)), k * batch

    model = models[0].to(device)
    if on_cuda:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    step_model = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = FocalLoss()

    def one_fold():
        x = inputs.train(images[idx[0]], flip[0], angle[0])
        if on_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(step_model(x), labels[idx[0]])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return one_fold, batch
