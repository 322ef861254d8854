"""docs/walkthrough.md is run as written: every ``sh`` block, in order, in one bash session
against the platform, each block's output compared with the ``text`` block that follows it
(``…`` matches anything on its line). The walkthrough describes a fresh platform (only the
demo data), so this module runs before the other system tests (see ``conftest.py``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

WALKTHROUGH = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def blocks(markdown: str) -> list[tuple[str, str | None]]:
    """(command block, expected output or None) pairs, in the page's order."""
    fenced = FENCE.findall(markdown)
    pairs: list[tuple[str, str | None]] = []
    for i, (lang, body) in enumerate(fenced):
        if lang == "sh":
            following = fenced[i + 1] if i + 1 < len(fenced) else None
            pairs.append((body, following[1] if following and following[0] == "text" else None))
    return pairs


def matches(expected: str, actual: str) -> bool:
    want, got = expected.rstrip("\n").splitlines(), actual.rstrip("\n").splitlines()
    if len(want) != len(got):
        return False
    return all(re.fullmatch(".*".join(re.escape(part) for part in w.split("…")), g.rstrip()) for w, g in zip(want, got))


def test_the_page_has_commands_and_outputs():
    pairs = blocks(WALKTHROUGH.read_text())
    assert len(pairs) >= 8 and sum(1 for _, out in pairs if out) >= 8
    assert matches('{"id":"…","n":1}', '{"id":"3f2a","n":1}') and not matches('{"n":1}', '{"n":2}')


def test_the_walkthrough_runs_as_written(platform_stack, tmp_path):
    assert shutil.which("jq") and shutil.which("curl"), "the walkthrough needs curl and jq"
    pairs = blocks(WALKTHROUGH.read_text())
    marker = f"--- block {uuid.uuid4().hex} ---"
    script = ["set -euo pipefail"]
    for command, _ in pairs:
        script += [command, f"echo '{marker}'"]
    env = {**os.environ, "PILAR_GATEWAY_URL": platform_stack.url("gateway"), "PILAR_RUN_DIR": str(platform_stack.run_dir)}
    done = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=WALKTHROUGH.parents[1])
    outputs = done.stdout.split(marker + "\n")
    ran = len(outputs) - 1
    assert done.returncode == 0 and ran == len(pairs), (
        f"block {ran + 1} failed (exit {done.returncode}):\n{pairs[min(ran, len(pairs) - 1)][0]}\nstderr: {done.stderr[-2000:]}")
    wrong = [f"this block:\n{command}\nprinted:\n{actual}\nbut the page says:\n{expected}"
             for (command, expected), actual in zip(pairs, outputs) if expected is not None and not matches(expected, actual)]
    assert not wrong, "\n\n".join(wrong)
