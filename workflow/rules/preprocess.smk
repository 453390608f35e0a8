# One per dataset: its clips and labels (mer.datasets.catalog), each checked, into results/samples/DATASET.tsv.
# Per dataset, so a changed SAMM sheet reruns nothing of CASME II.
checkpoint read_sheet:
    input:
        sheet=lambda wc: DATASETS[wc.dataset]["sheet"] or [],
        frames=demo_frames,
        code=code("datasets.catalog", "datasets.sheet", "datasets.frames"),
    output:
        samples=f"{RES}/samples/{{dataset}}.tsv",
    log:
        f"{RES}/logs/read_sheet/{{dataset}}.log",
    benchmark:
        f"{RES}/benchmarks/read_sheet/{{dataset}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        entry=lambda wc: DATASETS[wc.dataset],  # a function: no wildcard expansion in frame_pattern
        clips=layout_clips,
    script:
        "../scripts/read_sheet.py"


rule detect_landmarks:
    input:
        samples=f"{RES}/samples/{{dataset}}.tsv",
        code=code("preprocess.landmarks", "datasets.frames"),
    output:
        f"{RES}/landmarks/{{dataset}}/sub{{subject}}.tsv",
    log:
        f"{RES}/logs/detect_landmarks/{{dataset}}/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/detect_landmarks/{{dataset}}/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        root=dataset_key("root"),
        pattern=dataset_key("frame_pattern"),
        landmarks=config["landmarks"],
        frames=subject_frames,
    script:
        "../scripts/detect_landmarks.py"


rule spot_apex:
    input:
        samples=f"{RES}/samples/{{dataset}}.tsv",
        landmarks=f"{RES}/landmarks/{{dataset}}/sub{{subject}}.tsv",
        code=code("preprocess.apex", "datasets.frames", "preprocess.landmarks"),
    output:
        apex=f"{RES}/apex/{{dataset}}/sub{{subject}}.tsv",
        curves=f"{RES}/apex/{{dataset}}/sub{{subject}}_curves.tsv",
    log:
        f"{RES}/logs/spot_apex/{{dataset}}/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/spot_apex/{{dataset}}/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        root=dataset_key("root"),
        pattern=dataset_key("frame_pattern"),
        apex=config["apex"],
        landmarks=config["landmarks"],  # the face check at the apex detects with the same upsampling
        frames=subject_frames,
    script:
        "../scripts/spot_apex.py"


rule crop_faces:
    input:
        samples=f"{RES}/samples/{{dataset}}.tsv",
        landmarks=f"{RES}/landmarks/{{dataset}}/sub{{subject}}.tsv",
        apex=f"{RES}/apex/{{dataset}}/sub{{subject}}.tsv",
        code=code("preprocess.crops", "preprocess.align", "preprocess.apex"),
    output:
        f"{RES}/crops/{{dataset}}/sub{{subject}}.h5",
    log:
        f"{RES}/logs/crop_faces/{{dataset}}/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/crop_faces/{{dataset}}/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        root=dataset_key("root"),
        pattern=dataset_key("frame_pattern"),
        crop=config["crop"],
    script:
        "../scripts/crop_faces.py"


# Onset -> apex optical flow of the cached crops, for experiments with input: flow (only they ask for it).
# Its own file beside the crops: a changed `flow` setting reruns this and those experiments' training only.
rule compute_flow:
    input:
        crops=f"{RES}/crops/{{dataset}}/sub{{subject}}.h5",
        code=code("preprocess.flow"),
    output:
        f"{RES}/flow/{{dataset}}/sub{{subject}}.h5",
    log:
        f"{RES}/logs/compute_flow/{{dataset}}/sub{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/compute_flow/{{dataset}}/sub{{subject}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        flow=config["flow"],
    script:
        "../scripts/compute_flow.py"


rule report_preprocessing:
    input:
        samples=f"{RES}/samples/{{dataset}}.tsv",
        landmarks=per_subject(f"{RES}/landmarks/{{dataset}}/sub{{subject}}.tsv"),
        apex=per_subject(f"{RES}/apex/{{dataset}}/sub{{subject}}.tsv"),
        curves=per_subject(f"{RES}/apex/{{dataset}}/sub{{subject}}_curves.tsv"),
        crops=per_subject(f"{RES}/crops/{{dataset}}/sub{{subject}}.h5"),
        code=code("preprocess.report"),
    output:
        report=f"{RES}/preprocessing/{{dataset}}/report.md",
        errors=f"{RES}/preprocessing/{{dataset}}/apex_error.tsv",
        excluded=f"{RES}/preprocessing/{{dataset}}/excluded.tsv",
        curves=report(
            f"{RES}/preprocessing/{{dataset}}/apex_curves.png",
            caption="../report/apex_curves.rst",
            category="3. Preprocessing",
            subcategory="Apex and crops",
            labels={"figure": "apex spotting: M_i curves", "dataset": "{dataset}"},
        ),
        montage=report(
            f"{RES}/preprocessing/{{dataset}}/crops_montage.png",
            caption="../report/crops_montage.rst",
            category="3. Preprocessing",
            subcategory="Apex and crops",
            labels={"figure": "aligned apex crops per class", "dataset": "{dataset}"},
        ),
    log:
        f"{RES}/logs/report_preprocessing/{{dataset}}.log",
    benchmark:
        f"{RES}/benchmarks/report_preprocessing/{{dataset}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    params:
        task=montage_task,
        out=lambda wc, output: str(Path(output.report).parent),
    script:
        "../scripts/report_preprocessing.py"
