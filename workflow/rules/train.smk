rule train_fold:
    input:
        crops=per_subject(f"{RES}/crops/sub{{subject}}.h5"),
        code=code("engine", "data", "models", "losses", "metrics"),
    output:
        model=f"{RES}/{{experiment}}/folds/{{subject}}/model.pt",
        metrics=f"{RES}/{{experiment}}/folds/{{subject}}/metrics.csv",
        predictions=f"{RES}/{{experiment}}/folds/{{subject}}/predictions.tsv",
        info=f"{RES}/{{experiment}}/folds/{{subject}}/fold.json",
    params:
        experiment=lambda wc: EXPERIMENTS[wc.experiment],
        slots=gpu_slots(),
        lock_dir=f"{RES}/.gpu_slots",
    resources:
        gpu=1,
    threads: 2
    log:
        f"{RES}/logs/train_fold/{{experiment}}/{{subject}}.log",
    script:
        "../scripts/train_fold.py"


rule aggregate_loso:
    input:
        predictions=fold_outputs("predictions.tsv"),
        code=code("aggregate", "metrics"),
    output:
        predictions=f"{RES}/{{experiment}}/predictions.tsv",
        metrics=f"{RES}/{{experiment}}/metrics.json",
        confusion=f"{RES}/{{experiment}}/confusion.csv",
        confusion_png=f"{RES}/{{experiment}}/confusion.png",
        per_fold=f"{RES}/{{experiment}}/per_fold.tsv",
        per_fold_png=f"{RES}/{{experiment}}/per_fold.png",
    params:
        experiment=lambda wc: EXPERIMENTS[wc.experiment],
        out=lambda wc: f"{RES}/{wc.experiment}",
    log:
        f"{RES}/logs/aggregate_loso/{{experiment}}.log",
    script:
        "../scripts/aggregate_loso.py"


rule summarize_experiments:
    input:
        metrics=[f"{RES}/{name}/metrics.json" for name in EXPERIMENTS],
        code=code("aggregate"),
    output:
        md=f"{RES}/summary.md",
        tsv=f"{RES}/summary.tsv",
    params:
        experiments=EXPERIMENTS,
        dataset=config["dataset"],
    log:
        f"{RES}/logs/summarize_experiments.log",
    script:
        "../scripts/summarize_experiments.py"
