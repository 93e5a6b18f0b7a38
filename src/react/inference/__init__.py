"""Inference engines behind one interface: transformers, vLLM, an OpenAI-compatible server; a registry."""
