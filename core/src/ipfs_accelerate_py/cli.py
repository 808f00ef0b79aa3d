"""The ``ipfs-accelerate`` command.

``ipfs-accelerate backends``   list installed backends
``ipfs-accelerate demo``       run every installed backend against a loopback server speaking
                               its protocol, with a rate limit and an outage on the way
``ipfs-accelerate chat -b openai -m gpt-4o-mini "Hello"``   a real call with your configuration
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .errors import BackendError


def _backends(_: argparse.Namespace) -> int:
    from .core import list_backends
    from .plugins import KNOWN_PACKAGES

    installed = list_backends()
    for name in sorted(set(KNOWN_PACKAGES) | set(installed)):
        state = "installed" if name in installed else f"pip install {KNOWN_PACKAGES[name]}"
        print(f"{name:10} {state}")
    return 0


def _chat(args: argparse.Namespace) -> int:
    from .core import get_backend

    with get_backend(args.backend) as backend:
        messages = [{"role": "user", "content": args.prompt}]
        if args.stream:
            for chunk in backend.stream(messages=messages, model=args.model):
                print(chunk.text, end="", flush=True)
            print()
        else:
            print(backend.chat(messages=messages, model=args.model).text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demos

    logging.basicConfig(level=logging.ERROR, format="  log: %(message)s")
    steps = run_demos(args.backends or None)
    return 0 if steps and all(s.ok for s in steps) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipfs-accelerate`` command."""
    parser = argparse.ArgumentParser(prog="ipfs-accelerate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list backends and how to install them").set_defaults(
        run=_backends
    )
    demo = sub.add_parser(
        "demo", help="run every installed backend against a loopback server of its protocol"
    )
    demo.add_argument("backends", nargs="*", help="only these backends")
    demo.set_defaults(run=_demo)
    chat = sub.add_parser("chat", help="send one prompt with your configuration")
    chat.add_argument("prompt")
    chat.add_argument("-b", "--backend", default="openai")
    chat.add_argument("-m", "--model", default=None)
    chat.add_argument("--stream", action="store_true")
    chat.set_defaults(run=_chat)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
