# mer: raw frames -> landmarks -> apex -> HDF5 face crops -> LOSO training -> reports.
# Run: snakemake --cores 8 --resources gpu=1   (config.yaml = the generated demo)
# Report: snakemake --report results/report.html   (after a run; one self-contained HTML file)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"


rule all:
    default_target: True
    input:
        all_targets,


# Final models for `mer predict`: every experiment trained on every subject (after its LOSO run).
rule final:
    input:
        [f"{RES}/{name}/final/model.json" for name in EXPERIMENTS],
