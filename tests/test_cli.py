"""``ipfs-accelerate`` run as a user runs it: a subprocess, configured by environment
variables, against loopback servers speaking each provider's protocol."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time

import attrs
import pytest
from cli_world import base_env, command, run

from ipfs_accelerate_groq import wire as groq_wire
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

KEY = "sk-cli-test-0123456789SECRETabcd"
CHAT = "/v1/chat/completions"


def _openai_env(server: ProtocolServer, **extra: str) -> dict[str, str]:
    return base_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.url("/v1"), **extra)


def _dead_url() -> str:
    with ProtocolServer() as gone:
        return gone.base_url  # nothing listens there once the block ends


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# -- backends ----------------------------------------------------------------------------
def test_backends_table_masks_keys(protocol_server: ProtocolServer) -> None:
    ran = run("backends", env=_openai_env(protocol_server))
    assert ran.code == 0
    rows = {line.split()[0]: line for line in ran.out.splitlines()[1:]}
    assert {"openai", "claude", "groq", "ollama", "hf_tgi", "hf_tei", "gemini"} <= set(rows)
    assert "0.1.0" in rows["openai"] and "OPENAI_API_KEY sk-...abcd" in rows["openai"]
    assert protocol_server.url("/v1") in rows["openai"]
    assert "missing (ANTHROPIC_API_KEY)" in rows["claude"]
    assert KEY not in ran.out + ran.err
    assert protocol_server.requests == []  # without --check nothing is called


def test_backends_check_times_each_endpoint(protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/v1/models", Reply.json(openai_wire.models(["gpt-4o", "o3"])))
    env = _openai_env(protocol_server, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=_dead_url())
    start = time.monotonic()
    ran = run("backends", "--check", "--json", env=env)
    assert time.monotonic() - start < 20  # a refused connection is not retried
    rows = {r["name"]: r for r in json.loads(ran.out)}
    assert rows["openai"]["check_ok"] is True and rows["openai"]["check"].endswith("2 models")
    assert rows["openai"]["check_ms"] > 0
    assert rows["claude"]["check_ok"] is False and "ConnectionError" in rows["claude"]["check"]
    assert rows["groq"]["check"] == "skipped: not configured"
    assert ran.code == 1  # a configured backend did not answer
    assert len(protocol_server.requests) == 1 and KEY not in ran.out


def test_backends_check_without_a_model_list(protocol_server: ProtocolServer) -> None:
    """TEI cannot list models: its /health is asked; OPEA has neither: any HTTP reply will do.
    A keyless backend left at its default address (localhost) is not called."""
    protocol_server.on("GET", "/health", Reply(status=200))
    protocol_server.on("GET", "/", Reply.json({"detail": "Not Found"}, status=404))
    env = base_env(HF_TEI_BASE_URL=protocol_server.base_url, OPEA_BASE_URL=protocol_server.base_url)
    ran = run("backends", "--check", "--json", env=env)
    rows = {r["name"]: r for r in json.loads(ran.out)}
    assert rows["hf_tei"]["check"].endswith("healthy") and rows["hf_tei"]["check_ok"]
    assert rows["opea"]["check"].endswith("answers (HTTP 404)") and rows["opea"]["check_ok"]
    assert rows["ollama"]["check"] == "skipped: not configured"
    assert ran.code == 0
    assert sorted(r.path for r in protocol_server.requests) == ["/", "/health"]


def test_backends_unknown_name() -> None:
    ran = run("backends", "nope")
    assert ran.code == 2 and "no backend named 'nope'" in ran.err
    _no_traceback(ran.err)


# -- chat --------------------------------------------------------------------------------
def test_chat_streams_by_default(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(openai_wire.chat_stream(["Hel", "lo", "!"])))
    ran = run(
        "chat",
        "Hi",
        "-m",
        "openai:gpt-4o-mini",
        "--system",
        "Be brief",
        env=_openai_env(protocol_server),
    )
    assert (ran.code, ran.out, ran.err) == (0, "Hello!\n", "")
    [req] = protocol_server.requests
    body = req.json()
    assert body["stream"] is True and body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
    ]
    assert req.headers["authorization"] == f"Bearer {KEY}"


def test_chat_stream_arrives_as_it_is_sent(protocol_server: ProtocolServer) -> None:
    """The first piece is on stdout while the server still holds back the rest."""
    events = openai_wire.chat_stream(["first ", "second"])
    whole = Reply.sse(events)
    assert whole.chunks is not None
    two = [b"".join(whole.chunks[:2]), b"".join(whole.chunks[2:])]  # role + first | the rest
    protocol_server.on("POST", CHAT, attrs.evolve(whole, chunks=two, chunk_delay=1.5))
    proc = subprocess.Popen(
        [*command(), "chat", "Hi", "-b", "openai", "-m", "gpt-4o-mini"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_openai_env(protocol_server),
    )
    assert proc.stdout is not None
    assert proc.stdout.read(len("first ")) == b"first "
    assert proc.poll() is None  # still waiting for the rest: nothing was buffered
    out, _ = proc.communicate(timeout=60)
    assert out == b"second\n" and proc.returncode == 0


def test_chat_no_stream_and_json(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("One reply.", model="gpt-4o"))
    env = _openai_env(protocol_server)
    ran = run("chat", "Hi", "-b", "openai", "-m", "gpt-4o", "--no-stream", env=env)
    assert (ran.code, ran.out) == (0, "One reply.\n")
    ran = run("chat", "Hi", "-m", "openai:gpt-4o", "--json", "--usage", env=env)
    reply = json.loads(ran.out)
    assert reply["text"] == "One reply." and reply["backend"] == "openai"
    assert reply["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    assert ran.err.startswith("usage: 9 prompt + 12 completion tokens")
    assert re.search(r"latency p50 \d+ ms, p90 \d+ ms, p99 \d+ ms over 1 calls", ran.err)
    assert [r.json().get("stream") for r in protocol_server.requests] == [None, None]


def test_chat_prompt_from_stdin(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=openai_wire.chat_reply("ok"))
    env = _openai_env(protocol_server, OPENAI_MODEL="gpt-4o-mini")
    assert run("chat", "--no-stream", env=env, stdin="What is 2+2?\n").out == "ok\n"
    assert run("chat", "Summarize:", "--no-stream", env=env, stdin="A long text.").code == 0
    assert run("chat", "-", "--no-stream", env=env, stdin="Only stdin").code == 0
    contents = [r.json()["messages"][-1]["content"] for r in protocol_server.requests]
    assert contents == ["What is 2+2?", "Summarize:\n\nA long text.", "Only stdin"]


def test_chat_claude_and_groq(protocol_server: ProtocolServer) -> None:
    from ipfs_accelerate_claude import testing_wire as claude_wire

    protocol_server.on("POST", "/v1/messages", Reply.sse(claude_wire.stream_events(["Hi", "!"])))
    protocol_server.on("POST", groq_wire.CHAT, groq_wire.reply("From Groq."))
    env = base_env(
        ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=protocol_server.base_url,
        GROQ_API_KEY=KEY,
        GROQ_BASE_URL=protocol_server.base_url,
    )
    assert run("chat", "Hello", "-b", "claude", env=env).out == "Hi!\n"
    ran = run("chat", "Hello", "-m", "groq:llama-3.1-8b-instant", "--no-stream", env=env)
    assert ran.out == "From Groq.\n"
    assert protocol_server.requests[1].json()["model"] == "llama-3.1-8b-instant"


# -- errors: one line, a non-zero code, fast --------------------------------------------
def test_missing_key_is_one_line() -> None:
    ran = run("chat", "Hi", "-m", "openai:gpt-4o")
    assert ran.code == 2 and "no API key configured for openai" in ran.err
    _no_traceback(ran.err)


def test_unknown_backend_and_conflicting_target() -> None:
    ran = run("chat", "Hi", "-b", "nope")
    assert ran.code == 2 and "no backend named 'nope'" in ran.err
    _no_traceback(ran.err)
    ran = run("chat", "Hi", "-b", "claude", "-m", "openai:gpt-4o")
    assert ran.code == 2 and "name different backends" in ran.err


def test_not_installed_backend_names_the_package() -> None:
    ran = run("chat", "Hi", "-b", "s3_kit")
    if "not installed" not in ran.err:
        pytest.skip("the s3_kit plugin is installed here")
    assert ran.code == 2 and "pip install ./plugins/s3kit" in ran.err


def test_install_hints_name_the_plugins_folders() -> None:
    from pathlib import Path

    from ipfs_accelerate_py import plugins

    root = Path(__file__).resolve().parent.parent
    for package in set(plugins.KNOWN_PACKAGES.values()):
        folder = plugins.install_command(package).removeprefix("pip install ./")
        project = (root / folder / "pyproject.toml").read_text()
        assert f'name = "{package}"' in project, (package, folder)


def test_demo_of_an_unknown_backend_is_one_line_and_exit_2() -> None:
    ran = run("demo", "nope")
    assert ran.code == 2 and "no backend named 'nope'" in ran.err and ran.out == ""
    _no_traceback(ran.err)


def test_unknown_model(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=openai_wire.error_reply(404))
    ran = run("chat", "Hi", "-m", "openai:gpt-9", env=_openai_env(protocol_server))
    assert ran.code == 1 and "Not found" in ran.err and "gpt-9" in ran.err
    _no_traceback(ran.err)
    assert len(protocol_server.requests) == 1  # a 404 is not retried


def test_refused_connection_fails_in_seconds() -> None:
    env = base_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=_dead_url() + "/v1")
    start = time.monotonic()
    ran = run("chat", "Hi", "-m", "openai:gpt-4o", env=env)
    assert time.monotonic() - start < 10
    assert ran.code == 1 and "could not connect" in ran.err and KEY not in ran.err
    _no_traceback(ran.err)


def test_no_prompt() -> None:
    ran = run("chat", "-m", "openai:gpt-4o", env=base_env(OPENAI_API_KEY=KEY))
    assert ran.code == 2 and "no prompt" in ran.err


# -- embed, models, usage ----------------------------------------------------------------
def _embed(request: RecordedRequest) -> Reply:
    texts = request.json()["input"]
    return Reply.json(openai_wire.embeddings([[float(len(t)), 0.5] for t in texts]))


def test_embed_in_batches_quiet_when_piped(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/v1/embeddings", default=_embed)
    env = _openai_env(protocol_server)
    texts = "a\nbb\nccc\ndddd\neeeee\n"
    ran = run(
        "embed", "-m", "openai:text-embedding-3-small", "--batch-size", "2", env=env, stdin=texts
    )
    assert ran.code == 0 and ran.err == ""  # no progress bar when stderr is not a terminal
    assert [json.loads(line) for line in ran.out.splitlines()] == [
        [float(n), 0.5] for n in range(1, 6)
    ]
    assert [r.json()["input"] for r in protocol_server.requests] == [
        ["a", "bb"],
        ["ccc", "dddd"],
        ["eeeee"],
    ]


def test_embed_progress_bar_on_a_terminal(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/v1/embeddings", default=_embed)
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [*command(), "embed", "x", "yy", "zzz", "-m", "openai:e", "--batch-size", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=_openai_env(protocol_server),
        timeout=60,
        check=False,
    )
    os.close(follower)
    drawn = b""
    try:
        while chunk := os.read(leader, 4096):
            drawn += chunk
    except OSError:
        pass
    os.close(leader)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3
    assert b"embedding [" in drawn and b"3/3" in drawn


def test_models_with_category(protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", groq_wire.MODELS, default=Reply.json(groq_wire.LISTING))
    env = base_env(GROQ_API_KEY=KEY, GROQ_BASE_URL=protocol_server.base_url)
    ran = run("models", "groq", env=env)
    assert ran.code == 0 and "llama-3.1-8b-instant" in ran.out
    ran = run("models", "groq", "--category", "audio", "--json", env=env)
    assert [m["id"] for m in json.loads(ran.out)] == ["whisper-large-v3", "whisper-large-v3-turbo"]


def test_usage_counts_this_process() -> None:
    ran = run("usage", "--json")
    assert ran.code == 0 and json.loads(ran.out) == {"scope": "process", "backends": {}}


def test_backend_model_target_keeps_colons_in_model_names(protocol_server: ProtocolServer) -> None:
    """``-m ollama:llama3:latest`` is backend ollama, model llama3:latest; with ``-b ollama``,
    ``-m llama3:latest`` is that model (``llama3`` is no backend)."""
    from ipfs_accelerate_py.testing.server import RecordedRequest as Req

    def chat(request: Req) -> Reply:
        body = request.json()
        return Reply.json(
            {
                "model": body["model"],
                "created_at": "2025-07-07T20:22:19Z",
                "message": {"role": "assistant", "content": "hi"},
                "done_reason": "stop",
                "done": True,
                "prompt_eval_count": 3,
                "eval_count": 1,
            }
        )

    protocol_server.on("POST", "/api/chat", default=chat)
    env = base_env(OLLAMA_HOST=protocol_server.base_url)
    assert run("chat", "Hi", "-m", "ollama:llama3:latest", "--no-stream", env=env).out == "hi\n"
    assert (
        run("chat", "Hi", "-b", "ollama", "-m", "llama3:latest", "--no-stream", env=env).code == 0
    )
    assert [r.json()["model"] for r in protocol_server.requests] == ["llama3:latest"] * 2


def test_no_model_says_which_flag() -> None:
    ran = run("chat", "Hi", env=base_env(OPENAI_API_KEY=KEY))
    assert (
        ran.code == 2
        and "openai needs a model: pass -m openai:MODEL or set OPENAI_MODEL" in ran.err
    )
    _no_traceback(ran.err)
