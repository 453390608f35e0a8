rule make_demo:
    output:
        sheet=f"{RES}/demo/coding.csv",
        frames=directory(f"{RES}/demo/frames"),
    params:
        demo=config["demo"],
        out=f"{RES}/demo",
    log:
        f"{RES}/logs/make_demo.log",
    threads: 2
    script:
        "../scripts/make_demo.py"
