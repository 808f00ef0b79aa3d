"""``ipfs-accelerate demo groq``: the plugin's scenario runs every step against its server."""

from __future__ import annotations

import io

from ipfs_accelerate_py.demo import run_demos


def test_demo_scenario_passes() -> None:
    out = io.StringIO()
    steps = run_demos(["groq"], out=out)
    text = out.getvalue()
    assert [s.name for s in steps] == [
        "chat (after a 429 and a 503)",
        "JSON mode",
        "stream",
        "models (live + catalogue)",
        "achat + astream",
        "usage and cost",
    ]
    assert all(s.ok for s in steps), text
    assert "x_groq usage: 21 tokens" in text
    assert "{'chat': 6, 'vision': 1, 'audio': 2}" in text
    assert "gsk_demo_not_a_real_key_0000" not in text
