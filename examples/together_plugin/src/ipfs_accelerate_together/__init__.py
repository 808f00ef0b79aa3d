"""Together AI for ipfs_accelerate_py: ``get_backend("together")`` once installed."""

__version__ = "0.1.0"
