"""The Ollama backend plugin for ipfs_accelerate_py (entry point ``ollama``)."""

from .embeddings import aembed, embed

__all__ = ["aembed", "embed"]
