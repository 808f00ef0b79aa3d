"""A router from code, a mapping, and JSON / TOML / YAML files; bad configs fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ipfs_accelerate_py
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer

CHAT = "/v1/chat/completions"


def config(servers: list[ProtocolServer]) -> dict:
    return {
        "router": {"strategy": "weighted", "fallbacks": {"smart": ["cheap"]}, "cooldown": 1},
        "deployments": [
            {
                "alias": "smart",
                "backend": "loopback",
                "model": "m0",
                "api_key": "env:ROUTER_KEY_A",
                "base_url": servers[0].url("/v1"),
                "weight": 3,
                "settings": {"max_retries": 0},
            },
            {
                "model_name": "smart",
                "backend": "loopback",
                "model": "m1",
                "api_key": "os.environ/ROUTER_KEY_B",
                "base_url": servers[1].url("/v1"),
                "weight": 1,
            },
            {
                "alias": "cheap",
                "backend": "loopback",
                "model": "m2",
                "api_key": "literal-key-2",
                "base_url": servers[2].url("/v1"),
                "rpm": 100,
            },
        ],
        "budgets": [{"name": "daily", "scope": "user", "max_cost": 5.0}],
    }


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_KEY_A", "sk-env-a-0123456789")
    monkeypatch.setenv("ROUTER_KEY_B", "sk-env-b-0123456789")


def check(router: object, servers: list[ProtocolServer]) -> None:
    for s in servers[:2]:
        s.on("POST", CHAT, default=wire.chat_reply("ok"))
    for _ in range(8):
        router.chat(model="smart", messages=wire.user())  # type: ignore[attr-defined]
    assert [len(s.requests_to(CHAT)) for s in servers[:2]] == [6, 2]
    assert servers[0].requests_to(CHAT)[0].headers["authorization"] == "Bearer sk-env-a-0123456789"
    assert servers[1].requests_to(CHAT)[0].headers["authorization"] == "Bearer sk-env-b-0123456789"
    text = repr(router) + repr(router.deployments()) + repr(router.get_deployment_stats())  # type: ignore[attr-defined]
    assert "0123456789" not in text and "literal-key-2" not in text


def test_from_mapping(loopback_plugin, servers) -> None:
    with ipfs_accelerate_py.Router.from_config(config(servers)) as router:
        check(router, servers)
        assert router.fallbacks == {"smart": ["cheap"]} and router.budgets[0].name == "daily"


def test_from_json_and_toml(loopback_plugin, servers, tmp_path: Path) -> None:
    from ipfs_accelerate_py.router import Router

    path = tmp_path / "router.json"
    path.write_text(json.dumps(config(servers)))
    with Router.from_file(path) as router:
        check(router, servers)
    for s in servers:
        s.reset()
    cfg = config(servers)
    lines = ["[router]", 'strategy = "weighted"', "[router.fallbacks]", 'smart = ["cheap"]']
    for dep in cfg["deployments"]:
        lines.append("[[deployments]]")
        for key, value in dep.items():
            if isinstance(value, dict):
                value = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
            else:
                value = json.dumps(value)
            lines.append(f"{key} = {value}")
    toml = tmp_path / "router.toml"
    toml.write_text("\n".join(lines))
    with Router.from_file(toml) as router:
        check(router, servers)


def test_from_yaml(loopback_plugin, servers, tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    from ipfs_accelerate_py.router import Router

    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config(servers)))
    with Router.from_file(path) as router:
        check(router, servers)


def test_bad_configs(loopback_plugin, servers, tmp_path: Path, monkeypatch) -> None:
    from ipfs_accelerate_py.router import Router

    cfg = config(servers)
    monkeypatch.delenv("ROUTER_KEY_B")
    with pytest.raises(errors.ConfigurationError, match=r"\$ROUTER_KEY_B, which is not set"):
        Router.from_config(cfg)
    with pytest.raises(errors.ConfigurationError, match="unknown router settings"):
        Router.from_config({"router": {"stratgy": "weighted"}})
    with pytest.raises(errors.ConfigurationError, match="needs model"):
        Router.from_config({"deployments": [{"alias": "a", "backend": "loopback"}]})
    bad = tmp_path / "r.json"
    bad.write_text("{nope")
    with pytest.raises(errors.ConfigurationError, match="not valid json"):
        Router.from_file(bad)
    (tmp_path / "r.ini").write_text("x")
    with pytest.raises(errors.ConfigurationError, match="must end in"):
        Router.from_file(tmp_path / "r.ini")
    with pytest.raises(errors.ConfigurationError, match="weight"):
        Router(
            deployments=[
                {
                    "alias": "a",
                    "backend": "loopback",
                    "model": "m",
                    "api_key": "k",
                    "base_url": servers[0].url("/v1"),
                    "weight": 0,
                }
            ]
        )


def test_import_stays_light() -> None:
    code = (
        "import sys, ipfs_accelerate_py as p; p.Router; "
        "bad = [m for m in ('yaml', 'httpx', 'asyncio', 'tomllib') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
