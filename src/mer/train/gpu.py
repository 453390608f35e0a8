"""A pool of GPU slots shared by concurrent processes (Snakemake jobs), one lock file per slot.

Several training jobs can share one GPU (a fold at batch 2 uses a fraction of it), so a machine has
n_slots >= n_devices slots and slot k runs on GPU k % n_devices. A slot is held by an exclusive
fcntl.flock on lock_dir/slot{k}.lock; the kernel drops the lock when its process exits or is killed,
so a crashed job never leaves a slot taken. (flock needs a local filesystem, not NFS.)

Inside a SLURM job the scheduler has already given the job its GPUs (CUDA_VISIBLE_DEVICES), so the pool
is private to that job (see slot_dir): fold jobs on a cluster never wait on each other's locks.
"""

import contextlib
import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path


def slot_dir(lock_dir, environ=None):
    """Where the slot locks live: lock_dir, or inside a SLURM job a node-local folder of that job alone."""
    environ = os.environ if environ is None else environ
    job = environ.get("SLURM_JOB_ID")
    return Path(tempfile.gettempdir()) / f"mer-gpu-slots-slurm{job}" if job else Path(lock_dir)


@contextlib.contextmanager
def acquire_slot(lock_dir, n_slots, poll=1.0, timeout=None):
    """Hold the first free slot of 0..n_slots-1 for the duration of the block; yield its number.

    When every slot is taken, retry every `poll` seconds until one frees, or raise TimeoutError after
    `timeout` seconds (None: wait for ever).
    """
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, not {n_slots}")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    waited, t0 = False, time.monotonic()
    while True:
        for k in range(n_slots):
            f = open(lock_dir / f"slot{k}.lock", "a+")  # closed below, or after the block
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            try:
                f.truncate(0)
                f.write(f"{os.getpid()}\n")  # who holds it, for a human looking at the folder
                f.flush()
                yield k
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
            return
        if timeout is not None and time.monotonic() - t0 >= timeout:
            raise TimeoutError(f"no free slot among {n_slots} in {lock_dir} after {timeout} s")
        if not waited:
            print(f"all {n_slots} GPU slots in {lock_dir} are taken; waiting", file=sys.stderr, flush=True)
            waited = True
        time.sleep(poll)


def device_for_slot(k, n_devices=None):
    """'cuda:{k % n_devices}' (slots round-robin over GPUs), or 'cpu' with no GPU.

    n_devices: number of GPUs; None asks torch.
    """
    if n_devices is None:
        import torch

        n_devices = torch.cuda.device_count()
    return f"cuda:{k % n_devices}" if n_devices > 0 else "cpu"
