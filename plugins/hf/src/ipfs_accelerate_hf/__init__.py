"""The Hugging Face backend plugin for ipfs_accelerate_py: ``hf_tgi`` (Text Generation
Inference) and ``hf_tei`` (Text Embeddings Inference), one module serving both."""
