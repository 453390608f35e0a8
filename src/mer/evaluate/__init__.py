"""Evaluation: the folds' predictions pooled into scores, figures and summaries (DAG stages aggregate_loso,
aggregate_seeds, summarize_experiments)."""
