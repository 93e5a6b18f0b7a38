"""The agent: ReAct's loop, action parsing and protocol, the trajectory format, prompts, metrics."""
