"""`mer predict` timed as a user runs it (bench-predict)."""

import shutil
import time
from pathlib import Path


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

    from mer.demo import make_demo
    from mer.schema import defaults, schema, train_defaults
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
