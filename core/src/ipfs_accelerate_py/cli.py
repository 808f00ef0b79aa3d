"""The ``ipfs-accelerate`` command.

``ipfs-accelerate backends [--check]``   installed backends, their configuration (keys
                                         masked) and, with --check, whether each answers
``ipfs-accelerate demo``                 every installed backend against a loopback server of
                                         its protocol, with a rate limit and an outage on the way
``ipfs-accelerate chat -m openai:gpt-4o-mini "Hello"``   a prompt, streamed as it arrives
``ipfs-accelerate embed -m openai:text-embedding-3-small "some text"``   vectors, as JSON lines
``ipfs-accelerate models groq --category chat``          a backend's models
``ipfs-accelerate check openai --max-concurrent 2 -m gpt-4o-mini``   a live smoke test
``ipfs-accelerate usage``                usage and cost counted in this process

Exit codes: 0 success, 1 the provider or the connection failed (or a check did not pass),
2 bad arguments or configuration (unknown backend, missing key, no model), 130 interrupted.
Errors are one line on stderr; ``IPFS_ACCELERATE_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import BackendError, ConfigurationError, InvalidArgumentError


def _demo(args: argparse.Namespace) -> int:
    from . import plugins
    from .demo import run_demos

    installed = plugins.installed_backends()
    for name in args.backends:
        if name not in installed:
            plugins.load(name)  # raises the one-line "no backend named" error: exit 2
    logging.basicConfig(level=logging.ERROR, format="  log: %(message)s")
    steps = run_demos(args.backends or None)
    return 0 if steps and all(s.ok for s in steps) else 1


def _parser() -> argparse.ArgumentParser:
    from .commands import backends, smoke, talk

    parser = argparse.ArgumentParser(
        prog="ipfs-accelerate",
        description="One interface to many LLM API providers.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    backends.add_parser(sub)
    demo = sub.add_parser(
        "demo", help="run every installed backend against a loopback server of its protocol"
    )
    demo.add_argument("backends", nargs="*", help="only these backends")
    demo.set_defaults(run=_demo)
    talk.add_parsers(sub)
    smoke.add_parser(sub)
    return parser


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _exit_code(exc: BackendError) -> int:
    return 2 if isinstance(exc, (ConfigurationError, InvalidArgumentError)) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipfs-accelerate`` command: one line on stderr for any error."""
    from .commands.common import EXIT_INTERRUPTED

    args = _parser().parse_args(argv)
    warnings.showwarning = _show_warning
    debug = os.environ.get("IPFS_ACCELERATE_DEBUG", "") not in ("", "0")
    try:
        return int(args.run(args))
    except BackendError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one line, the traceback on request
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} "
            "(set IPFS_ACCELERATE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
