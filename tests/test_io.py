import os

import pytest

from mer.io import atomic_path, write_text


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
