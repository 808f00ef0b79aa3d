"""Where the Ollama backend finds its server, model and optional token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ollama_wire as wire
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = [{"role": "user", "content": "Hi"}]


def _chat_once(backend_kwargs: dict, server: ProtocolServer, **call: object) -> None:
    backend = get_backend("ollama", max_retries=0, **backend_kwargs)
    try:
        backend.chat(messages=MESSAGES, **call)
    finally:
        backend.close()


def test_defaults() -> None:
    backend = get_backend("ollama")
    assert backend.settings.base_url == "http://localhost:11434/api"
    assert backend.settings.api_key is None and backend.settings.default_model is None
    assert backend.spec.api_key_required is False


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/"])
@pytest.mark.parametrize("variable", ["OLLAMA_HOST", "OLLAMA_API_URL"])
def test_host_and_api_url_forms(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch, variable: str, suffix: str
) -> None:
    monkeypatch.setenv(variable, protocol_server.base_url + suffix)
    protocol_server.on("POST", "/api/chat", Reply.json(wire.chat()))
    _chat_once({}, protocol_server, model="llama3")
    assert [r.path for r in protocol_server.requests] == ["/api/chat"]


def test_a_path_prefix_is_kept(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/proxy/ollama/api/chat", Reply.json(wire.chat()))
    _chat_once({"base_url": protocol_server.url("/proxy/ollama")}, protocol_server, model="m")
    assert protocol_server.requests[0].path == "/proxy/ollama/api/chat"


def test_precedence(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("OLLAMA_API_URL", protocol_server.url("/api"))
    monkeypatch.setenv("OLLAMA_MODEL", "from-env")
    protocol_server.on("POST", "/api/chat", default=Reply.json(wire.chat()))
    _chat_once({}, protocol_server)  # OLLAMA_API_URL wins over OLLAMA_HOST
    monkeypatch.setenv("OLLAMA_API_URL", "http://127.0.0.1:9/api")
    meta = {"ollama_api_url": protocol_server.url("/api"), "ollama_model": "from-meta"}
    _chat_once({"metadata": meta}, protocol_server)  # metadata beats the environment
    _chat_once({"metadata": meta}, protocol_server, model="explicit")
    models = [r.json()["model"] for r in protocol_server.requests]
    assert models == ["from-env", "from-meta", "explicit"]


def test_no_model_fails_before_sending(protocol_server: ProtocolServer) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="OLLAMA_MODEL"):
        _chat_once({"base_url": protocol_server.base_url}, protocol_server)
    assert protocol_server.requests == []


@pytest.mark.parametrize("source", ["env", "metadata"])
def test_optional_bearer_token(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch, secret: str, source: str
) -> None:
    protocol_server.on("POST", "/api/chat", Reply.json(wire.chat()))
    kwargs: dict = {"base_url": protocol_server.base_url}
    if source == "env":
        monkeypatch.setenv("OLLAMA_API_KEY", secret)
    else:
        kwargs["metadata"] = {"ollama_api_key": secret}
    _chat_once(kwargs, protocol_server, model="llama3")
    assert protocol_server.requests[0].headers["authorization"] == f"Bearer {secret}"


def test_bad_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_URL", "ftp://example.invalid")
    with pytest.raises(errors.ConfigurationError, match="OLLAMA_API_URL"):
        get_backend("ollama")


def test_dotenv_file_as_the_guide_shows(protocol_server: ProtocolServer, tmp_path: Path) -> None:
    # the guide's "Method 2: .env File", read from the working directory in a fresh process
    (tmp_path / ".env").write_text(
        f"OLLAMA_API_URL={protocol_server.url('/api')}\nOLLAMA_MODEL=llama3\n"
    )
    protocol_server.on("POST", "/api/chat", Reply.json(wire.chat("from .env")))
    code = (
        "from ipfs_accelerate_py.api_backends import ollama\n"
        "print(ollama().chat(None, [{'role': 'user', 'content': 'Hi'}])['text'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.pop("IPFS_ACCELERATE_NO_DOTENV", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (out.returncode, out.stdout) == (0, "from .env\n"), out.stderr
    assert protocol_server.requests[0].json()["model"] == "llama3"
