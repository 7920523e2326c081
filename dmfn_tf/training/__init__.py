"""Training: the `DMFNTrainer` Keras model (custom `train_step`), distribution, checkpoints, callbacks."""
