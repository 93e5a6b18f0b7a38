"""Finetuning: presets, tokenisation, the trainer, checkpoints and merging."""
