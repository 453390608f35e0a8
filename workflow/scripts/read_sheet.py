from mer.datasets.catalog import write_dataset_samples
from mer.io import log_to

log_to(snakemake.log[0])
write_dataset_samples(snakemake.wildcards.dataset, snakemake.params.entry, snakemake.output.samples)
