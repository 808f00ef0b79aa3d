"""The OpenAI backend plugin for ipfs_accelerate_py (entry point ``openai``)."""
