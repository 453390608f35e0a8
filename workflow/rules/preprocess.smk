checkpoint read_sheet:
    input:
        sheet=SHEET,
        frames=rules.make_demo.output.frames if DEMO else [],
        code=code("datasets.sheet", "datasets.frames"),
    output:
        samples=f"{RES}/samples.tsv",
    log:
        f"{RES}/logs/read_sheet.log",
    benchmark:
        f"{RES}/benchmarks/read_sheet.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 2
    params:
        root=lambda wc, input: input.frames if DEMO else FRAMES_ROOT,
        data=lambda wc: config["data"],  # a function: no wildcard expansion in frame_pattern
        tasks=config["tasks"],
        emotions=config["emotions"],
    script:
        "../scripts/read_sheet.py"


rule detect_landmarks:
    input:
        samples=f"{RES}/samples.tsv",
        code=code("preprocess.landmarks", "datasets.frames"),
    output:
        f"{RES}/landmarks/sub{{subject}}.tsv",
    log:
        f"{RES}/logs/detect_landmarks/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/detect_landmarks/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        root=FRAMES_ROOT,
        pattern=lambda wc: config["data"]["frame_pattern"],  # a function: no wildcard expansion
        landmarks=config["landmarks"],
        frames=subject_frames,
    script:
        "../scripts/detect_landmarks.py"


rule spot_apex:
    input:
        samples=f"{RES}/samples.tsv",
        landmarks=f"{RES}/landmarks/sub{{subject}}.tsv",
        code=code("preprocess.apex", "datasets.frames", "preprocess.landmarks"),
    output:
        apex=f"{RES}/apex/sub{{subject}}.tsv",
        curves=f"{RES}/apex/sub{{subject}}_curves.tsv",
    log:
        f"{RES}/logs/spot_apex/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/spot_apex/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        root=FRAMES_ROOT,
        pattern=lambda wc: config["data"]["frame_pattern"],  # a function: no wildcard expansion
        apex=config["apex"],
        landmarks=config["landmarks"],  # the face check at the apex detects with the same upsampling
        frames=subject_frames,
    script:
        "../scripts/spot_apex.py"


rule crop_faces:
    input:
        samples=f"{RES}/samples.tsv",
        landmarks=f"{RES}/landmarks/sub{{subject}}.tsv",
        apex=f"{RES}/apex/sub{{subject}}.tsv",
        code=code("preprocess.crops", "preprocess.align"),
    output:
        f"{RES}/crops/sub{{subject}}.h5",
    log:
        f"{RES}/logs/crop_faces/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/crop_faces/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        root=FRAMES_ROOT,
        pattern=lambda wc: config["data"]["frame_pattern"],  # a function: no wildcard expansion
        crop=config["crop"],
    script:
        "../scripts/crop_faces.py"


# Onset -> apex optical flow of the cached crops, for experiments with input: flow (only they ask for it).
# Its own file beside the crops: a changed `flow` setting reruns this and those experiments' training only.
rule compute_flow:
    input:
        crops=f"{RES}/crops/sub{{subject}}.h5",
        code=code("preprocess.flow"),
    output:
        f"{RES}/flow/sub{{subject}}.h5",
    log:
        f"{RES}/logs/compute_flow/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/compute_flow/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        flow=config["flow"],
    script:
        "../scripts/compute_flow.py"


rule report_preprocessing:
    input:
        samples=f"{RES}/samples.tsv",
        landmarks=per_subject(f"{RES}/landmarks/sub{{subject}}.tsv"),
        apex=per_subject(f"{RES}/apex/sub{{subject}}.tsv"),
        curves=per_subject(f"{RES}/apex/sub{{subject}}_curves.tsv"),
        crops=per_subject(f"{RES}/crops/sub{{subject}}.h5"),
        code=code("preprocess.report"),
    output:
        report=f"{RES}/preprocessing/report.md",
        errors=f"{RES}/preprocessing/apex_error.tsv",
        excluded=f"{RES}/preprocessing/excluded.tsv",
        curves=report(
            f"{RES}/preprocessing/apex_curves.png",
            caption="../report/apex_curves.rst",
            category="3. Preprocessing",
            subcategory="Apex and crops",
            labels={"figure": "apex spotting: M_i curves"},
        ),
        montage=report(
            f"{RES}/preprocessing/crops_montage.png",
            caption="../report/crops_montage.rst",
            category="3. Preprocessing",
            subcategory="Apex and crops",
            labels={"figure": "aligned apex crops per class"},
        ),
    log:
        f"{RES}/logs/report_preprocessing.log",
    benchmark:
        f"{RES}/benchmarks/report_preprocessing.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        task=config["report"]["task"],
        out=lambda wc, output: str(Path(output.report).parent),
    script:
        "../scripts/report_preprocessing.py"
