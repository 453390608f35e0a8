from mer.io import log_to
from mer.train.gpu import acquire_slot, device_for_slot, slot_dir
from mer.train.loop import train_fold

log_to(snakemake.log[0])
out_dir = snakemake.output.model.rsplit("/", 1)[0]
with acquire_slot(slot_dir(snakemake.params.lock_dir), snakemake.params.slots) as slot:
    device = device_for_slot(slot)
    print(f"GPU slot {slot} of {snakemake.params.slots} -> device {device}")
    train_fold(snakemake.input.caches, snakemake.wildcards.fold, snakemake.params.experiment, out_dir,
               device=device, threads=snakemake.threads)
