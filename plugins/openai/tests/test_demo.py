"""The command line: ``ipfs-accelerate demo`` (the README's main job) and ``chat``."""

from __future__ import annotations

import os
import subprocess
import sys

from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.demo import run_demo
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply


def test_demo_runs_every_call() -> None:
    run = run_demo("openai")
    text, lines = run.text, run.lines
    assert "Hello! I am a loopback OpenAI server." in lines["chat"]  # after a 429 and a 503
    assert "Streaming works too.  [done: stop]" in lines["stream"]
    assert "[0.1, 0.2, 0.3]" in lines["embeddings"]
    assert "['https://example.invalid/lake.png']" in lines["images"]
    assert "['gpt-4o', 'dall-e-3']" in lines["models"]
    assert "astream 'Streaming works too.'" in lines["achat"]
    assert "circuit CLOSED; server saw 9 requests" in lines["usage"]
    assert "FAIL" not in text
    assert "openai       7/7" in text
    assert "sk-demo-not-a-real-key-0000" not in text + run.stderr


def test_cli_chat_uses_the_environment(protocol_server: ProtocolServer) -> None:
    def chat(request: RecordedRequest) -> Reply:
        if request.json().get("stream"):
            return Reply.sse(wire.chat_stream(["Hi ", "there"]))
        return wire.chat_reply("Hi there")

    protocol_server.on("POST", "/v1/chat/completions", default=chat)
    env = {
        **os.environ,
        "OPENAI_BASE_URL": protocol_server.url("/v1"),
        "OPENAI_API_KEY": "sk-cli-0000000000000000",
        "IPFS_ACCELERATE_NO_DOTENV": "1",
    }
    cli = [sys.executable, "-m", "ipfs_accelerate_py.cli", "chat", "-m", "gpt-4o-mini", "hello"]
    plain = subprocess.run(cli, capture_output=True, text=True, timeout=60, env=env)
    streamed = subprocess.run(
        [*cli, "--stream"], capture_output=True, text=True, timeout=60, env=env
    )
    assert (plain.returncode, plain.stdout) == (0, "Hi there\n")
    assert (streamed.returncode, streamed.stdout) == (0, "Hi there\n")
    assert [r.json()["messages"] for r in protocol_server.requests] == [wire.user("hello")] * 2
    env.pop("OPENAI_API_KEY")
    failed = subprocess.run(cli, capture_output=True, text=True, timeout=60, env=env)
    assert failed.returncode == 2  # configuration errors exit 2 (cli.py)
    assert "OPENAI_API_KEY" in failed.stderr
    assert "Traceback" not in failed.stderr
