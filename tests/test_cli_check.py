"""``ipfs-accelerate check``: the live smoke test the guide's test scripts were for, run as a
subprocess against loopback servers."""

from __future__ import annotations

import pytest
from cli_world import base_env, run

from ipfs_accelerate_groq import wire as groq_wire
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

KEY = "sk-check-0123456789SECRETabcd"


def _chat(request: RecordedRequest) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(openai_wire.chat_stream(["O", "K"]))
    return Reply.json(openai_wire.chat_completion("OK"), delay=0.1)


@pytest.fixture
def openai_server(protocol_server: ProtocolServer) -> ProtocolServer:
    protocol_server.on("GET", "/v1/models", default=Reply.json(openai_wire.models(["gpt-4o"])))
    protocol_server.on("POST", "/v1/chat/completions", default=_chat)
    protocol_server.on(
        "POST", "/v1/embeddings", default=Reply.json(openai_wire.embeddings([[0.1] * 3] * 2))
    )
    return protocol_server


def _env(server: ProtocolServer, **extra: str) -> dict[str, str]:
    return base_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.url("/v1"), **extra)


def _lines(out: str) -> dict[str, list[str]]:
    """``{capability: [status, ...detail words]}`` of the outcome lines."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in ("PASS", "FAIL", "SKIP"):
            detail = words[5:] if words[4:5] == ["ms"] else words[3:]
            found[words[2]] = [words[0], *detail]
    return found


def test_every_capability_passes(openai_server: ProtocolServer) -> None:
    ran = run(
        "check",
        "openai",
        "-m",
        "gpt-4o",
        "--embed-model",
        "openai:text-embedding-3-small",
        "--max-concurrent",
        "2",
        "--queue-size",
        "10",
        env=_env(openai_server),
    )
    lines = _lines(ran.out)
    assert ran.code == 0, ran.out + ran.err
    assert {c: v[0] for c, v in lines.items()} == {
        "list_models": "PASS",
        "chat": "PASS",
        "stream": "PASS",
        "embed": "PASS",
        "queue": "PASS",
    }
    assert "'OK'" in lines["chat"] and "'OK'" in lines["stream"]
    assert "2 vectors of 3 floats" in " ".join(lines["embed"])
    assert ran.out.splitlines()[-1] == "5 passed, 0 failed, 0 skipped"
    chats = openai_server.requests_to("/v1/chat/completions")
    assert len(chats) == 1 + 1 + 4  # chat, stream, then max_concurrent + 2 at once
    assert openai_server.max_in_flight == 2  # the queue held the rest back
    assert [r.path for r in openai_server.requests[:2]] == ["/v1/models", "/v1/chat/completions"]
    assert KEY not in ran.out + ran.err


def test_a_failure_is_a_fail_line_and_exit_1(protocol_server: ProtocolServer) -> None:
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
        protocol_server.on(method, path, default=openai_wire.error_reply(401))
    ran = run("check", "--apis", "openai", "-m", "gpt-4o", env=_env(protocol_server))
    lines = _lines(ran.out)
    assert ran.code == 1
    assert lines["list_models"][:2] == ["FAIL", "AuthenticationError:"]
    assert lines["chat"][0] == "FAIL" and lines["stream"][0] == "FAIL"
    assert lines["embed"][0] == "SKIP" and lines["queue"][0] == "SKIP"
    assert len(protocol_server.requests) == 3  # a 401 is never retried


def test_skips_say_why(openai_server: ProtocolServer) -> None:
    ran = run("check", "openai", env=_env(openai_server))
    lines = _lines(ran.out)
    assert ran.code == 0
    assert lines["list_models"][0] == "PASS"
    assert " ".join(lines["chat"]) == "SKIP no model: pass -m openai:MODEL"
    assert " ".join(lines["embed"]) == "SKIP no model: pass --embed-model openai:MODEL"
    assert lines["queue"][0] == "SKIP"


def test_apis_and_skip_apis(openai_server: ProtocolServer) -> None:
    openai_server.on("GET", groq_wire.MODELS, default=Reply.json(groq_wire.LISTING))
    openai_server.on(
        "POST",
        groq_wire.CHAT,
        groq_wire.reply("OK"),
        Reply.sse(groq_wire.stream_events(["O", "K"])),
    )
    env = _env(openai_server, GROQ_API_KEY=KEY, GROQ_BASE_URL=openai_server.base_url)
    ran = run("check", "--apis", "openai", "groq", "--skip-apis", "openai", env=env)
    assert ran.code == 0
    backends = {line.split()[1] for line in ran.out.splitlines() if line[:4] in ("PASS", "SKIP")}
    assert backends == {"groq"}
    assert [r.path for r in openai_server.requests] == [groq_wire.MODELS, *[groq_wire.CHAT] * 2]


def test_missing_credentials_fail_the_named_backend() -> None:
    ran = run("check", "claude")
    assert ran.code == 1
    assert ran.out.startswith("FAIL  claude     configure")
    assert "no API key configured for claude" in ran.out
    assert "Traceback" not in ran.out + ran.err


def test_unreachable_server(openai_server: ProtocolServer) -> None:
    with ProtocolServer() as gone:
        dead = gone.url("/v1")
    ran = run(
        "check",
        "openai",
        "-m",
        "gpt-4o",
        "--max-retries",
        "0",
        env=base_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=dead),
    )
    lines = _lines(ran.out)
    assert ran.code == 1 and lines["list_models"][:2] == ["FAIL", "ConnectionError:"]


def test_the_guides_ollama_script_flags(protocol_server: ProtocolServer) -> None:
    """``test_ollama_backoff_comprehensive.py --model llama3 --host ... --queue-size 10
    --max-concurrent 2``, as ``check ollama``."""
    from guide_world import ollama_wire

    def chat(request: RecordedRequest) -> Reply:
        if request.json()["stream"]:
            return Reply.ndjson(ollama_wire.chat_stream(["O", "K"]))
        return Reply.json(ollama_wire.chat("OK"), delay=0.05)

    protocol_server.on("GET", "/api/tags", default=Reply.json(ollama_wire.tags(["llama3:latest"])))
    protocol_server.on("POST", "/api/chat", default=chat)
    ran = run(
        "check", "ollama", "--model", "llama3", "--host", protocol_server.base_url,
        "--queue-size", "10", "--max-concurrent", "2",
    )  # fmt: skip
    lines = _lines(ran.out)
    assert ran.code == 0, ran.out
    assert {c: v[0] for c, v in lines.items()} == {
        "list_models": "PASS", "chat": "PASS", "stream": "PASS", "embed": "SKIP", "queue": "PASS"
    }  # fmt: skip
    assert len(protocol_server.requests_to("/api/chat")) == 1 + 1 + 4
    assert protocol_server.max_in_flight == 2
    assert {r.json()["model"] for r in protocol_server.requests_to("/api/chat")} == {"llama3"}
