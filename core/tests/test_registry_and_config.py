"""Discovery through entry points, get_backend / list_backends, settings precedence, and
settings refused when they are made (a ``timeout`` that is not a usable number of
seconds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_accelerate_py import config, errors, plugins
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend, list_backends
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer

user = wire.user
ok = wire.chat_reply
CHAT = "/v1/chat/completions"

PLUGIN_SOURCE = """
from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.hookspecs import hookimpl

SPEC = BackendSpec(
    name="fakeprov",
    package="ipfs-accelerate-fakeprov",
    default_base_url="https://fake.invalid",
    api_key_env=("FAKEPROV_API_KEY", "FAKEPROV_TOKEN"),
    base_url_env=("FAKEPROV_BASE_URL",),
    base_url_suffix="/v9",
    model_env=("FAKEPROV_MODEL",),
)

@hookimpl
def register_backends(register):
    register(SPEC)

@hookimpl
def chat(backend, request, settings):
    if backend == "fakeprov":
        return openai_compat.chat_call(request, "fakeprov")
"""

ENV_NAMES = ("FAKEPROV_API_KEY", "FAKEPROV_TOKEN", "FAKEPROV_BASE_URL", "FAKEPROV_MODEL")


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A plugin 'installed' the real way: a dist-info with an entry point on sys.path."""
    (tmp_path / "fakeprov_plugin.py").write_text(PLUGIN_SOURCE)
    dist = tmp_path / "ipfs_accelerate_fakeprov-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ipfs-accelerate-fakeprov\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[ipfs_accelerate.backends]\nfakeprov = fakeprov_plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    yield "fakeprov"
    module = sys.modules.pop("fakeprov_plugin", None)
    if module is not None:
        plugins.unregister(module)


def test_listing_does_not_import_the_plugin(installed_plugin: str) -> None:
    assert installed_plugin in list_backends()
    assert "fakeprov_plugin" not in sys.modules
    backend = get_backend(installed_plugin, api_key="k" * 16)
    assert "fakeprov_plugin" in sys.modules
    assert backend.name == "fakeprov"
    assert backend.settings.base_url == "https://fake.invalid/v9"


def test_plugin_allow_list(installed_plugin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_ACCELERATE_PLUGINS", "someotherplugin")
    assert installed_plugin not in list_backends()
    with pytest.raises(errors.UnknownBackendError):
        get_backend(installed_plugin)


def test_unknown_backend_lists_installed(installed_plugin: str) -> None:
    with pytest.raises(errors.UnknownBackendError) as info:
        get_backend("nosuchthing")
    assert "fakeprov" in str(info.value)
    assert "nosuchthing" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_known_but_missing_backend_names_the_package(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hide every installed plugin, loaded or not, as if it were not installed
    monkeypatch.setenv("IPFS_ACCELERATE_PLUGINS", installed_plugin)
    name = next(n for n in plugins.KNOWN_PACKAGES if n != installed_plugin)
    kept = {k: r for k, r in plugins._registrations.items() if k != name}
    monkeypatch.setattr(plugins, "_registrations", kept)
    assert name not in list_backends()
    with pytest.raises(ImportError) as info:
        get_backend(name)
    assert isinstance(info.value, errors.BackendNotInstalledError)
    package = plugins.KNOWN_PACKAGES[name]
    assert plugins.install_command(package) in str(info.value) and package in str(info.value)


def test_precedence_explicit_metadata_env_dotenv(
    installed_plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / ".env").write_text(
        "FAKEPROV_API_KEY=from-dotenv-000000\nFAKEPROV_MODEL=dotenv-model\n"
        "FAKEPROV_BASE_URL=http://dotenv.invalid\n"
    )
    monkeypatch.chdir(work)
    config.load_dotenv_once.cache_clear()
    try:
        b = get_backend(installed_plugin)
        assert b.settings.api_key == "from-dotenv-000000"
        assert b.settings.default_model == "dotenv-model"
        assert b.settings.base_url == "http://dotenv.invalid/v9"

        monkeypatch.setenv("FAKEPROV_API_KEY", "from-env-0000000000")
        assert get_backend(installed_plugin).settings.api_key == "from-env-0000000000"

        meta = {
            "fakeprov_api_key": "from-meta-000000000",
            "fakeprov_base_url": "http://m.invalid/v9",
        }
        b = get_backend(installed_plugin, metadata=meta)
        assert b.settings.api_key == "from-meta-000000000"
        assert b.settings.base_url == "http://m.invalid/v9"  # suffix already there: kept once

        b = get_backend(installed_plugin, metadata=meta, api_key="explicit-00000000")
        assert b.settings.api_key == "explicit-00000000"
    finally:
        for name in ENV_NAMES:
            os.environ.pop(name, None)
        config.load_dotenv_once.cache_clear()


def test_dotenv_never_overrides_the_environment(
    installed_plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("FAKEPROV_API_KEY=from-dotenv-000000\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKEPROV_API_KEY", "from-env-0000000000")
    config.load_dotenv_once.cache_clear()
    try:
        assert get_backend(installed_plugin).settings.api_key == "from-env-0000000000"
    finally:
        config.load_dotenv_once.cache_clear()


PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy variables in the environment; any a test's ``.env`` put there is removed."""
    names = [*PROXY_NAMES, *(n.lower() for n in PROXY_NAMES)]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    config.load_dotenv_once.cache_clear()
    yield
    for name in [*names, *ENV_NAMES]:
        os.environ.pop(name, None)
    config.load_dotenv_once.cache_clear()


def test_dotenv_is_never_written_into_the_environment(
    loopback_plugin: object,
    protocol_server: ProtocolServer,
    no_proxy_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ProtocolServer() as proxy:
        proxy.on("POST", "/v1/chat/completions", default=wire.chat_reply("via the proxy"))
        (tmp_path / ".env").write_text(
            f"HTTP_PROXY={proxy.base_url}\nALL_PROXY={proxy.base_url}\n"
            "LOOPBACK_API_KEY=sk-from-dotenv-0000000000\n"
        )
        monkeypatch.chdir(tmp_path)
        protocol_server.on("POST", "/v1/chat/completions", default=wire.chat_reply())
        backend = get_backend("loopback", base_url=protocol_server.url("/v1"))
        try:
            assert backend.settings.api_key == "sk-from-dotenv-0000000000"  # .env still works
            assert backend.chat(messages=wire.user(), model="m").text == "ok"
        finally:
            backend.close()
        assert "HTTP_PROXY" not in os.environ and "ALL_PROXY" not in os.environ
        assert "LOOPBACK_API_KEY" not in os.environ
        assert proxy.requests == []  # the .env's proxy never saw the key
        (request,) = protocol_server.requests
        assert request.headers["authorization"] == "Bearer sk-from-dotenv-0000000000"


def test_dotenv_search_stops_at_the_project_root(
    installed_plugin: str, no_proxy_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"  # a writable folder above the project: its .env is ignored
    project = shared / "project"
    work = project / "src" / "pkg"
    work.mkdir(parents=True)
    (shared / ".env").write_text(
        "FAKEPROV_BASE_URL=http://evil.invalid\nFAKEPROV_API_KEY=from-evil-000000000\n"
    )
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(work)
    b = get_backend(installed_plugin, api_key="k" * 16)
    assert b.settings.base_url == "https://fake.invalid/v9"
    with pytest.raises(errors.ConfigurationError, match="no API key"):
        get_backend(installed_plugin).chat(messages=[{"role": "user", "content": "x"}], model="m")

    (project / ".env").write_text("FAKEPROV_MODEL=from-project\n")  # inside: found upwards
    config.load_dotenv_once.cache_clear()
    assert get_backend(installed_plugin, api_key="k" * 16).settings.default_model == "from-project"
    assert config.find_dotenv_file(str(work)) == str(project / ".env")

    (project / "pyproject.toml").unlink()  # no project root at all: only the cwd's own .env
    assert config.find_dotenv_file(str(work)) is None
    assert config.find_dotenv_file(str(project)) == str(project / ".env")


def test_explicit_arguments_and_no_dotenv_switch_beat_dotenv(
    installed_plugin: str, no_proxy_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "FAKEPROV_BASE_URL=http://evil.invalid\nFAKEPROV_API_KEY=from-dotenv-000000\n"
    )
    monkeypatch.chdir(tmp_path)
    b = get_backend(installed_plugin, api_key="explicit-00000000", base_url="http://ok.invalid")
    assert b.settings.base_url == "http://ok.invalid/v9"
    assert b.settings.api_key == "explicit-00000000"
    assert get_backend(installed_plugin).settings.base_url == "http://evil.invalid/v9"
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    b = get_backend(installed_plugin)
    assert b.settings.base_url == "https://fake.invalid/v9" and b.settings.api_key is None


def test_second_env_name_and_metadata_lower_case(
    installed_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKEPROV_TOKEN", "token-00000000000")
    assert get_backend(installed_plugin).settings.api_key == "token-00000000000"
    b = get_backend(installed_plugin, metadata={"fakeprov_model": "m1"})
    assert b.settings.default_model == "m1"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://x.invalid", "http"),
        ("localhost:port", "http"),
        ("http://", "host"),
        ("http://x.invalid/v1?x=1", "query"),
    ],
)
def test_bad_base_urls(installed_plugin: str, url: str, match: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=match):
        get_backend(installed_plugin, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:hunter2-PASSWORD-7xq@x.invalid/v1",
        "https://:hunter2-PASSWORD-7xq@x.invalid",
        "http://hunter2-PASSWORD-7xq@x.invalid",  # a token as the user name
        "http://alice:hunter2-PASSWORD-7xq@[::1]:8080/v1",
    ],
)
def test_credentials_in_a_base_url_are_refused(
    installed_plugin: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx would turn them into "Authorization: Basic", replacing the API key's header
    with pytest.raises(errors.ConfigurationError, match="credentials") as info:
        get_backend(installed_plugin, api_key="k" * 16, base_url=url)
    assert "hunter2" not in str(info.value) and "***@" in str(info.value)
    with pytest.raises(errors.ConfigurationError, match="credentials") as info:
        get_backend(installed_plugin, api_key="k" * 16, metadata={"fakeprov_base_url": url})
    assert "hunter2" not in str(info.value)
    monkeypatch.setenv("FAKEPROV_BASE_URL", url)
    with pytest.raises(errors.ConfigurationError, match="credentials") as info:
        get_backend(installed_plugin, api_key="k" * 16)
    assert "hunter2" not in str(info.value)
    monkeypatch.delenv("FAKEPROV_BASE_URL")
    backend = get_backend(installed_plugin, api_key="k" * 16)
    with pytest.raises(errors.ConfigurationError, match="credentials") as info:
        backend.create_endpoint(base_url=url)
    assert "hunter2" not in str(info.value)
    assert list(backend.endpoints) == ["default"]


def test_an_unparsable_base_url_is_a_configuration_error(installed_plugin: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="not a valid URL"):
        get_backend(installed_plugin, base_url="http://[::1")


def test_idempotency_header_and_keys() -> None:
    spec = config.BackendSpec(
        name="idem", package="x", default_base_url=None, idempotency_header="Idempotency-Key"
    )
    key = config.new_idempotency_key()
    assert re.fullmatch(r"idem_[0-9a-f]{32}", key) and key != config.new_idempotency_key()
    assert spec.idempotency_headers(key) == {"Idempotency-Key": key}
    assert spec.idempotency_headers(None) == {}
    plain = config.BackendSpec(name="plain", package="x", default_base_url=None)
    assert plain.idempotency_header is None and plain.idempotency_headers(key) == {}
    for bad in ("Idempotency Key", "X-Key\r\n", "", 5):
        with pytest.raises(errors.ConfigurationError, match="idempotency_header"):
            config.BackendSpec(name="b", package="x", default_base_url=None, idempotency_header=bad)


def test_base_url_path_prefix_and_suffix(installed_plugin: str) -> None:
    b = get_backend(installed_plugin, base_url="http://proxy.invalid/team-a/")
    assert b.settings.base_url == "http://proxy.invalid/team-a/v9"


def test_unknown_setting_is_rejected(installed_plugin: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="max_concurent_requests"):
        get_backend(installed_plugin, max_concurent_requests=3)


def test_seed_settings_apply(installed_plugin: str) -> None:
    b = get_backend(installed_plugin, max_concurrent_requests=3, circuit_failure_threshold=7)
    assert b.max_concurrent_requests == 3
    assert b.failure_threshold == 7
    b.queue_size = 50
    b.max_retries = 2
    b.key_selection_strategy = "least-loaded"
    assert b.get_queue_info()["capacity"] == 50
    assert b.default_endpoint.retry.max_retries == 2
    assert b.circuit_state == "CLOSED"
    with pytest.raises(errors.ConfigurationError):
        b.key_selection_strategy = "random"


def test_importing_core_imports_no_plugin_or_heavy_dependency() -> None:
    code = textwrap.dedent(
        """
        import sys
        import ipfs_accelerate_py.core as core
        names = core.list_backends()
        heavy = ("httpx", "numpy", "boto3", "dotenv", "ipfs_accelerate_openai")
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_httpx_and_asyncio_load_only_when_needed(tmp_path: Path) -> None:
    """As architecture.md promises: get_backend loads neither httpx nor asyncio; the first
    sync request loads httpx (not asyncio); the first async request loads asyncio."""
    (tmp_path / "fakeprov_plugin.py").write_text(PLUGIN_SOURCE)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import fakeprov_plugin
        from ipfs_accelerate_py import plugins
        from ipfs_accelerate_py.core import get_backend
        plugins.register(fakeprov_plugin)
        b = get_backend(
            "fakeprov", api_key="k" * 16, base_url="http://127.0.0.1:9", max_retries=0
        )
        print("get_backend", "httpx" in sys.modules, "asyncio" in sys.modules)
        try:
            b.chat(messages=[{{"role": "user", "content": "x"}}], model="m")
        except Exception:
            pass
        print("sync call", "httpx" in sys.modules, "asyncio" in sys.modules)
        """
    )
    env = {**os.environ, "IPFS_ACCELERATE_NO_DOTENV": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.splitlines() == ["get_backend False False", "sync call True False"]


# Not needed between `import` and a first sync reply, so not loaded on the way (a guard on
# cold-start time that no timing noise can fail): each costs milliseconds to import, or
# builds classes. (email, hashlib, ssl, platform, inspect and logging come with httpx.)
NOT_ON_THE_WAY_TO_A_FIRST_REPLY = (
    "asyncio",
    "attr",
    "attrs",
    "importlib.metadata",
    "zipfile",
    "numpy",
    "redis",
    "opentelemetry",
    "dotenv",
    "yaml",
    "concurrent.futures",
    "ipfs_accelerate_py.demo",
    "ipfs_accelerate_py.resilience.shared",
    "ipfs_accelerate_py.resilience.state",
    "ipfs_accelerate_py.router",
    "ipfs_accelerate_py.observability.call",
    "ipfs_accelerate_py.observability.otel",
    "ipfs_accelerate_py.api_backends",
    "ipfs_accelerate_py.testing",
)
# ... and not by import + get_backend either, before the first request loads httpx
NOT_BEFORE_THE_FIRST_REQUEST = (
    "httpx",
    "ssl",
    "email",
    "hashlib",
    "importlib.resources",
    "tempfile",
)


def test_a_first_reply_imports_only_what_it_needs(protocol_server: ProtocolServer) -> None:
    """What benchmarks/run.py times as cold start: import, get_backend("openai") and one sync
    chat, in a fresh interpreter; none of the modules above may load on the way."""
    pytest.importorskip("ipfs_accelerate_openai")
    protocol_server.on("POST", CHAT, default=ok("hello"))
    code = textwrap.dedent(
        f"""
        import sys
        from ipfs_accelerate_py.core import get_backend
        b = get_backend("openai", api_key="sk-" + "k" * 20, base_url={protocol_server.url("/v1")!r})
        loaded = lambda names: ",".join(m for m in names if m in sys.modules)
        print(loaded({NOT_ON_THE_WAY_TO_A_FIRST_REPLY + NOT_BEFORE_THE_FIRST_REQUEST!r}))
        print(b.chat(messages=[{{"role": "user", "content": "hi"}}], model="m")["text"])
        print(loaded({NOT_ON_THE_WAY_TO_A_FIRST_REPLY!r}))
        """
    )
    env = {**os.environ, "IPFS_ACCELERATE_NO_DOTENV": "1"}
    env.pop("IPFS_ACCELERATE_REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.splitlines() == ["", "hello", ""]


def test_register_rejects_a_plugin_without_backends() -> None:
    class Empty:
        pass

    with pytest.raises(errors.ConfigurationError, match="register_backends"):
        plugins.register(Empty())
    plugins.unregister(Empty())


def test_timeout_in_metadata_must_be_a_number_of_seconds(
    make_backend: Callable[..., Backend],
) -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        make_backend(metadata={"timeout": "30s"})
    assert "timeout" in str(info.value) and "30s" in str(info.value)

    backend = make_backend(metadata={"timeout": "30"})
    assert backend.settings.timeout == 30.0
    assert isinstance(backend.settings.timeout, float)


@pytest.mark.parametrize(
    "value",
    ["nan", float("nan"), "inf", float("inf"), "1e400"],
    ids=["str-nan", "float-nan", "str-inf", "float-inf", "str-overflow"],
)
def test_timeout_setting_must_be_a_usable_number(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    value: Any,
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    try:
        backend = make_backend(metadata={"timeout": value})
    except errors.ConfigurationError as err:
        refused: errors.ConfigurationError | None = err
    else:
        refused = None
    if refused is not None:
        assert "timeout" in str(refused)
        return
    # accepted (say, as "no timeout"): then a call must work, not fail in the transport
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert clock.sleeps == []


def test_settings_repr_masks_the_key(installed_plugin: str) -> None:
    secret = "sk-proj-SUPERSECRETVALUE9876"
    b = get_backend(installed_plugin, api_key=secret)
    for text in (
        repr(b),
        repr(b.settings),
        repr(b.default_endpoint),
        repr(b.default_endpoint.keys),
    ):
        assert secret not in text
    assert "9876" in repr(b.settings)


def test_get_backend_knows_every_shared_state_setting() -> None:
    """get_backend imports resilience.shared only when one of its settings is given (or
    IPFS_ACCELERATE_REDIS_URL is set): its list of them must be shared.py's."""
    from ipfs_accelerate_py import core
    from ipfs_accelerate_py.resilience import shared

    assert frozenset(shared.SHARED_NAMES) == core._SHARED_NAMES
