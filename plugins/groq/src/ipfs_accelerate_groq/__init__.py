"""The Groq backend plugin for ipfs_accelerate_py (entry point ``groq``)."""
