rule make_demo:
    output:
        sheet=f"{RES}/demo/coding.csv",
        frames=directory(f"{RES}/demo/frames"),
    log:
        f"{RES}/logs/make_demo.log",
    conda:
        "../envs/preprocess.yaml"
    threads: 2
    params:
        demo=config["demo"],
        out=lambda wc, output: str(Path(output.sheet).parent),
    script:
        "../scripts/make_demo.py"


# With demo.datasets: one generated dataset per name, in that dataset's own folders and sheet (mer.demo
# LAYOUTS; SMIC's has no sheet: coding.csv there only records what was drawn).
rule make_demo_dataset:
    output:
        sheet=f"{RES}/demo/{{dataset}}/coding.csv",
        frames=directory(f"{RES}/demo/{{dataset}}/frames"),
    log:
        f"{RES}/logs/make_demo/{{dataset}}.log",
    wildcard_constraints:
        dataset=alternatives(config["demo"]["datasets"]),
    conda:
        "../envs/preprocess.yaml"
    threads: 2
    params:
        demo=config["demo"],
        out=lambda wc, output: str(Path(output.sheet).parent),
    script:
        "../scripts/make_demo.py"
