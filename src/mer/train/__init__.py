"""Training: inputs, augmentation, models, losses and the one-fold and fused training loops (DAG stages
train_fold, train_fold_group, train_final)."""
