from mer.datasets.sheet import write_samples
from mer.io import log_to

log_to(snakemake.log[0])
d = snakemake.params.data
write_samples(snakemake.input.sheet, snakemake.params.root, d["frame_pattern"], snakemake.output.samples,
              tasks=snakemake.params.tasks, emotions=snakemake.params.emotions, bad_rows=d["bad_rows"],
              subject_width=d["subject_width"], threads=snakemake.threads)
