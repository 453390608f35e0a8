from pathlib import Path

from mer.evaluate.plots import training_curves
from mer.evaluate.pooling import aggregate
from mer.io import log_to

log_to(snakemake.log[0])
exp = snakemake.params.experiment
aggregate([Path(p).parent for p in snakemake.input.predictions], exp["classes"], snakemake.params.out, exp)
training_curves({Path(p).parent.name: p for p in snakemake.input.metrics}, snakemake.output.training_curves,
                exp["name"])
