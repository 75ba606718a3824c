"""Training on Ray Train from the lake: splits, data feeding, the distributed loop, checkpoints, resume."""
