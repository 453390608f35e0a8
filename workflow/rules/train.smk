# The library modules that every training rule runs (a fold, a fused group's fold, a final model).
TRAIN_CODE = code(
    "train.loop",
    "train.settings",
    "train.folds",
    "train.single",
    "train.outputs",
    "train.inference",
    "train.modelfile",
    "schema",
    "train.augment",
    "train.data",
    "preprocess.flow",
    "train.models",
    "train.losses",
    "metrics",
)
# The library modules that every rule pooling a run's or an experiment's predictions runs.
POOLING_CODE = code("evaluate.pooling", "evaluate.plots", "metrics")
# A fold's folder; its files: mer.train.groups.FOLD_OUTPUTS.
FOLD = f"{RES}/{{experiment}}/folds/{{fold}}"


rule train_fold:
    input:
        caches=lambda wc: PLAN.training_caches(wc.experiment),
        code=TRAIN_CODE,
    output:
        **fold_paths(FOLD),
    log:
        f"{RES}/logs/train_fold/{{experiment}}/{{fold}}.log",
    wildcard_constraints:
        experiment=alternatives([r for r in RUNS if not PLAN.fused(r)]),
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
        caches=lambda wc: PLAN.training_caches(wc.experiment),
        code=TRAIN_CODE + code("train.fused", "train.groups"),
        first=lambda wc: PLAN.group_first_fold(wc.experiment, wc.fold) or [],
    output:
        **fold_paths(FOLD),
    log:
        f"{RES}/logs/train_fold_group/{{experiment}}/{{fold}}.log",
    wildcard_constraints:
        experiment=alternatives([r for r in RUNS if PLAN.fused(r)]),
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        experiment=lambda wc: PLAN.group_config(wc.experiment),
        members=lambda wc: PLAN.group_members(wc.experiment, wc.fold),
        member=lambda wc: PLAN.member_of(wc.experiment, wc.fold),
        store=lambda wc: PLAN.group_store(wc.experiment, wc.fold),
        slots=gpu_slots(),
        lock_dir=f"{RES}/.gpu_slots",
    script:
        "../scripts/train_fold_group.py"


# The experiment trained once on every subject, for `mer predict` (target `final`, not in `all`). It waits
# for the LOSO result, whose scores go into model.json: what a user may expect of the model.
rule train_final:
    input:
        caches=lambda wc: PLAN.training_caches(wc.experiment),
        loso=f"{RES}/{{experiment}}/metrics.json",
        code=TRAIN_CODE,
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
        experiment=lambda wc: PLAN.final_config(wc.experiment),
        slots=gpu_slots(),
        lock_dir=f"{RES}/.gpu_slots",
    script:
        "../scripts/train_final.py"


rule aggregate_loso:
    input:
        predictions=lambda wc: PLAN.fold_files(wc.experiment, "predictions"),
        metrics=lambda wc: PLAN.fold_files(wc.experiment, "metrics"),
        audit=lambda wc: PLAN.fold_files(wc.experiment, "audit"),
        code=POOLING_CODE,
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
            f"{RES}/{r}/metrics.json" for r in PLAN.runs_of(wc.experiment)
        ],
        predictions=lambda wc: [
            f"{RES}/{r}/predictions.tsv" for r in PLAN.runs_of(wc.experiment)
        ],
        code=POOLING_CODE,
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
        code=POOLING_CODE
        + code(
            "evaluate.summary",
            "evaluate.render",
            "evaluate.notes",
            "evaluate.reported",
        ),
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
