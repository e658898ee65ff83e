"""Training and evaluation: models, losses, the training loop with checkpoints, metrics, the retraining recipe, out-of-fold probabilities (the one cross-validation engine)."""
