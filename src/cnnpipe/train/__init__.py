"""Training: batched on-device augmentation, the loop, optimizers and checkpoints."""
