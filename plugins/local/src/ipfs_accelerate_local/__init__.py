"""Self-hosted inference servers for ipfs_accelerate_py (entry points ``llvm``, ``vllm``,
``ovms``, ``opea``): OpenAI-compatible servers (vLLM, llama.cpp, LM Studio), OpenVINO Model
Server (KServe v2, TensorFlow-Serving and OpenAI ``/v3`` APIs) and OPEA (ChatQnA and its
microservices)."""
