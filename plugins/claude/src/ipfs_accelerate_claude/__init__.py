"""The Anthropic Claude backend plugin for ipfs_accelerate_py (entry point ``claude``)."""
