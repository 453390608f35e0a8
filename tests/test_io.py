import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mer.io import atomic_path, read_rows, write_rows, write_text, write_tsv


def test_atomic_write_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o027)
    try:
        write_text("x\n", tmp_path / "a.txt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640  # group-readable, as umask 027 says


def test_failed_block_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # neither b.txt nor the temporary .part file


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.pt"
    stale = tmp_path / ".checkpoint.pt.k1ll3d_x.part"  # as mkstemp names it; its writer was SIGKILLed
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".checkpoint.pt.other.tsv.abcdefgh.part"  # another output's temp: kept
    other.write_bytes(b"x")
    write_text("done", target)
    assert target.read_text() == "done" and not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "checkpoint.pt"]


def test_rows_are_written_as_pandas_writes_the_same_table_and_read_back_as_strings(tmp_path):
    rows = [{"subject": "01", "frame": 46, "ok": True, "x": np.float32(259.0), "m": 0.1 + 0.2,
             "shift": float("nan"), "apex": None, "reason": 'a "quoted"\ttab'},
            {"subject": "02", "frame": np.int64(7), "ok": np.False_, "x": np.float32(1 / 3), "m": 1e-20,
             "shift": np.float64(0.25), "reason": ""}]  # the second row has no apex key at all
    columns = ["subject", "frame", "ok", "x", "m", "shift", "apex", "reason"]
    table = pd.DataFrame(rows, columns=columns).astype({"apex": "Int64", "x": "float32"})
    write_tsv(table, tmp_path / "pandas.tsv")
    write_rows(rows, columns, tmp_path / "rows.tsv")
    assert (tmp_path / "rows.tsv").read_bytes() == (tmp_path / "pandas.tsv").read_bytes()
    back = read_rows(tmp_path / "rows.tsv")
    assert back[0] == {"subject": "01", "frame": "46", "ok": "True", "x": "259.0", "m": "0.30000000000000004",
                       "shift": "", "apex": "", "reason": 'a "quoted"\ttab'}
    assert back[1]["ok"] == "False" and back[1]["x"] == "0.33333334" and back[1]["shift"] == "0.25"


def test_the_per_subject_preprocessing_jobs_do_not_import_pandas():
    """78 jobs on CASME II: pandas' import would cost each 0.33 s of CPU."""
    code = ("import sys, mer.io, mer.preprocess.landmarks, mer.preprocess.apex, mer.preprocess.crops; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'scipy', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
