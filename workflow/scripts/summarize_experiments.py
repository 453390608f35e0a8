from mer.evaluate.summary import summarize_experiments
from mer.io import log_to

log_to(snakemake.log[0])
exps = snakemake.params.experiments
summarize_experiments({name: (path, exps[name]) for name, path in zip(exps, snakemake.input.metrics, strict=True)},
                      snakemake.output.md, snakemake.output.tsv, snakemake.params.dataset,
                      out_html=snakemake.output.html, compare=snakemake.params.compare, real=snakemake.params.real)
