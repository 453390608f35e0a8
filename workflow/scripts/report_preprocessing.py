from mer.io import log_to
from mer.preprocess.report import report

log_to(snakemake.log[0])
i = snakemake.input
report(i.samples, i.landmarks, i.apex, i.curves, i.crops, snakemake.params.task, snakemake.params.out)
