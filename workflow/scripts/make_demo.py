from mer.demo import make_demo
from mer.io import log_to

log_to(snakemake.log[0])
d = snakemake.params.demo
make_demo(snakemake.params.out, subjects=d["subjects"], clips_per_subject=d["clips_per_subject"],
          amplitude=d["amplitude"], mirror=d["mirror"], seed=d["seed"], shuffle_labels=d["shuffle_labels"],
          workers=snakemake.threads, layout=snakemake.wildcards.get("dataset", "casme2"))
