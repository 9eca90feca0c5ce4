"""Run ``livedub serve`` as a separate process for benchmarks (the client must not share its GIL)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    startup_s: float

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return response.read().decode()

    def metric(self, name: str) -> float | None:
        match = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.M)
        return float(match.group(1)) if match else None

    def rss_mb(self) -> float:
        value = self.metric("process_resident_memory_bytes")
        return (value or 0.0) / 2**20


@contextmanager
def serve(log_path: Path, **env: str) -> Iterator[RunningServer]:
    port = free_port()
    environment = {**os.environ, "PORT": str(port), "LOG_LEVEL": "WARNING", **env}
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "livedub.runtime.cli", "serve"], env=environment, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = started + 180
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited; see {log_path}")
                try:
                    with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.perf_counter() > deadline:
                    raise TimeoutError("server not ready in 180 s")
                time.sleep(0.1)
            yield RunningServer(url, process, time.perf_counter() - started)
        finally:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
