"""Tests that need every plugin installed: the whole quickstart guide and the command line."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # guide_world and cli_world (importlib mode)
