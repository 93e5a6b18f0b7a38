"""react: benchmark and finetune language models as ReAct agents on HotPotQA."""

__version__ = "0.1.0"
