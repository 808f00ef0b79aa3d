"""Together's own reply shapes, for tests and the demo (chat and embeddings are OpenAI's:
use :mod:`ipfs_accelerate_py.testing.openai_wire`)."""

from __future__ import annotations

from typing import Any

MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def model_entry(id: str, type: str, context_length: int, organization: str) -> dict[str, Any]:
    """One entry of ``GET /models`` as Together sends it."""
    return {
        "id": id,
        "object": "model",
        "created": 1_733_443_200,
        "type": type,
        "running": False,
        "display_name": id.split("/")[-1].replace("-", " "),
        "organization": organization,
        "link": f"https://huggingface.co/{id}",
        "context_length": context_length,
        "config": {"chat_template": None, "stop": ["<|eot_id|>"], "bos_token": None},
        "pricing": {"hourly": 0, "input": 0.88, "output": 0.88, "base": 0, "finetune": 0},
    }


def models_listing() -> list[dict[str, Any]]:
    """A ``GET /models`` reply: a bare JSON array."""
    return [
        model_entry(MODEL, "chat", 131072, "Meta"),
        model_entry("mistralai/Mixtral-8x7B-v0.1", "language", 32768, "mistralai"),
        model_entry("BAAI/bge-base-en-v1.5", "embedding", 512, "BAAI"),
        model_entry("black-forest-labs/FLUX.1-schnell", "image", 0, "Black Forest Labs"),
    ]
