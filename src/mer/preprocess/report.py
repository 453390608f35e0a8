"""The preprocessing report: apex error against the sheet, M_i curves, crop montage, exclusions."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mer.io import atomic_path, write_text, write_tsv  # noqa: E402
from mer.preprocess.crops import read_cache  # noqa: E402

METHODS = {"spotted": "apex_spotted", "annotated": "apex_annotated", "mid": "mid"}


def apex_errors(apex):
    """Per method: clips with a sheet apex, MAE in frames, and the share within +-1, +-3, +-5 frames."""
    have = apex[apex.ok & apex.apex_sheet.notna()]
    rows = []
    for method, col in METHODS.items():
        err = (have[col].astype(float) - have.apex_sheet.astype(float)).abs()
        rows.append({"method": method, "clips": len(err), "mae_frames": err.mean(),
                     **{f"within_{k}": (err <= k).mean() for k in (1, 3, 5)}})
    return pd.DataFrame(rows)


def exclusions(samples, landmarks, apex):
    """Every excluded clip with the stage that dropped it and why."""
    rows = [{"stage": "read_sheet", "subject": r.subject, "filename": r.filename, "reason": r.reason}
            for r in samples[~samples.included].itertuples()]
    rows += [{"stage": "spot_apex", "subject": r.subject, "filename": r.filename, "reason": r.reason}
             for r in apex[~apex.ok].itertuples()]
    lm_bad = landmarks[~landmarks.ok]
    rows += [{"stage": "detect_landmarks (frame)", "subject": r.subject, "filename": r.filename,
              "reason": r.reason} for r in lm_bad.itertuples()
             if not ((apex.filename == r.filename) & (apex.subject == r.subject) & ~apex.ok).any()]
    return pd.DataFrame(rows, columns=["stage", "subject", "filename", "reason"])


def plot_curves(curves, apex, out, n=6):
    ok = apex[apex.ok].head(n)
    fig, axes = plt.subplots(len(ok), 1, figsize=(7, 1.8 * max(1, len(ok))), squeeze=False)
    for ax, r in zip(axes[:, 0], ok.itertuples(), strict=False):
        key = "clip" if "clip" in curves and "clip" in apex else "filename"
        c = curves[(curves.subject == r.subject) & (curves[key] == getattr(r, key))]
        ax.plot(c.frame, c.m, lw=1.2, color="k")
        ax.axvline(r.apex_spotted, color="tab:red", ls="-", label="spotted apex")
        if not pd.isna(r.apex_sheet):
            ax.axvline(r.apex_sheet, color="tab:blue", ls="--", label="sheet apex")
        ax.set_ylabel("M_i")
        ax.set_title(f"sub{r.subject} {r.filename}", fontsize=8, loc="left")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    _save(fig, out)


def plot_montage(cache_paths, task, out, per_class=6):
    by_class = {}
    for p in cache_paths:
        images, attrs = read_cache(p, "apex")
        for img, lab in zip(images, attrs.get(f"label_{task}", []), strict=False):
            if lab and len(by_class.setdefault(lab, [])) < per_class:
                by_class[lab].append(img)
    classes = sorted(by_class)
    fig, axes = plt.subplots(max(1, len(classes)), per_class, figsize=(1.5 * per_class, 1.6 * max(1, len(classes))),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, cls in enumerate(classes):
        for j, img in enumerate(by_class[cls]):
            axes[i, j].imshow(img)
        axes[i, 0].set_title(cls, fontsize=8, loc="left")
    fig.tight_layout()
    _save(fig, out)


def _save(fig, out):
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _concat(paths):
    return pd.concat([pd.read_csv(p, sep="\t", dtype={"subject": str}) for p in paths], ignore_index=True)


def report(samples_tsv, landmark_tsvs, apex_tsvs, curve_tsvs, cache_paths, task, out_dir):
    out_dir = Path(out_dir)
    samples = pd.read_csv(samples_tsv, sep="\t", dtype={"subject": str})
    landmarks, apex, curves = _concat(landmark_tsvs), _concat(apex_tsvs), _concat(curve_tsvs)
    errors = apex_errors(apex)
    excluded = exclusions(samples, landmarks, apex)
    write_tsv(errors, out_dir / "apex_error.tsv")
    write_tsv(excluded, out_dir / "excluded.tsv")
    plot_curves(curves, apex, out_dir / "apex_curves.png")
    plot_montage(cache_paths, task, out_dir / "crops_montage.png")
    n_task = int((samples.included & samples[f"label_{task}"].fillna("").ne("")).sum())
    lines = [
        "# Preprocessing report", "",
        f"- sheet rows: {len(samples)}; included after sheet and frame checks: {int(samples.included.sum())}",
        f"- clips spotted and cropped: {int(apex.ok.sum())}; excluded in all: {len(excluded)} "
        "(see `excluded.tsv`)",
        f"- samples with a `{task}` label: {n_task}",
        f"- subjects: {samples[samples.included].subject.nunique()}", "",
        "## Apex error against the sheet apex (frames)", "",
        errors.to_markdown(index=False, floatfmt=".3f"),
        "", "![M_i curves](apex_curves.png)", "", "![aligned apex crops](crops_montage.png)", "",
    ]
    write_text("\n".join(lines), out_dir / "report.md")
    print(errors.to_string(index=False))
    return errors

