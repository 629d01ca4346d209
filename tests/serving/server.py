"""Start the BentoML service on a free loopback port for a test, and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).with_name("bentoml")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """`bentoml serve serving.service:NboService` in its own process group, on 127.0.0.1."""

    def __init__(self, environment: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.environment = {**os.environ, **environment}
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            [str(BENTOML), "serve", "serving.service:NboService", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the service did not become ready in {timeout} s; see {self.log_path}")

    def _workers(self) -> list[psutil.Process]:
        """The server's descendants (BentoML workers run in their own sessions, so not in our group)."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the server and every worker at once, as a crash would."""
        if self.process is None or self.process.poll() is not None:
            return
        workers = self._workers()
        for process in [psutil.Process(self.process.pid), *workers]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        psutil.wait_procs(workers, timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        workers = self._workers()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
            _, alive = psutil.wait_procs(workers, timeout=10)
        except subprocess.TimeoutExpired:
            alive = workers
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
