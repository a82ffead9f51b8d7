"""Start or find the real services the tests run against (emulator, PostgreSQL, Redis, SMTP)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_SCHEMAS = ROOT / "tests" / "contract" / "schemas"


def contract_failures(report: dict[str, Any], strict_keys: tuple[str, ...] = ()) -> list[str]:
    """The contract violations that fail the suite, one line each.

    Every response and event must match Stripe's schemas. A request that does not match is a
    failure when the emulator accepted it (Stripe would have refused it), or whoever sent it
    when it came with one of `strict_keys` (the app's own API key): tests of the emulator send
    wrong inputs on purpose, and the emulator must refuse those.
    """
    lines = []
    for v in report.get("violations", []):
        if v["kind"] == "request" and v.get("status", 0) >= 400 and \
                not any(k.endswith(v.get("key") or "\0") for k in strict_keys):
            continue
        status = f" → {v['status']}" if "status" in v else ""
        rid = f" ({v['request_id']})" if v.get("request_id") else ""
        lines.append(f"{v['kind']} {v['where']}{status}{rid}:")
        lines.extend(f"    {error}" for error in v["errors"])
    return lines


def read_contract(url: str) -> dict[str, Any]:
    """The emulator's contract report, cleared once read."""
    response = requests.get(f"{url}/_config/contract", params={"clear": "true"}, timeout=60)
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    return report


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


class EmulatorProcess:
    """The Stripe emulator as a separate process on a free loopback port."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1",
               "--port", str(self.port), "--contract", str(CONTRACT_SCHEMAS)]
        if data_dir is not None:
            cmd += ["--data", str(data_dir)]
        self.log_path = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-results"))
        self.log_path.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path / f"emulator-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port("127.0.0.1", self.port)

    def contract_failures(self, strict_keys: tuple[str, ...] = ()) -> list[str]:
        """What broke Stripe's schemas since the last call (see `contract_failures`)."""
        return contract_failures(read_contract(self.url), strict_keys)

    def reset(self) -> None:
        """Wipe all emulator data, webhooks and faults between tests."""
        requests.delete(f"{self.url}/_config/data", timeout=5)
        requests.delete(f"{self.url}/_config/faults", timeout=5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


POSTGRES_START = ("pg_ctlcluster --skip-systemctl-redirect "
                  "$(ls /etc/postgresql) main start")
REDIS_START = ('redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
               '--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log')


def ensure_service(name: str, port: int, start_command: str) -> bool:
    """True when the service answers on loopback, starting it if it is installed but down.

    On CI the real service is required: failing to reach it is an error, not a fallback.
    """
    if _answers("127.0.0.1", port):
        return True
    binary = "pg_ctlcluster" if name == "postgresql" else "redis-server"
    if subprocess.run(["sh", "-c", f"command -v {binary}"], capture_output=True).returncode == 0:
        subprocess.run(["sh", "-c", start_command], capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _answers("127.0.0.1", port):
                return True
            time.sleep(0.2)
    if on_ci():
        raise RuntimeError(f"CI needs {name} on 127.0.0.1:{port} and it could not be started")
    return False


def postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
