"""Finetuning: presets (hyperparameters), tokenisation, the trainer and its callbacks, checkpoints and merging."""
