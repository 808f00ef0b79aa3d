"""ipfs_accelerate_py: one interface to many LLM API providers, with production resilience.

Start with :func:`ipfs_accelerate_py.core.get_backend`.
"""

__version__ = "0.1.0"
