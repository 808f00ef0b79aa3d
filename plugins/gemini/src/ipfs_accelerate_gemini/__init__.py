"""The Google Gemini backend plugin for ipfs_accelerate_py (entry point ``gemini``)."""
