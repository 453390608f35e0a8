import contextlib
import copy
import io
import json
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
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

    from mer.config import schema, train_defaults
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


def bench_preprocess(sheet, work, threads=2):
    """Time the preprocessing DAG (read_sheet, landmarks, apex, crops, report) on a demo that mirrors
    `sheet`, e.g. CASME II's 255 clips / 17,138 frames at 640x480. Prints the figures and returns them as a
    dict; asserts nothing."""
    import subprocess
    import sys

    import pandas as pd
    import yaml

    from mer.demo import make_demo

    work = Path(work).resolve()
    data = work / "data"
    t0 = time.perf_counter()
    if not (data / "coding.csv").exists():
        make_demo(data, mirror=sheet, workers=threads)
    t_demo = time.perf_counter() - t0
    cfg = {"demo": {"enabled": False}, "experiments": [], "results": str(work / "results"), "dataset": "casme2",
           "data": {"root": str(data / "frames"), "sheet": str(data / "coding.csv")}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.rmtree(work / "results", ignore_errors=True)  # no stale job benchmarks in the breakdown
    shutil.rmtree(work / "floor", ignore_errors=True)
    snakefile = Path(__file__).resolve().parents[2] / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", str(threads), "--forceall", "--quiet"]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime  # Snakemake and every job, s
    samples_tsv = work / "results" / "samples" / "casme2.tsv"
    samples = pd.read_csv(samples_tsv, sep="\t", dtype={"subject": str})
    frames = int((samples.offset - samples.onset + 1)[samples.included].sum())
    errors = pd.read_csv(work / "results" / "preprocessing" / "casme2" / "apex_error.tsv", sep="\t")
    print(f"demo generation (mirror of {sheet}): {t_demo:.1f} s (0 if it already existed)")
    print(f"preprocessing: {len(samples)} clips, {frames} frames, {threads} cores")
    print(f"  wall time {wall:.1f} s, {frames / wall:.0f} frames/s (read_sheet + landmarks + apex + crops + report); "
          f"CPU {cpu:.1f} s in all")
    stages = stage_breakdown(work / "results" / "benchmarks", cpu)
    print(stages.to_string(index=False))
    print(errors.to_string(index=False))
    subjects = sorted(samples[samples.included].subject.unique())
    floor = preprocess_in_process(samples_tsv, subjects, data / "frames", work / "floor", threads)
    print(f"the same landmarks, apex and crops calls for every subject in {threads} processes, without Snakemake's "
          f"per-job start-up: {floor:.1f} s wall (the floor that per-subject jobs add their start-up to)")
    spotted = errors.set_index("method").loc["spotted"]
    return dict(clips=len(samples), frames=frames, cores=threads, demo_generation_s=round(t_demo, 1),
                wall_s=round(wall, 1), frames_per_s=round(frames / wall), cpu_s=round(cpu, 1),
                job_cpu_s=dict(zip(stages.stage, stages["CPU s"], strict=True)), floor_s=round(floor, 1),
                apex_mae_frames=round(float(spotted.mae_frames), 2), apex_within_3=round(float(spotted.within_3), 3))


def _subject_chain(args):
    """Landmarks, apex and crops of one subject, as the three rules run them (defaults of the schema)."""
    from mer.datasets.frames import DEFAULT_PATTERN
    from mer.preprocess.apex import spot_subject
    from mer.preprocess.crops import crop_subject
    from mer.preprocess.landmarks import detect_subject

    samples, root, out, subject = args
    lm, apex = out / f"sub{subject}_landmarks.tsv", out / f"sub{subject}_apex.tsv"
    with contextlib.redirect_stdout(io.StringIO()):
        detect_subject(samples, subject, root, DEFAULT_PATTERN, lm)
        spot_subject(samples, lm, subject, root, DEFAULT_PATTERN, apex, out / f"sub{subject}_curves.tsv")
        crop_subject(samples, lm, apex, subject, root, DEFAULT_PATTERN, out / f"sub{subject}.h5")


def preprocess_in_process(samples, subjects, root, out, threads):
    """Wall seconds of the per-subject chain for every subject in `threads` worker processes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(threads) as pool:
        list(pool.map(_subject_chain, [(samples, root, out, sub) for sub in subjects]))
    return time.perf_counter() - t0


def stage_breakdown(benchmarks, cpu_total):
    """Per rule, from Snakemake's `benchmark:` files: jobs, summed job wall time (s, Python start-up
    included) and CPU time (s). The last row is the rest of the run's CPU time: Snakemake itself (DAG,
    input checks, job start) and what the benchmark files miss (they sample a job's CPU time every 0.5 s, so
    up to 0.5 s at the end of each job is lost)."""
    import pandas as pd

    rows = []
    for folder in sorted(p for p in Path(benchmarks).iterdir()):
        files = [folder] if folder.is_file() else sorted(folder.rglob("*.tsv"))
        t = pd.concat([pd.read_csv(f, sep="\t") for f in files])
        rows.append({"stage": folder.name.removesuffix(".tsv"), "jobs": len(t), "wall s": t.s.sum(),
                     "wall s/job": t.s.mean(), "CPU s": t.cpu_time.sum()})
    rest = cpu_total - sum(r["CPU s"] for r in rows)
    rows.append({"stage": "snakemake + unsampled job CPU", "jobs": 1, "wall s": float("nan"),
                 "wall s/job": float("nan"), "CPU s": rest})
    return pd.DataFrame(rows).round(2)


def bench_predict(work="bench/predict", frames=400, repeats=3, size=224, backbone=None):
    """`mer predict` timed as a user runs it, a new process each time (imports and model load included), on
    one generated clip of `frames` frames (400: 2 s at CASME II's 200 fps, 640x480) as a frame folder and as
    an mp4, with a model of the paper's kind and size (schema defaults: SE-ResNeXt-50, `size` px; random
    weights and Adam state, as a model.pt of train_final holds: the time does not depend on their values).
    Prints the times and returns them as a dict."""
    import subprocess
    import sys

    import cv2
    import torch

    from mer.config import defaults, schema, train_defaults
    from mer.demo import make_demo
    from mer.train.modelfile import state
    from mer.train.models import build_model
    from mer.train.settings import DEFAULTS, resolve

    work = Path(work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sheet = work / "sheet.csv"
    sheet.write_text("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
                     f"1,EP01_01,1,{frames // 2},{frames},12,happiness\n")
    make_demo(work / "demo", mirror=sheet, amplitude=12, workers=2)
    folder = work / "demo" / "frames" / "sub01" / "EP01_01"
    images = [cv2.imread(str(folder / f"img{f}.jpg")) for f in range(1, frames + 1)]
    video = work / "clip.mp4"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 200, images[0].shape[1::-1])
    for img in images:
        out.write(img)
    out.release()

    props, train = schema()["properties"], train_defaults()
    cfg = resolve({**DEFAULTS, **train, "name": "bench", "size": int(size), "backbone": backbone or train["backbone"],
                   "classes": list(props["tasks"]["default"][train["task"]]),
                   "preprocess": {k: defaults(props[k]) for k in ("landmarks", "apex", "crop")}})
    model = build_model(cfg["backbone"], len(cfg["classes"]))
    adam = torch.optim.Adam(model.parameters())
    model(torch.zeros(2, 3, 64, 64)).sum().backward()
    adam.step()  # Adam's moments exist, as in a trained model.pt
    torch.save(state(model.state_dict(), adam.state_dict(), 1, cfg, "final", []), work / "model.pt")
    mb = (work / "model.pt").stat().st_size / 1e6
    mer = Path(sys.executable).parent / "mer"
    print(f"bench-predict: one {frames}-frame clip (640x480), {cfg['backbone']} at {size} px (model.pt {mb:.0f} MB), "
          f"a new `mer predict` process per run, {torch.get_num_threads()} CPU threads")
    figures = dict(frames=frames, backbone=cfg["backbone"], size=int(size), model_mb=round(mb), repeats=repeats,
                   threads=torch.get_num_threads())
    for name, source in (("frame folder", folder), ("mp4", video)):
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run([str(mer), "predict", str(source), "--model", str(work / "model.pt"), "--verbose"],
                                  capture_output=True, text=True, check=True)
            walls.append(time.perf_counter() - t0)
            said = [line for line in proc.stderr.splitlines() if line.startswith("time:")]
        print(f"  {name:<12}: {min(walls):.2f} s best of {repeats} (median {sorted(walls)[len(walls) // 2]:.2f} s), "
              f"process start to exit; the last run's own account: {said[-1] if said else '?'}")
        key = "folder" if name == "frame folder" else name
        figures[f"{key}_best_s"] = round(min(walls), 2)
        figures[f"{key}_median_s"] = round(sorted(walls)[len(walls) // 2], 2)
    return figures
