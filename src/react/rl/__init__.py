"""Reinforcement learning on the ReAct environment: trl GRPO rollouts played by the agent loop (issue 15).

Built so far: the rollout as tokens (tokens), the policy as an agent backend (policy), trl's
``rollout_func`` and the EM reward (rollout). Not yet: the ``rl`` config section, rules, presets.
"""
