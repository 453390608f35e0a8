"""A generated dataset shaped like CASME II, for users without the licensed data.

Every subject is the public-domain astronaut portrait shipped with scikit-image (`skimage.data.astronaut`),
warped into its own identity (size, face shape, tilt, position, skin tone, lighting) and placed on a grey
background in a 640x480 frame. Each clip is that neutral face deformed by an emotion-specific, AU-like
local motion (displacement field at landmark groups, Gaussian falloff) that rises from 0 at onset to its
peak at the true apex and falls back to 0 at offset, plus slight head jitter and sensor noise.

Layout written (as CASME II's raw release): out/frames/sub01/EP02_01f/img46.jpg, and out/coding.csv
with CASME II's header. The Apex column holds the true apex frame. The same faces in the layouts of the
other composite datasets (`layout`): SAMM's (grey JPEGs 006/006_1_2/006_05562.jpg with absolute frame
numbers, and a sheet with notes above SAMM's header) and SMIC-HS's (s1/micro/negative/s1_ne_01/image1.bmp,
no sheet: the class is the folder; out/coding.csv then only records what was drawn).
"""

import multiprocessing
from pathlib import Path

import cv2

from mer.demo.render import DEFAULT_AMPLITUDE, au_plan, au_text, base_face, render_clip, stream
from mer.demo.sheets import (
    LAYOUTS,
    composite_rows,
    generated_rows,
    is_composite,
    mirrored_rows,
    shuffled_labels,
    write_sheet,
)


def make_demo(out, subjects=6, clips_per_subject=10, amplitude=None, mirror=None, seed=0,
              shuffle_labels=False, workers=2, layout="casme2"):
    """Render the demo dataset into `out` and return the path of its coding sheet (out/coding.csv).

    amplitude: peak AU displacement in frame px (None: DEFAULT_AMPLITUDE; 0: no expression motion).
    mirror: a coding sheet whose rows (subjects, filenames, frames, emotions, AU text) are reproduced: CASME
    II's or SAMM's (layout samm), or the MEGC 2019 composite list (the layout's dataset's clips in it).
    layout: whose folders and sheet to imitate (LAYOUTS: casme2, samm, smic_hs).
    shuffle_labels: permute the written emotions within each subject (labels carry no signal).
    The output is byte-identical for the same arguments, whatever the number of workers.
    """
    out = Path(out)
    amplitude = DEFAULT_AMPLITUDE if amplitude is None else float(amplitude)
    if amplitude < 0:
        raise ValueError(f"amplitude must be >= 0 px, got {amplitude}")
    if layout not in LAYOUTS:
        raise ValueError(f"demo layout {layout!r}: known {sorted(LAYOUTS)}")
    if mirror and is_composite(mirror):
        rows = composite_rows(mirror, layout, seed)
    elif mirror:
        rows = mirrored_rows(mirror, layout)
    else:
        rows = generated_rows(subjects, clips_per_subject, seed, layout)
    jobs = []
    for r in rows:
        plan = au_plan(r["emotion"].lower(), stream(seed, r["subject_num"], 4, r["k"]))
        if r["au_text"] is None:
            r["au_text"] = au_text(plan)
        jobs.append({**r, "plan": plan, "seed": seed, "amplitude": amplitude, "out": str(out), "layout": layout})
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        base_face()  # load dlib once before forking
        if workers > 1 and len(jobs) > 1:
            # fork, not spawn: spawn re-runs the caller's main module (a Snakemake script) in every child.
            # A forked child hangs in OpenCV's thread pool if the parent used it, so each process renders
            # with one OpenCV thread (set here) and the parallelism comes from the processes.
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                list(pool.imap(render_clip, jobs, chunksize=1))
        else:
            for job in jobs:
                render_clip(job)
    finally:
        cv2.setNumThreads(threads)
    if shuffle_labels:
        rows = shuffled_labels(rows, seed)
    return write_sheet(rows, out / "coding.csv", layout)
