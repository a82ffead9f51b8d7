"""Files and folders only their owner may read: the instance folder (database, secret key), the
dev stack's mail sink and logs. Created with these modes whatever the process's umask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """`path` (and missing parents) as a directory only its owner can enter; an existing one
    of ours is tightened too."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(DIRECTORY_MODE)
    return path


def open_private(path: Path, mode: str = "ab") -> IO[bytes]:
    """`path` opened for writing bytes (`ab` or `wb`), created 0600 (an existing file of ours
    is made 0600 too)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    if os.fstat(fd).st_uid == os.getuid():
        os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode)


def touch_private(path: Path) -> Path:
    """`path` existing as a 0600 file (its content kept)."""
    with open_private(path, "ab"):
        pass
    return path


def write_private(path: Path, data: bytes) -> None:
    with open_private(path, "wb") as file:
        file.write(data)
