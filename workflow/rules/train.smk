rule train_fold:
    input:
        caches=training_caches,
        code=code(
            "train.engine",
            "train.settings",
            "train.inference",
            "train.modelfile",
            "train.augment",
            "train.data",
            "preprocess.flow",
            "train.models",
            "train.losses",
            "metrics",
        ),
    output:
        model=f"{RES}/{{experiment}}/folds/{{fold}}/model.pt",
        metrics=f"{RES}/{{experiment}}/folds/{{fold}}/metrics.csv",
        predictions=f"{RES}/{{experiment}}/folds/{{fold}}/predictions.tsv",
        audit=f"{RES}/{{experiment}}/folds/{{fold}}/held_out_by_epoch.tsv",
        info=f"{RES}/{{experiment}}/folds/{{fold}}/fold.json",
    log:
        f"{RES}/logs/train_fold/{{experiment}}/{{fold}}.log",
    wildcard_constraints:
        experiment=runs_re(fused=False),
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        experiment=lambda wc: RUNS[wc.experiment],
        slots=gpu_slots(),
        lock_dir=f"{RES}/.gpu_slots",
    script:
        "../scripts/train_fold.py"


# Experiments with train.fold_group other than 1: one job per fold, as train_fold, but the group's
# first job trains all its folds fused in one process and keeps them in the group's store; the others
# wait for it (they take its fold.json as input) and hard-link their files from the store (mer.train.groups).
rule train_fold_group:
    input:
        caches=training_caches,
        code=code(
            "train.engine",
            "train.settings",
            "train.inference",
            "train.modelfile",
            "train.augment",
            "train.data",
            "preprocess.flow",
            "train.models",
            "train.losses",
            "metrics",
            "train.fused",
            "train.groups",
        ),
        first=group_first_fold,
    output:
        model=f"{RES}/{{experiment}}/folds/{{fold}}/model.pt",
        metrics=f"{RES}/{{experiment}}/folds/{{fold}}/metrics.csv",
        predictions=f"{RES}/{{experiment}}/folds/{{fold}}/predictions.tsv",
        audit=f"{RES}/{{experiment}}/folds/{{fold}}/held_out_by_epoch.tsv",
        info=f"{RES}/{{experiment}}/folds/{{fold}}/fold.json",
    log:
        f"{RES}/logs/train_fold_group/{{experiment}}/{{fold}}.log",
    wildcard_constraints:
        experiment=runs_re(fused=True),
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        experiment=lambda wc: group_config(wc.experiment),
        members=group_members,
        member=member_of,
        store=group_store,
        slots=gpu_slots(),
        lock_dir=f"{RES}/.gpu_slots",
    script:
        "../scripts/train_fold_group.py"


# The experiment trained once on every subject, for `mer predict` (target `final`, not in `all`). It waits
# for the LOSO result, whose scores go into model.json: what a user may expect of the model.
rule train_final:
    input:
        caches=training_caches,
        loso=f"{RES}/{{experiment}}/metrics.json",
        code=code(
            "train.engine",
            "train.settings",
            "train.inference",
            "train.modelfile",
            "train.augment",
            "train.data",
            "preprocess.flow",
            "train.models",
            "train.losses",
            "metrics",
        ),
    output:
        model=f"{RES}/{{experiment}}/final/model.pt",
        info=f"{RES}/{{experiment}}/final/model.json",
        metrics=f"{RES}/{{experiment}}/final/metrics.csv",
    log:
        f"{RES}/logs/train_final/{{experiment}}.log",
    wildcard_constraints:
        experiment=alternatives(EXPERIMENTS),
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        experiment=lambda wc: final_config(wc.experiment),
        slots=gpu_slots(),
        lock_dir=f"{RES}/.gpu_slots",
    script:
        "../scripts/train_final.py"


rule aggregate_loso:
    input:
        predictions=fold_outputs("predictions.tsv"),
        metrics=fold_outputs("metrics.csv"),
        audit=fold_outputs("held_out_by_epoch.tsv"),
        code=code("evaluate.aggregate", "metrics"),
    output:
        predictions=f"{RES}/{{experiment}}/predictions.tsv",
        metrics=f"{RES}/{{experiment}}/metrics.json",
        confusion=f"{RES}/{{experiment}}/confusion.csv",
        confusion_png=report(
            f"{RES}/{{experiment}}/confusion.png",
            caption="../report/confusion.rst",
            category="1. Results",
            subcategory="Confusion matrices",
            labels={"experiment": "{experiment}"},
        ),
        per_fold=f"{RES}/{{experiment}}/per_fold.tsv",
        per_fold_png=report(
            f"{RES}/{{experiment}}/per_fold.png",
            caption="../report/per_fold.rst",
            category="1. Results",
            subcategory="Accuracy per fold",
            labels={"experiment": "{experiment}"},
        ),
        training_curves=report(
            f"{RES}/{{experiment}}/training_curves.png",
            caption="../report/training_curves.rst",
            category="2. Training",
            subcategory="Training curves",
            labels={"experiment": "{experiment}"},
        ),
    log:
        f"{RES}/logs/aggregate_loso/{{experiment}}.log",
    wildcard_constraints:
        experiment=alternatives(RUNS),
    conda:
        "../envs/train.yaml"
    params:
        experiment=lambda wc: RUNS[wc.experiment],
        out=lambda wc, output: str(Path(output.metrics).parent),
    script:
        "../scripts/aggregate_loso.py"


# An experiment with `seeds`: its runs' results side by side, with the mean and spread over seeds.
rule aggregate_seeds:
    input:
        metrics=lambda wc: [
            f"{RES}/{r}/metrics.json"
            for r in RUNS
            if experiment_of(r) == wc.experiment
        ],
        predictions=lambda wc: [
            f"{RES}/{r}/predictions.tsv"
            for r in RUNS
            if experiment_of(r) == wc.experiment
        ],
        code=code("evaluate.aggregate", "metrics"),
    output:
        predictions=f"{RES}/{{experiment}}/predictions.tsv",
        metrics=f"{RES}/{{experiment}}/metrics.json",
    log:
        f"{RES}/logs/aggregate_seeds/{{experiment}}.log",
    wildcard_constraints:
        experiment=alternatives(SEEDED),
    conda:
        "../envs/train.yaml"
    params:
        experiment=lambda wc: EXPERIMENTS[wc.experiment],
        out=lambda wc, output: str(Path(output.metrics).parent),
    script:
        "../scripts/aggregate_seeds.py"


rule summarize_experiments:
    input:
        metrics=[f"{RES}/{name}/metrics.json" for name in EXPERIMENTS],
        predictions=[f"{RES}/{name}/predictions.tsv" for name in EXPERIMENTS],
        code=code("evaluate.aggregate", "metrics"),
    output:
        md=f"{RES}/summary.md",
        tsv=report(
            f"{RES}/summary.tsv",
            caption="../report/summary.rst",
            category="1. Results",
            subcategory="Summary",
            labels={"table": "all experiments (TSV download)"},
        ),
        html=report(
            f"{RES}/summary.html",
            caption="../report/summary.rst",
            category="1. Results",
            subcategory="Summary",
            labels={"table": "all experiments"},
        ),
    log:
        f"{RES}/logs/summarize_experiments.log",
    conda:
        "../envs/train.yaml"
    params:
        experiments=EXPERIMENTS,
        dataset=" + ".join(DATASETS),  # the title: which data
        compare=config["report"]["compare"],
        real=not DEMO,  # published numbers beside ours only on real data
    script:
        "../scripts/summarize_experiments.py"
