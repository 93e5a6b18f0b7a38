"""Data: HotPotQA splits, imported trajectories, the oracle teacher, training sets."""
