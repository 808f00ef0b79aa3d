"""The user's quickstart guide, shipped with core, and its Python code blocks for tests.

``quickstart_guide.md`` beside this module is the guide exactly as the user wrote it. Tests
run its examples as written (only credentials and base URLs come from the environment)::

    for block in python_blocks("Using Claude API"):
        run_block(block)

The guide leaves one fence unclosed (its Gemini example runs into "## Advanced Features");
the reader treats a fence line that names a language as ending the open block and starting a
new one, and ends a block at a heading line, which is where the author meant it to end.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import attrs

__all__ = ["GUIDE", "CodeBlock", "blocks", "python_blocks", "run_block"]

GUIDE = Path(__file__).with_name("quickstart_guide.md")


@attrs.frozen
class CodeBlock:
    """One fenced code block: its language, the headings above it, its text and line."""

    language: str
    headings: tuple[str, ...]
    code: str
    line: int

    def under(self, heading: str) -> bool:
        """Whether the block sits under a heading with this text."""
        return heading in self.headings


def blocks(text: str | None = None) -> list[CodeBlock]:
    """Every fenced code block of the guide (or of ``text``), in order."""
    if text is None:
        text = GUIDE.read_text(encoding="utf-8")
    out: list[CodeBlock] = []
    headings: dict[int, str] = {}
    lang: str | None = None
    start = 0
    body: list[str] = []

    def close() -> None:
        nonlocal lang
        if lang is not None:
            trail = tuple(headings[level] for level in sorted(headings))
            out.append(CodeBlock(lang, trail, "\n".join(body).strip("\n") + "\n", start))
        lang = None
        body.clear()

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            info = stripped[3:].strip()
            if lang is not None and not info:
                close()
                continue
            close()
            lang, start = info or "text", number + 1
            continue
        if lang is not None and line.startswith("##") and line.lstrip("#").startswith(" "):
            close()  # a markdown heading (## or deeper) ends a block left unclosed
        if lang is None and line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            if line[level : level + 1] == " ":
                headings = {k: v for k, v in headings.items() if k < level}
                headings[level] = line[level:].strip()
            continue
        if lang is not None:
            body.append(line)
    close()
    return out


def python_blocks(heading: str | None = None) -> list[CodeBlock]:
    """The guide's Python blocks, optionally only those under ``heading``."""
    return [b for b in blocks() if b.language == "python" and (heading is None or b.under(heading))]


def run_block(block: CodeBlock, namespace: dict[str, Any] | None = None) -> str:
    """Execute a block as written and return what it printed."""
    out = io.StringIO()
    scope: dict[str, Any] = {"__name__": "__guide__"} if namespace is None else namespace
    code = compile(block.code, f"<guide line {block.line}>", "exec")
    with contextlib.redirect_stdout(out):
        exec(code, scope)
    return out.getvalue()
