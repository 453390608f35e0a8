import cv2

from mer.io import log_to
from mer.preprocess.flow import flow_subject

log_to(snakemake.log[0])
cv2.setNumThreads(snakemake.threads)
flow_subject(snakemake.input.crops, snakemake.output[0], snakemake.params.flow["method"],
             snakemake.params.flow["lambda"])
