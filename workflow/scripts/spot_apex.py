from mer.io import log_to
from mer.preprocess.apex import spot_subject

log_to(snakemake.log[0])
p, lm = snakemake.params.apex, snakemake.params.landmarks
spot_subject(snakemake.input.samples, snakemake.input.landmarks, snakemake.wildcards.subject,
             snakemake.params.root, snakemake.params.pattern, snakemake.output.apex, snakemake.output.curves,
             eps=p["eps"], use_offset=p["use_offset"], region_scale=p["region_scale"], threads=snakemake.threads,
             max_face_shift=p["max_face_shift"], reduce=p["reduce"], upsample=lm["upsample"])
