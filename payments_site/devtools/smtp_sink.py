"""An SMTP server that accepts every message and keeps it (in memory, and as .eml files)."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from payments_site.private_files import private_directory, write_private


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.sink._store(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        return "250 Message accepted for delivery"


class MailSink:
    """A real SMTP server on loopback; `messages` are parsed, `raw` the bytes received."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 directory: Path | None = None) -> None:
        self.directory = directory
        if directory is not None:
            private_directory(directory)
        self._lock = threading.Lock()
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.controller = Controller(_Handler(self), hostname=host, port=port or _free_port())

    @property
    def host(self) -> str:
        return str(self.controller.hostname)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def clear(self) -> None:
        with self._lock:
            self.raw.clear()
            self.envelopes.clear()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            raw = list(self.raw)
        return [email.message_from_bytes(b, policy=email.policy.default)
                for b in raw]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.raw) >= count:
                break
            time.sleep(0.05)
        return self.messages

    def _store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
        with self._lock:
            self.raw.append(content)
            self.envelopes.append((mail_from, rcpt_tos))
            index = len(self.raw)
        if self.directory is not None:
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{index:05d}.eml"
            write_private(self.directory / name, content)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
