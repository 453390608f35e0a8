from pathlib import Path

from mer.evaluate.pooling import aggregate_seeds
from mer.io import log_to

log_to(snakemake.log[0])
exp = snakemake.params.experiment
aggregate_seeds([Path(p).parent for p in snakemake.input.metrics], exp["seeds"], exp["classes"],
                snakemake.params.out, exp)
