"""The numpy MiniLM embedder: unit vectors, order, batching and, where sentence-transformers
is installed, the same vectors as sentence-transformers (cosine >= 0.9999 on 100 texts)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
from ipfs_accelerate_py import embedder as embedder_mod  # noqa: E402

try:
    MODEL_DIR = embedder_mod.find_model_dir("mini")
except Exception:  # pragma: no cover
    pytest.skip("all-MiniLM-L6-v2 weights not installed", allow_module_level=True)

PAIRS = Path(__file__).parents[1] / "src/ipfs_accelerate_py/testing/cache_pairs.tsv"


def varied_texts() -> list[str]:
    """100 texts: short and long prompts, code, numbers, unicode, one past 256 tokens."""
    rows = [r.split("\t") for r in PAIRS.read_text("utf-8").splitlines() if not r.startswith("#")]
    texts = list(dict.fromkeys(t for r in rows for t in r[2:4]))[:88]
    texts += [
        "",
        "a",
        "Ünïcödé façade naïve café — 東京 and emoji 🚀🔥",
        "def f(x):\n    return [i ** 2 for i in range(x) if i % 2 == 0]",
        "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
        "3.14159 2.71828 1.41421 6.02214076e23 -273.15",
        " ".join(["The quick brown fox jumps over the lazy dog."] * 40),  # > 256 tokens
        " ".join(f"word{i}" for i in range(150)),
        "https://example.com/path?query=1&other=two#frag",
        "    leading and trailing spaces    ",
        "ALL CAPS SHOUTING PROMPT ABOUT DATABASES",
        "Mixed\tTabs\nand newlines\r\nin one text",
    ]
    assert len(texts) == 100
    return texts


def test_unit_vectors_in_order_and_batch_equals_single() -> None:
    emb = embedder_mod.local_embedder()
    texts = varied_texts()
    batch = emb.embed(texts)
    assert batch.shape == (100, 384) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    singles = np.vstack([emb.embed(t) for t in texts[:10]])
    assert np.allclose(singles, batch[:10], atol=1e-5)
    # truncated at the model's 256 tokens, not the tokenizer file's 128
    assert emb.max_length == 256


def test_loaded_once_thread_safe() -> None:
    found: list[object] = []
    threads = [
        threading.Thread(target=lambda: found.append(embedder_mod.local_embedder()))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in found}) == 1


def test_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(MODEL_DIR), device="cpu")
    texts = varied_texts()
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    ours = embedder_mod.local_embedder().embed(texts)
    cosines = (expected * ours).sum(1) / np.linalg.norm(expected, axis=1)
    print(f"min cosine vs sentence-transformers: {cosines.min():.6f}")
    assert cosines.min() >= 0.9999
