from mer.io import log_to
from mer.preprocess.landmarks import detect_subject

log_to(snakemake.log[0])
p = snakemake.params.landmarks
detect_subject(snakemake.input.samples, snakemake.wildcards.subject, snakemake.params.root,
               snakemake.params.pattern, snakemake.output[0], per_frame=p["per_frame"], model_file=p["model"],
               upsample=p["upsample"])
