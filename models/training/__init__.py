"""Training: the generic trainer, run folders and checkpoints, the task table and its kinds (tabular, language), sampling."""
