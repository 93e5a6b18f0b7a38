"""Reinforcement learning on the ReAct environment: rollouts as token sequences (issue 15, in progress)."""
