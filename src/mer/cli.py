"""The `mer` console script: demo data and benchmarks. The workflow itself runs under snakemake."""

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
    demo.add_argument("--mirror", default=None, help="reproduce this coding sheet's rows (xlsx or csv)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--shuffle-labels", action="store_true",
                      help="shuffle emotions within each subject after rendering (a null dataset)")
    demo.add_argument("--workers", type=int, default=2, help="processes used to render (default 2)")

    bench = sub.add_parser("bench-preprocess", help="time landmarks, apex and crops on a mirrored demo")
    bench.add_argument("--sheet", required=True, help="coding sheet to mirror, e.g. CASME II's")
    bench.add_argument("--work", default="bench/preprocess", help="scratch folder")
    bench.add_argument("--threads", type=int, default=2)

    btrain = sub.add_parser("bench-train", help="training images/s and projected protocol time")
    btrain.add_argument("--backbone", default="seresnext50_32x4d")
    btrain.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    btrain.add_argument("--batches", type=int, nargs="+", default=[2, 8], help="batch sizes, per fold")
    btrain.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    btrain.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    btrain.add_argument("--compile", action="store_true", help="also time torch.compile on CUDA")
    btrain.add_argument("--folds", type=int, default=None,
                        help="folds in the fused modes (default: 26 on CUDA, 6 on the CPU)")

    bproto = sub.add_parser("bench-protocol", help="time a real fused LOSO run from HDF5 crop caches")
    bproto.add_argument("--crops", required=True, help="folder of crop caches (subSS.h5), e.g. bench-preprocess's")
    bproto.add_argument("--epochs", type=int, default=1, help="epochs to run (the projection is to 100)")
    bproto.add_argument("--fold-group", default="auto", help="1, K, all or auto (default)")
    bproto.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    bproto.add_argument("--backbone", default=None, help="default: the schema's (SE-ResNeXt-50)")
    bproto.add_argument("--size", type=int, default=224, help="input px (default 224)")
    bproto.add_argument("--batch", type=int, default=2, help="batch per fold (default 2)")
    bproto.add_argument("--work", default="bench/protocol", help="scratch folder for the folds' files")
    bproto.add_argument("--cuda-graph", default="auto", choices=["auto", "true", "false"],
                        help="capture the fused step as a CUDA graph (default auto: on CUDA)")

    args = parser.parse_args(argv)
    if args.command == "demo":
        from mer.demo import make_demo

        sheet = make_demo(args.out, subjects=args.subjects, clips_per_subject=args.clips,
                          amplitude=args.amplitude, mirror=args.mirror, seed=args.seed,
                          shuffle_labels=args.shuffle_labels, workers=args.workers)
        print(f"demo written: coding sheet {sheet}")
    elif args.command == "bench-preprocess":
        from mer.bench import bench_preprocess

        bench_preprocess(args.sheet, args.work, threads=args.threads)
    elif args.command == "bench-train":
        from mer.bench import bench_train

        bench_train(args.backbone, args.sizes, args.batches, steps=args.steps, device=args.device,
                    compile=args.compile, folds=args.folds)
    elif args.command == "bench-protocol":
        from mer.bench import bench_protocol

        group = args.fold_group if args.fold_group in ("all", "auto") else int(args.fold_group)
        bench_protocol(args.crops, epochs=args.epochs, fold_group=group, device=args.device, work=args.work,
                       backbone=args.backbone, size=args.size, batch_size=args.batch,
                       cuda_graph={"auto": "auto", "true": True, "false": False}[args.cuda_graph])
    return 0


if __name__ == "__main__":
    sys.exit(main())
