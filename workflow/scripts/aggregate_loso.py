from pathlib import Path

from mer.aggregate import aggregate
from mer.io import log_to

log_to(snakemake.log[0])
exp = snakemake.params.experiment
aggregate([Path(p).parent for p in snakemake.input.predictions], exp["classes"], snakemake.params.out, exp)
