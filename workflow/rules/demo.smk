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
