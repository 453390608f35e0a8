from mer.io import log_to
from mer.preprocess.crops import crop_subject

log_to(snakemake.log[0])
p = snakemake.params.crop
crop_subject(snakemake.input.samples, snakemake.input.landmarks, snakemake.input.apex,
             snakemake.wildcards.subject, snakemake.params.root, snakemake.params.pattern, snakemake.output[0],
             size=p["size"], align=p["align"], dataset=snakemake.wildcards.dataset)
