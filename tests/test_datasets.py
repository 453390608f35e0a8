"""Dataset entries (mer.datasets.catalog) read the field's real sheets with the counts their shared READMEs give."""

from pathlib import Path

import cv2
import pandas as pd
import pytest

from mer.datasets.catalog import (
    BUILTIN,
    configured,
    entry,
    fold_id,
    megc2019_clips,
    read_clips,
    split_fold,
    task_classes,
    write_dataset_samples,
)
from mer.datasets.sheet import SheetError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
shared = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not beside the repo")


def labelled(clips, task):
    return clips[clips.included & clips[f"label_{task}"].fillna("").ne("")]


@shared
def test_casme2_both_releases():
    old = read_clips("casme2", root=DATA / "casme2")
    new = read_clips("casme2_2019", root=DATA / "casme2")
    assert len(old) == len(new) == 255 and old.included.all() and old.subject.nunique() == 26
    assert len(labelled(old, "5class")) == 246 and len(labelled(new, "5class")) == 249
    assert len(labelled(old, "3class")) == len(labelled(new, "3class")) == 156
    assert (old.dataset == "casme2").all() and old["clip"].equals(old.filename)


@shared
def test_samm_header_below_notes():
    clips = read_clips("samm", root=DATA / "samm")
    assert len(clips) == 159 and clips.included.all(), clips.reason[~clips.included].tolist()
    # two apex cells outside their clip: kept (the composite has both clips), apex to be spotted
    odd = clips[clips.note != ""]
    assert odd.filename.tolist() == ["028_4_1", "032_3_1"] and odd.apex.isna().all() and odd.apex_missing.all()
    assert "line 140" in odd.note.iloc[0] and "ApexFrame 1143 outside onset..offset 1071..1134" in odd.note.iloc[0]
    assert clips.subject.nunique() == 29 and clips.subject.str.fullmatch(r"\d{3}").all()
    first = clips.iloc[0]
    got = (first.subject, first.filename, first.onset, first.apex, first.offset)
    assert got == ("006", "006_1_2", 5562, 5588, 5632)
    assert entry("samm")["grayscale"] and clips.emotion.value_counts()["anger"] == 57
    assert len(labelled(clips, "megc2019")) == 133  # Other (26) is left out


@shared
def test_casme3_clips_sharing_a_filename_stay_apart():
    clips = read_clips("casme3_a", root=DATA / "casme3")
    assert len(clips) == 687 and clips.included.all(), clips.reason[~clips.included].tolist()[:3]
    assert clips.subject.nunique() == 87
    assert not clips.duplicated(["subject", "clip"]).any()  # none merged
    assert (clips.note != "").sum() == 1  # spNO.149 d: apex 83 before onset 112, to be spotted
    assert clips.duplicated(["subject", "filename"]).sum() == 309
    raw = pd.read_csv(DATA / "casme3" / "casme3_partA_labels.csv")
    codes = clips.label_3class.map({"negative": 0, "positive": 1, "surprise": 2})
    assert (codes.values == raw.label_for_3.values).all()


def smic_folders(root, clips):
    """SMIC-HS's layout with empty frame files (no image is needed to list clips)."""
    for subject, emotion, filename, first, last in clips:
        folder = root / f"s{subject}" / "micro" / emotion / filename
        folder.mkdir(parents=True)
        for f in range(first, last + 1):
            (folder / f"image{f}.bmp").touch()


@shared
def test_megc2019_composite_mapping_reproduces_the_shared_list(tmp_path):
    composite = pd.read_csv(DATA / "megc2019" / "composite_3class.csv", dtype={"sub": str})
    smic = composite[composite.dataset == "smic"]
    names = {0: "negative", 1: "positive", 2: "surprise"}
    smic_folders(tmp_path, [(int(r.sub[1:]), names[r.label], r.filename_o.replace(r.sub, f"s{int(r.sub[1:])}"),
                             100 + i, 110 + i) for i, r in enumerate(smic.itertuples())])
    tables = [read_clips("casme2", root=DATA / "casme2"), read_clips("samm", root=DATA / "samm"),
              read_clips("smic_hs", root=tmp_path)]
    mine = megc2019_clips(tables)
    key = ["dataset", "sub", "filename_o"]
    assert mine.groupby("dataset").size().to_dict() == {"casme2": 145, "samm": 133, "smic": 164}
    merged = composite.merge(mine, on=key, how="outer", suffixes=("", "_mine"), indicator=True)
    assert (merged._merge == "both").all(), merged[merged._merge != "both"][key + ["_merge"]]
    assert (merged.label == merged.label_mine).all()
    assert mine["sub"].nunique() == 68


@shared
def test_smic_hs_e_sheet_with_its_own_column_names():
    clips = read_clips("smic_hs_e", sheet=DATA / "smic" / "SMIC-HS-E_annotation.xlsx", overrides=dict(
        columns={"onset": "OnsetF", "offset": "OffsetF"}, subject_width=2,
        emotions=["negative", "positive", "surprise"],
        tasks={"megc2019": {c: [c] for c in ("negative", "positive", "surprise")}}))
    assert len(clips) == 157 and clips.subject.nunique() == 16 and clips.apex_missing.all()
    assert labelled(clips, "megc2019").label_megc2019.value_counts().to_dict() == {"negative": 66, "positive": 51,
                                                                                     "surprise": 40}


def write(path, text):
    path.write_text(text)
    return path


def test_bad_input_per_dataset(tmp_path):
    # SAMM without its header row among the notes
    notes = "Please cite\nsymbols\n"
    bad = write(tmp_path / "samm.csv", notes + "006,006_1_2,1,5562,5588,5632,71,Micro,4,Anger\n")
    with pytest.raises(SheetError, match="lacks column"):
        read_clips("samm", sheet=bad)
    header = ("Subject,Filename,Inducement Code,Onset Frame,Apex Frame,Offset Frame,Duration,Micro,"
              "Action Units,Estimated Emotion\n")
    rows = ["006,006_1_2,1,5562,5588,5632,71,Micro,4,Anger",
            "006,006_1_2,1,5562,5588,5632,71,Micro,4,Anger",  # duplicate clip
            "007,007_1_1,1,10,12,20,11,Micro,4,Joyful",  # unknown emotion
            "6a,006_2_1,1,10,12,20,11,Micro,4,Anger",  # subject in the wrong format
            "1234,1234_1,1,10,12,20,11,Micro,4,Anger"]  # four digits where SAMM has three
    clips = read_clips("samm", sheet=write(tmp_path / "samm2.csv", notes + header + "\n".join(rows) + "\n"))
    assert clips.included.tolist() == [True, False, False, False, False]
    reasons = clips.reason.tolist()
    assert "line 5" in reasons[1] and "duplicate of sheet line 4" in reasons[1]
    assert "line 6" in reasons[2] and "unknown label 'Joyful'" in reasons[2]
    assert "line 7" in reasons[3] and "'6a' is not a subject number" in reasons[3]
    assert "line 8" in reasons[4] and "not a subject id of the form" in reasons[4]
    # CAS(ME)^3: a text subject id in the wrong form; the same filename twice at different onsets is fine
    c3 = write(tmp_path / "c3.csv", "Subject,Filename,Onset,Apex,Offset,AU,emotion\n"
               "spNO.1,b,166,175,179,4,disgust\nspNO.1,b,200,205,210,4,disgust\nsp1,b,1,2,3,4,disgust\n")
    clips = read_clips("casme3_a", sheet=c3)
    assert clips.included.tolist() == [True, True, False] and clips["clip"].tolist()[:2] == ["b@166", "b@200"]
    assert "'sp1' is not a subject id of the form" in clips.reason.iloc[2]
    # SMIC-HS: an unknown class folder, and gaps in a clip's frames
    smic_folders(tmp_path / "smic", [(1, "negative", "s1_ne_01", 1, 5), (1, "happy", "s1_po_01", 1, 3)])
    (tmp_path / "smic/s1/micro/negative/s1_ne_01/image3.bmp").unlink()
    clips = read_clips("smic_hs", root=tmp_path / "smic").set_index("filename")
    assert "gaps" in clips.reason["s1_ne_01"] and "class folder 'happy'" in clips.reason["s1_po_01"]
    assert not clips.included.any()


def test_unknown_dataset_and_config_entries():
    with pytest.raises(KeyError, match="unknown dataset 'mmew'"):
        entry("mmew")
    mine = entry("mmew", dict(sheet="MMEW.xlsx", frame_pattern="{subject}/{filename}/{frame}.jpg"))
    assert mine["clip_key"] == ["subject", "filename"] and mine["header_row"] == "auto"
    assert set(BUILTIN) == {"casme2", "casme2_2019", "samm", "smic_hs", "casme3_a"}


def test_casme2_entry_matches_the_workflow_defaults():
    """The workflow reads CASME II with the schema's default tasks and emotions; the dataset entry must not
    drift from them until the workflow takes its defaults from mer.datasets.catalog."""
    import yaml

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    for name in ("casme2", "casme2_2019"):
        e = entry(name)
        assert {t: e["tasks"][t] for t in ("5class", "3class")} == schema["properties"]["tasks"]["default"]
        assert e["emotions"] == schema["properties"]["emotions"]["default"]
        assert e["frame_pattern"] == schema["properties"]["data"]["properties"]["frame_pattern"]["default"]


MEGC = ["negative", "positive", "surprise"]


def workflow_config(**changes):
    """A config as the workflow sees it after schema defaults (the keys mer.datasets.catalog.configured reads)."""
    cfg = {"dataset": "demo", "datasets": {}, "demo": {"enabled": True, "datasets": []},
           "data": {"root": "", "sheet": "", "frame_pattern": "sub{subject}/{filename}/img{frame}.jpg",
                    "subject_width": 2, "bad_rows": "exclude"},
           "tasks": {"5class": {"happiness": ["happiness"]}}, "emotions": ["happiness"]}
    for key, value in changes.items():
        cfg[key] = {**cfg[key], **value} if isinstance(cfg[key], dict) else value
    return cfg


def test_configured_datasets():
    # the demo: one CASME II-shaped dataset, or each named layout in its own folder
    assert list(configured(workflow_config(), "res/demo")) == ["demo"]
    demo = configured(workflow_config(), "res/demo")["demo"]
    assert (demo["root"], demo["sheet"]) == ("res/demo/frames", "res/demo/coding.csv")
    three = configured(workflow_config(demo={"datasets": ["casme2", "samm", "smic_hs"]}), "res/demo")
    assert list(three) == ["casme2", "samm", "smic_hs"] and three["smic_hs"]["sheet"] is None
    assert three["samm"]["root"] == "res/demo/samm/frames" and three["samm"]["tasks"] == BUILTIN["samm"]["tasks"]
    # `data` alone: one dataset named by `dataset`, with config's tasks
    legacy = configured(workflow_config(dataset="casme2", data={"root": "/d", "sheet": "/d/s.xlsx"}))
    assert list(legacy) == ["casme2"] and legacy["casme2"]["tasks"] == {"5class": {"happiness": ["happiness"]}}
    # `datasets`: a built-in's sheet defaults to its file name below the root; overrides win
    given = configured(workflow_config(datasets={"samm": {"root": "/s"}, "casme2": {"root": "/c", "sheet": "/x.csv"},
                                                 "smic_hs": {"root": "/m"}}))
    assert given["samm"]["sheet"] == "/s/SAMM_Micro_FACS_Codes_v2.xlsx" and given["casme2"]["sheet"] == "/x.csv"
    assert given["smic_hs"]["sheet"] is None and given["samm"]["frame_pattern"] == BUILTIN["samm"]["frame_pattern"]
    # a dataset mer does not know, by config alone
    mine = configured(workflow_config(datasets={"mmew": {
        "root": "/m", "sheet": "/m/labels.csv", "frame_pattern": "{subject}/{filename}/{frame}.jpg",
        "subject_width": None, "subject_regex": r"S\d{2}", "columns": {"emotion": "Estimated Emotion"},
        "tasks": {"megc2019": {"negative": ["disgust"], "positive": ["happiness"], "surprise": ["surprise"]}}}}))
    assert mine["mmew"]["sheet"] == "/m/labels.csv" and mine["mmew"]["columns"] == {"emotion": "Estimated Emotion"}
    assert mine["mmew"]["header_row"] == "auto" and task_classes(mine, "megc2019") == MEGC
    with pytest.raises(ValueError, match="datasets.mmew: not a built-in dataset"):
        configured(workflow_config(datasets={"mmew": {"root": "/m", "sheet": "/m.xlsx"}}))
    with pytest.raises(ValueError, match="name 'SAMM-2' must be"):
        configured(workflow_config(datasets={"SAMM-2": {"root": "/m"}}))
    with pytest.raises(ValueError, match="datasets.samm.root is empty"):
        configured(workflow_config(datasets={"samm": {}}))


def test_task_classes_and_fold_ids():
    e = {n: entry(n) for n in ("casme2", "samm", "smic_hs")}
    assert task_classes(e, "megc2019") == ["negative", "positive", "surprise"]
    with pytest.raises(ValueError, match="defined by none"):
        task_classes(e, "7class")
    odd = {**e, "mine": entry("mine", {"tasks": {"megc2019": {"neg": ["x"], "pos": ["y"]}}})}
    with pytest.raises(ValueError, match="dataset mine has classes"):
        task_classes(odd, "megc2019")
    assert fold_id("casme3_a", "spNO.1") == "casme3_a-spNO.1"
    assert split_fold("casme3_a-spNO.1") == ("casme3_a", "spNO.1")
    assert split_fold("01") == ("", "01")


def test_generated_layouts_read_back_by_the_builtin_entries(tmp_path):
    """The demo in SAMM's and SMIC's layouts: the built-in entries read them (SAMM's sheet below notes, grey
    JPEGs with absolute 5-digit frame numbers; SMIC's classes from folders), and every frame is checked."""
    from mer.demo import make_demo

    for layout in ("samm", "smic_hs"):
        make_demo(tmp_path / layout, subjects=2, clips_per_subject=3, seed=0, layout=layout, workers=1)
    samm = write_dataset_samples("samm", entry("samm", {"root": str(tmp_path / "samm/frames"),
                                                        "sheet": str(tmp_path / "samm/coding.csv")}),
                                 tmp_path / "samm.tsv")
    assert samm.included.all() and samm.subject.tolist() == ["006"] * 3 + ["007"] * 3
    assert (samm.onset >= 4000).all() and sorted(samm.label_megc2019[:3]) == ["negative", "positive", "surprise"]
    first = samm.iloc[0]
    grey = cv2.imread(str(tmp_path / "samm/frames/006" / first.filename / f"006_{first.onset:05d}.jpg"),
                      cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2  # SAMM's frames are grey
    smic = write_dataset_samples("smic_hs", entry("smic_hs", {"root": str(tmp_path / "smic_hs/frames")}),
                                 tmp_path / "smic.tsv")
    assert smic.included.all() and smic.apex.isna().all() and sorted(smic.subject.unique()) == ["1", "2"]
    assert (smic.label_megc2019 == smic.emotion).all() and (pd.read_csv(tmp_path / "smic.tsv", sep="\t")
                                                            .dataset == "smic_hs").all()
    # a frame gone: its clip is excluded with the reason, naming the frame
    gone = tmp_path / "smic_hs/frames/s1/micro" / smic.emotion[0] / smic.filename[0] / f"image{smic.onset[0] + 1}.bmp"
    gone.unlink()
    again = write_dataset_samples("smic_hs", entry("smic_hs", {"root": str(tmp_path / "smic_hs/frames")}),
                                  tmp_path / "smic2.tsv")
    assert not again.included[0] and "gaps" in again.reason[0] and again.included[1:].all()


@shared
def test_composite_mirror_reads_back_as_the_composite_list(tmp_path):
    """`mer demo --mirror composite_3class.csv` names each dataset's clips its own way; the built-in entries read
    them back into the composite list's names and labels (a few clips of each dataset, SMIC's s01_ne_02 among them)."""
    from mer.cli import main

    composite = pd.read_csv(DATA / "megc2019" / "composite_3class.csv", dtype=str)
    few = pd.concat([g.head(3) for _, g in composite.groupby("dataset")] +
                    [composite[composite.filename_o == "s01_ne_02"]]).drop_duplicates()
    few.to_csv(tmp_path / "few.csv", index=False)
    assert main(["demo", "--out", str(tmp_path / "out"), "--mirror", str(tmp_path / "few.csv"), "--workers", "1"]) == 0
    tables = [read_clips(n, root=tmp_path / "out" / n / "frames",
                         sheet=None if n == "smic_hs" else tmp_path / "out" / n / "coding.csv")
              for n in ("casme2", "samm", "smic_hs")]
    mine = megc2019_clips(tables).astype(str)
    key = ["dataset", "sub", "filename_o", "label"]
    assert mine[key].sort_values(key).values.tolist() == few[key].sort_values(key).values.tolist()


@shared
def test_samm_mirror_rows_are_the_sheets():
    from mer.demo.sheets import mirrored_rows

    rows = pd.DataFrame(mirrored_rows(DATA / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx", "samm"))
    sheet = read_clips("samm", root=DATA / "samm")
    assert len(rows) == 159 and rows.subject.tolist() == sheet.subject.tolist()
    assert rows.onset.tolist() == sheet.onset.tolist() and rows.emotion.tolist() == sheet.emotion.str.lower().tolist()
    # the two apexes outside their clips are written as the sheet has them, the motion peaks inside
    odd = rows[rows.filename.isin(["028_4_1", "032_3_1"])]
    assert odd.apex_text.tolist() == ["1143", "1930"] and odd.apex.between(odd.onset, odd.offset).all()


def test_layout_fingerprint_stands_for_the_clip_list(tmp_path):
    from mer.datasets.catalog import layout_fingerprint

    layout = BUILTIN["smic_hs"]["layout"]
    smic_folders(tmp_path, [(1, "negative", "s1_ne_01", 1, 5)])
    before = layout_fingerprint(tmp_path, layout)
    assert layout_fingerprint(tmp_path, layout) == before  # the same folders: the same value
    smic_folders(tmp_path, [(2, "surprise", "s2_sur_01", 1, 3)])
    assert layout_fingerprint(tmp_path, layout) != before  # a new clip reruns read_sheet
