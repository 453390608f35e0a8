import multiprocessing as mp
import time

import pytest

from mer.train.gpu import acquire_slot, device_for_slot, slot_dir


def _hold(lock_dir, n_slots, hold_s, queue):
    with acquire_slot(lock_dir, n_slots, poll=0.05) as k:
        t0 = time.monotonic()
        time.sleep(hold_s)
        t1 = time.monotonic()
    queue.put((k, t0, t1))


def _hold_forever(lock_dir, ready):
    with acquire_slot(lock_dir, 1, poll=0.05):
        ready.set()
        time.sleep(600)


def test_concurrent_processes_never_share_a_slot(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(tmp_path, 2, 0.6, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    spans = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert {k for k, _, _ in spans} <= {0, 1}
    for a in spans:  # two holders of one slot never overlap in time
        for b in spans:
            if a is not b and a[0] == b[0]:
                assert a[2] <= b[1] or b[2] <= a[1]
    for _, t, _ in spans:  # at most two slots held at any moment
        assert sum(s <= t < e for _, s, e in spans) <= 2
    # four jobs on two slots: the last ones had to wait
    assert max(e for _, _, e in spans) - min(s for _, s, _ in spans) >= 2 * 0.6 - 0.05


def test_killed_holder_frees_its_slot(tmp_path):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_forever, args=(tmp_path, ready))
    p.start()
    assert ready.wait(60)
    with pytest.raises(TimeoutError):
        with acquire_slot(tmp_path, 1, poll=0.05, timeout=0.3):
            pass
    p.kill()
    p.join(30)
    with acquire_slot(tmp_path, 1, poll=0.05, timeout=5) as k:
        assert k == 0


def test_slot_released_after_block_and_on_error(tmp_path):
    with acquire_slot(tmp_path, 2) as a:
        with acquire_slot(tmp_path, 2) as b:  # a second open file in the same process also excludes
            assert {a, b} == {0, 1}
    with pytest.raises(RuntimeError):
        with acquire_slot(tmp_path, 1):
            raise RuntimeError("job failed")
    with acquire_slot(tmp_path, 1, timeout=1) as k:
        assert k == 0


def test_device_for_slot_round_robin():
    assert [device_for_slot(k, 2) for k in range(5)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert device_for_slot(3, 1) == "cuda:0"
    assert device_for_slot(3, 0) == "cpu"


def test_slot_dir_is_private_to_a_slurm_job(tmp_path):
    assert slot_dir(tmp_path, environ={}) == tmp_path  # local runs share the workflow's pool
    a, b = slot_dir(tmp_path, {"SLURM_JOB_ID": "7"}), slot_dir(tmp_path, {"SLURM_JOB_ID": "8"})
    assert a != b and a != tmp_path and "7" in a.name  # two fold jobs on one node never share locks
    with acquire_slot(a, 1) as k1, acquire_slot(b, 1) as k2:
        assert k1 == k2 == 0
