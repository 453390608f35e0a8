"""The `mer` console script: demo data, benchmarks, predictions and the generated docs. The workflow itself runs
under snakemake."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write a generated dataset shaped like CASME II")
    demo.add_argument("--out", required=True, help="output folder (frames/ and coding.csv)")
    demo.add_argument("--subjects", type=int, default=6, help="number of subjects (default 6)")
    demo.add_argument("--clips", type=int, default=10, help="clips per subject (default 10)")
    demo.add_argument("--amplitude", type=float, default=None, help="peak AU motion in pixels; 0 = null data")
    demo.add_argument("--mirror", default=None,
                      help="reproduce this coding sheet's rows (CASME II's or SAMM's, xlsx or csv), or the MEGC "
                           "2019 composite list (composite_3class.csv: every dataset's clips in it, in OUT/NAME/)")
    demo.add_argument("--layout", default=None, choices=["casme2", "samm", "smic_hs"],
                      help="whose folders and sheet to imitate (default casme2; samm for a sheet named SAMM*; "
                           "for the composite list all three)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--shuffle-labels", action="store_true",
                      help="shuffle emotions within each subject after rendering (a null dataset)")
    demo.add_argument("--workers", type=int, default=2, help="processes used to render (default 2)")

    bench = sub.add_parser("bench-preprocess", help="time landmarks, apex and crops on a mirrored demo")
    bench.add_argument("--sheet", required=True, help="coding sheet to mirror, e.g. CASME II's")
    bench.add_argument("--work", default="bench/preprocess", help="scratch folder (and the run's record)")
    bench.add_argument("--threads", type=int, default=2)

    btrain = sub.add_parser("bench-train", help="training images/s and projected protocol time")
    btrain.add_argument("--backbone", default="seresnext50_32x4d")
    btrain.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    btrain.add_argument("--batches", type=int, nargs="+", default=[2, 8], help="batch sizes, per fold")
    btrain.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    btrain.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    btrain.add_argument("--compile", action="store_true",
                        help="also time torch.compile on CUDA (one fold, and a fused group's forward)")
    btrain.add_argument("--folds", type=int, default=None,
                        help="folds in the fused modes (default: 26 on CUDA, 6 on the CPU)")
    btrain.add_argument("--work", default="bench/train", help="folder for the run's record")

    bproto = sub.add_parser("bench-protocol", help="time a real fused LOSO run from HDF5 crop caches")
    bproto.add_argument("--crops", required=True, help="folder of crop caches (subSS.h5), e.g. bench-preprocess's")
    bproto.add_argument("--epochs", type=int, default=1, help="epochs to run (the projection is to 100)")
    bproto.add_argument("--fold-group", default="auto", help="1, K, all or auto (default)")
    bproto.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    bproto.add_argument("--backbone", default=None, help="default: the schema's (SE-ResNeXt-50)")
    bproto.add_argument("--size", type=int, default=224, help="input px (default 224)")
    bproto.add_argument("--batch", type=int, default=2, help="batch per fold (default 2)")
    bproto.add_argument("--work", default="bench/protocol", help="scratch folder for the folds' files (and the record)")
    bproto.add_argument("--cuda-graph", default="auto", choices=["auto", "true", "false"],
                        help="capture the fused step as a CUDA graph (default auto: on CUDA)")

    bpred = sub.add_parser("bench-predict", help="time `mer predict` on a generated 2 s, 200 fps clip")
    bpred.add_argument("--work", default="bench/predict", help="scratch folder (and the run's record)")
    bpred.add_argument("--frames", type=int, default=400, help="frames in the clip (default 400)")
    bpred.add_argument("--repeats", type=int, default=3)
    bpred.add_argument("--size", type=int, default=224, help="model input px (default 224)")
    for p in (bench, btrain, bproto, bpred):
        p.add_argument("--record", action="store_true",
                       help="also write the run's record (figures, machine, versions, date, commit: JSON) into the "
                            "checkout's docs/records/, from which `mer docs` renders docs/benchmarks.md; without it "
                            "the record goes into the --work folder only")

    docs = sub.add_parser("docs", help="regenerate docs/configuration.md (from the config schema) and "
                                       "docs/benchmarks.md (from docs/records/)")
    docs.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 naming each generated page that is out of date")

    pred = sub.add_parser("predict", help="recognise the micro-expression in a video or a folder of frames")
    pred.add_argument("input", help="a video file (mp4, avi, mov) or a folder of frames (img*.jpg or any images)")
    pred.add_argument("--model", required=True,
                      help="model.pt, its folder, or an experiment folder (final/ model, else its fold models)")
    pred.add_argument("--ensemble", action="store_true",
                      help="use the experiment's LOSO fold models, averaging their probabilities")
    pred.add_argument("--onset", type=int, default=None, help="first frame of the clip (default: the first)")
    pred.add_argument("--offset", type=int, default=None, help="last frame of the clip (default: the last)")
    pred.add_argument("--apex", type=int, default=None, help="use this apex frame instead of the spotted one")
    pred.add_argument("--window", type=int, default=None,
                      help="a long input: slide a window of this many frames and predict where it moves")
    pred.add_argument("--stride", type=int, default=None, help="window step in frames (default: window / 4)")
    pred.add_argument("--threshold", type=float, default=2.5, help="peak M_i a window needs (default 2.5)")
    pred.add_argument("--rest", type=float, default=0.8,
                      help="a window must start and end at rest: |first - last| below this share of the motion")
    pred.add_argument("--out", default=None, help="folder for prediction.json and prediction.png")
    pred.add_argument("--json", action="store_true", help="print JSON instead of text")
    pred.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there is one)")
    pred.add_argument("--verbose", action="store_true", help="also print the time taken, model load included")

    args = parser.parse_args(argv)
    if args.command == "predict":
        return run_predict(args)
    if args.command == "docs":
        return run_docs(args.check)
    if args.command == "demo":
        from pathlib import Path

        from mer.demo import LAYOUTS, is_composite, make_demo

        composite = bool(args.mirror) and is_composite(args.mirror)
        layouts = [args.layout] if args.layout else list(LAYOUTS) if composite else [
            "samm" if args.mirror and Path(args.mirror).name.lower().startswith("samm") else "casme2"]
        for layout in layouts:
            out = Path(args.out) / layout if composite else Path(args.out)
            sheet = make_demo(out, subjects=args.subjects, clips_per_subject=args.clips,
                              amplitude=args.amplitude, mirror=args.mirror, seed=args.seed,
                              shuffle_labels=args.shuffle_labels, workers=args.workers, layout=layout)
            print(f"demo written ({layout}): frames {out / 'frames'}, "
                  + ("clip list (no sheet: classes are folders) " if layout == "smic_hs" else "coding sheet ")
                  + str(sheet))
    elif args.command == "bench-preprocess":
        from mer.bench.preprocess import bench_preprocess

        record(args, argv, bench_preprocess(args.sheet, args.work, threads=args.threads))
    elif args.command == "bench-predict":
        from mer.bench.predict import bench_predict

        record(args, argv, bench_predict(args.work, frames=args.frames, repeats=args.repeats, size=args.size))
    elif args.command == "bench-train":
        from mer.bench.train import bench_train

        record(args, argv, bench_train(args.backbone, args.sizes, args.batches, steps=args.steps, device=args.device,
                                       compile=args.compile, folds=args.folds))
    elif args.command == "bench-protocol":
        from mer.bench.train import bench_protocol

        group = args.fold_group if args.fold_group in ("all", "auto") else int(args.fold_group)
        record(args, argv, bench_protocol(args.crops, epochs=args.epochs, fold_group=group, device=args.device,
                                          work=args.work, backbone=args.backbone, size=args.size,
                                          batch_size=args.batch,
                                          cuda_graph={"auto": "auto", "true": True, "false": False}[args.cuda_graph]))
    return 0


def record(args, argv, figures):
    """A benchmark's record: into its --work folder, and with --record into docs/records/ too."""
    from mer.records import RECORDS, write_record

    argv = sys.argv[1:] if argv is None else argv
    paths = write_record(args.command, ["mer", *argv], figures, [args.work] + ([RECORDS] if args.record else []))
    print("record: " + ", ".join(str(p) for p in paths))


def run_docs(check, root=None):
    """`mer docs`: write the generated pages of the checkout at `root` (default: mer's own); with --check
    write nothing and exit 1 naming the stale ones."""
    from mer.docs import ROOT, stale, write_pages

    root = root or ROOT
    if check:
        old = stale(root)
        for path in old:
            print(f"mer docs: {path} is out of date: run `mer docs`", file=sys.stderr)
        return 1 if old else 0
    for path in write_pages(root):
        print(f"written: {path}")
    return 0


def run_predict(args):
    """`mer predict`: text, JSON (--json) and files (--out); exit status 2 with the reason on bad input."""
    import gc
    import json
    import time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    t0 = time.perf_counter()
    # Importing torch and timm makes about a million objects, none of them garbage, which the cyclic garbage
    # collector would scan again and again. It is off until the model is loaded.
    gc.disable()
    from mer.datasets.frames import FrameError, open_clip
    from mer.io import write_json, write_tsv
    from mer.predict import PredictError, load_model, plot_prediction, predict_clip, spot_windows

    # A video decodes (OpenCV, without the GIL) in a thread while torch and the model load (Python imports).
    pool = ThreadPoolExecutor(1)
    opening = pool.submit(open_clip, args.input)
    try:
        model = load_model(args.model, args.device, args.ensemble)
        gc.enable()
        t_model = time.perf_counter() - t0
        clip = opening.result()
        if args.window:
            table, preds = spot_windows(clip, model, args.window, args.stride, args.threshold, args.rest)
        else:
            preds = [predict_clip(clip, model, args.onset, args.offset, args.apex)]
    except (PredictError, FrameError) as e:
        print(f"mer predict: error: {e}", file=sys.stderr)
        return 2
    finally:
        gc.enable()
        pool.shutdown(cancel_futures=True)
    out = Path(args.out) if args.out else None
    if out:
        if args.window:
            write_tsv(table, out / "windows.tsv")
        write_json([p.to_json() for p in preds] if args.window else preds[0].to_json(), out / "prediction.json")
        for k, p in enumerate(preds):
            plot_prediction(p, out / (f"window{k + 1:03d}.png" if args.window else "prediction.png"))
    seconds = time.perf_counter() - t0
    if args.json:
        body = [p.to_json() for p in preds] if args.window else preds[0].to_json()
        if args.window:  # a skipped window's blanks: null, not NaN (which is not JSON)
            body = {"windows": table.astype(object).where(table.notna(), None).to_dict("records"),
                    "predictions": body}
        print(json.dumps(body, default=str))
    elif args.window:
        print(table.to_string(index=False) if len(table) else "no window moved more than the threshold")
    else:
        p = preds[0]
        how = "spotted" if p.apex == p.apex_spotted else f"given; spotted {p.apex_spotted}"
        print(f"input: {p.input}, frames {p.onset}..{p.offset}; apex {p.apex} ({how}); model saw frame {p.frame}")
        print(f"class: {p.label}")
        for k, v in sorted(p.probabilities.items(), key=lambda kv: -kv[1]):
            print(f"  {k:<12} {v:.3f}")
    if args.verbose:
        print(f"time: {seconds:.2f} s in all ({t_model:.2f} s to load the model on {model.device}, "
              f"{len(model.nets)} network(s))", file=sys.stderr)
    return 0


def run():
    """The console script `mer`: main(), then, after `mer predict`, an exit without the interpreter's
    teardown, which is slow once torch and timm are imported (their modules' objects freed one by one).
    Everything is written and closed by then; only stdout and stderr need flushing."""
    import os

    rc = main()
    if len(sys.argv) > 1 and sys.argv[1] == "predict":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(run())
