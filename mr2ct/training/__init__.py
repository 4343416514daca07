"""Training: strategy and precision, the step loop, checkpoints, and the run drivers."""
