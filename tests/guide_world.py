"""Loopback servers speaking every provider's protocol, for running the quickstart guide.

:class:`GuideWorld` starts one :class:`ProtocolServer` per provider, scripts each with that
provider's wire format (the plugins' own wire helpers), and points the environment at them
the way a user would configure the guide: only credentials and base URLs, through
environment variables. Ollama's server listens on ``localhost:11434`` when that port is free,
because the guide's Ollama block names that address in its metadata (metadata beats the
environment, so no variable can move it).
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ipfs_accelerate_claude import testing_wire as claude_wire
from ipfs_accelerate_groq import wire as groq_wire
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parents[1]
OLLAMA_PORT = 11434


def _load(plugin: str, module: str) -> ModuleType:
    """A wire-helper module from a plugin's tests (not importable by name under importlib mode)."""
    path = ROOT / "plugins" / plugin / "tests" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"_guide_{module}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


gemini_wire = _load("gemini", "gemini_wire")
hf_wire = _load("hf", "hf_wire")
ollama_wire = _load("ollama", "ollama_wire")

# what each server answers, so tests can assert the exact printed lines
OPENAI_TEXT = "I'm doing well, thank you!"
OPENAI_VECTOR = [0.25, -0.5, 0.75]
IMAGE_URL = "https://images.example/lakeside-sunset.png"
CLAUDE_TEXT = "I'm well, thanks!"
CLAUDE_PIECES = ["I'm ", "doing ", "well."]
OLLAMA_MODELS = ["llama3:latest", "mistral:latest"]
OLLAMA_TEXT = "Hello from llama3!"
OLLAMA_PIECES = ["Hello ", "from ", "a stream!"]
TGI_TEXT = "Quantum computers use qubits."
TGI_CHAT_TEXT = "TGI is doing fine."
GROQ_TEXT = "I'm doing well, thank you!"
GROQ_BULLETS = "- Qubits\n- Superposition"
GROQ_JSON = '{"planets": ["Mercury", "Venus", "Earth"]}'
GROQ_PIECES = ["Quantum ", "computing ", "uses qubits."]
GEMINI_TEXT = "Gemini is doing well."
GEMINI_IMAGE_TEXT = "A tiny white square."
GEMINI_PIECES = ["Doing ", "great", "!"]
GEMINI_MODELS = ("gemini-1.0-pro", "gemini-1.5-pro-vision", "gemini-2.5-flash")
KEYS = {
    "OPENAI_API_KEY": "sk-env-openai-0000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-env-000000000000000000",
    "GROQ_API_KEY": "gsk_env_00000000000000000000",
    "GOOGLE_API_KEY": "AIza-env-0000000000000000000",
    "HF_API_TOKEN": "hf_env_000000000000000000000",
}
# variables of the machine running the tests that would steer a backend elsewhere
FOREIGN = [
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "GROQ_BASE_URL",
    "GROQ_MODEL",
    "GEMINI_API_KEY",
    "GEMINI_MODEL",
    "GOOGLE_GEMINI_BASE_URL",
    "OLLAMA_HOST",
    "OLLAMA_API_URL",
    "OLLAMA_MODEL",
    "HF_TOKEN",
    "HF_TGI_BASE_URL",
    "HF_TEI_BASE_URL",
    "HF_TGI_MODEL",
    "HF_TEI_MODEL",
]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _openai_chat(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("stream"):
        return Reply.sse(openai_wire.chat_stream(["I'm ", "fine."], model=body["model"]))
    return openai_wire.chat_reply(OPENAI_TEXT, model=body["model"])


def _openai_embed(request: RecordedRequest) -> Reply:
    inputs = request.json()["input"]
    count = 1 if isinstance(inputs, str) else len(inputs)
    return openai_wire.embeddings_reply([OPENAI_VECTOR] * count)(request)  # in the format asked


def _claude(request: RecordedRequest) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(claude_wire.stream_events(CLAUDE_PIECES), split=9)
    return Reply.json(claude_wire.message(CLAUDE_TEXT))


def _ollama_chat(request: RecordedRequest) -> Reply:
    body = request.json()
    if body["stream"]:
        return Reply.ndjson(ollama_wire.chat_stream(OLLAMA_PIECES, model=body["model"]), split=7)
    return Reply.json(ollama_wire.chat(OLLAMA_TEXT, model=body["model"]))


def _groq_chat(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("stream"):
        return Reply.sse(groq_wire.stream_events(GROQ_PIECES, model=body["model"]), split=7)
    if body.get("response_format") == {"type": "json_object"}:
        return groq_wire.reply(GROQ_JSON, model=body["model"])
    if body["model"] == "llama3-70b-8192":
        return groq_wire.reply(GROQ_BULLETS, model=body["model"], completion_tokens=40)
    return groq_wire.reply(GROQ_TEXT, model=body["model"])


def _gemini_generate(request: RecordedRequest) -> Reply:
    parts = request.json()["contents"][0]["parts"]
    if "inlineData" in parts[0]:
        return Reply.json(gemini_wire.response(GEMINI_IMAGE_TEXT))
    return Reply.json(gemini_wire.response(GEMINI_TEXT))


def _tei_embed(request: RecordedRequest) -> Reply:
    inputs = request.json()["inputs"]
    texts = [inputs] if isinstance(inputs, str) else inputs
    return Reply.json([[1.0, 0.0] * 192 if "First" in t else [1.0, 1.0] * 192 for t in texts])


class GuideWorld:
    """One loopback server per provider, and the environment pointing at them."""

    def __init__(self) -> None:
        self.ollama_on_guide_port = _port_free(OLLAMA_PORT)
        names = ("openai", "claude", "groq", "gemini", "tgi", "tei")
        self.servers: dict[str, ProtocolServer] = {n: ProtocolServer() for n in names}
        port = OLLAMA_PORT if self.ollama_on_guide_port else 0
        self.servers["ollama"] = ProtocolServer(port=port)

    def __getattr__(self, name: str) -> ProtocolServer:
        try:
            return self.__dict__["servers"][name]
        except KeyError:
            raise AttributeError(name) from None

    def start(self, monkeypatch: pytest.MonkeyPatch) -> GuideWorld:
        """Start every server, script it, and set the environment as a user would."""
        for server in self.servers.values():
            server.start()
        self.script()
        for name in FOREIGN:
            monkeypatch.delenv(name, raising=False)
        for name, value in KEYS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OPENAI_BASE_URL", self.openai.url("/v1"))
        monkeypatch.setenv("ANTHROPIC_BASE_URL", self.claude.base_url)
        monkeypatch.setenv("GROQ_BASE_URL", self.groq.base_url)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", self.gemini.base_url)
        monkeypatch.setenv("OLLAMA_API_URL", self.ollama.url("/api"))
        monkeypatch.setenv("OLLAMA_MODEL", "llama3")
        monkeypatch.setenv("HF_TGI_BASE_URL", self.tgi.base_url)
        monkeypatch.setenv("HF_TEI_BASE_URL", self.tei.base_url)
        monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(var, "127.0.0.1,localhost")
        return self

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers.values():
            server.stop()

    def script(self) -> None:
        """Each provider's routes, answering by what the request asks."""
        openai = self.openai
        openai.on("POST", "/v1/chat/completions", default=_openai_chat)
        openai.on("POST", "/v1/embeddings", default=_openai_embed)
        openai.on(
            "POST", "/v1/images/generations", default=Reply.json(openai_wire.images([IMAGE_URL]))
        )
        self.claude.on("POST", "/v1/messages", default=_claude)
        self.groq.on("POST", groq_wire.CHAT, default=_groq_chat)
        self.groq.on("GET", groq_wire.MODELS, default=Reply.json(groq_wire.LISTING))
        models = "/v1beta/models"
        for model in GEMINI_MODELS:
            self.gemini.on("POST", f"{models}/{model}:generateContent", default=_gemini_generate)
            self.gemini.on(
                "POST",
                f"{models}/{model}:streamGenerateContent",
                default=gemini_wire.sse(gemini_wire.stream_events(GEMINI_PIECES), split=9),
            )
        self.ollama.on("GET", "/api/tags", default=Reply.json(ollama_wire.tags(OLLAMA_MODELS)))
        self.ollama.on("POST", "/api/chat", default=_ollama_chat)
        self.tgi.on("POST", "/generate", default=Reply.json(hf_wire.generated(TGI_TEXT)))
        self.tgi.on(
            "POST",
            "/v1/chat/completions",
            default=Reply.json(openai_wire.chat_completion(TGI_CHAT_TEXT)),
        )
        self.tei.on("POST", "/embed", default=_tei_embed)
        self.tei.on("GET", "/info", default=Reply.json(hf_wire.tei_info(32)))

    def unexpected(self) -> dict[str, Any]:
        """Requests any server had no script for, by server."""
        return {n: s.unexpected for n, s in self.servers.items() if s.unexpected}
