"""The committed /console page is exactly what its source builds to.

The page is committed as built (runtime/src/livedub/runtime/server/console_dist/index.html) so the
package, the runtime image and `make run` need no Node.js (runtime/console/vite.config.ts says why).
This test is what keeps that honest: a clean `npm ci` from the lock file and `npm run build` (type
check + Vite) in a scratch copy of runtime/console must reproduce the committed file byte for byte.
After changing the console, `make console` rebuilds it. CI has npm (hack/install.sh, dev target), so
there (``CI=true``) a missing npm fails the test instead of skipping it: a skip would hide a stale page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "runtime" / "console"
COMMITTED = ROOT / "runtime" / "src" / "livedub" / "runtime" / "server" / "console_dist" / "index.html"

pytestmark = pytest.mark.slow


def test_committed_console_bundle_matches_a_clean_build(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        reason = "needs npm (hack/install.sh installs it for the dev target)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(reason + ", and CI must check the committed console")
        pytest.skip(reason)
    work = tmp_path / "console"
    shutil.copytree(SOURCE, work, ignore=shutil.ignore_patterns("node_modules"))
    env = {**os.environ, "CONSOLE_OUT_DIR": str(tmp_path / "out"), "npm_config_update_notifier": "false"}
    for command in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "build"]):
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    built = (tmp_path / "out" / "index.html").read_bytes()
    assert built == COMMITTED.read_bytes(), "the committed console is stale: run `make console` and commit the result"


def test_committed_console_is_self_contained() -> None:
    """Nothing to fetch at run time: no script by URL, no link but the inline (data:) favicon.
    (In the browser the page's Content-Security-Policy refuses anything else: test_console_browser.)"""
    html = COMMITTED.read_text()
    assert not re.findall(r"<script\b[^>]*\bsrc=", html)
    links = re.findall(r"<link\b[^>]*>", html)
    assert links == ['<link rel="icon" href="data:," />'], links
