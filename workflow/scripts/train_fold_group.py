from mer.io import log_to
from mer.train.gpu import acquire_slot, device_for_slot, slot_dir
from mer.train.groups import input_key, run_member

log_to(snakemake.log[0])
p, out_dir = snakemake.params, snakemake.output.model.rsplit("/", 1)[0]
key = input_key(p.experiment, p.members, [*snakemake.input.caches, *snakemake.input.code])
with acquire_slot(slot_dir(p.lock_dir), p.slots) as slot:
    device = device_for_slot(slot)
    print(f"GPU slot {slot} of {p.slots} -> device {device}; fold group {p.members}, store {p.store}")
    how = run_member(snakemake.input.caches, p.member, p.members, p.experiment, p.store,
                     out_dir, key, device=device, threads=snakemake.threads)
    print(f"fold {p.member}: {how} (from {p.store})")
