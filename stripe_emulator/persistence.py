# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Where the emulator's state lives: memory only, or one pickle file under --data DIR."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from . import idempotency, webhooks
from .localstripe_seam import quiet_store, store

log = logging.getLogger("stripe_emulator.persistence")
_path: Path | None = None


def configure(data_dir: str | None) -> None:
    """Stop localstripe writing /tmp/localstripe.pickle on every change; use DIR (or nothing)."""
    global _path
    # localstripe dumps the whole store on each __setitem__: slow, and outside our data dir.
    quiet_store(save, load)
    if data_dir is None:
        _path = None
        return
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the pickle itself is 0600
    _path = directory / "stripe_emulator.pickle"


def enabled() -> bool:
    return _path is not None


def load() -> None:
    if _path is None or not _path.exists():
        return
    with _path.open("rb") as f:
        state: dict[str, Any] = pickle.load(f)
    store.clear()
    store.update(state.get("store", {}))
    idempotency.entries.update(state.get("idempotency", {}))
    webhooks.endpoints.update(state.get("webhooks", {}))
    log.info("loaded %d objects from %s", len(store), _path)


def save() -> None:
    """Atomically replace the pickle (write a temp file in DIR, then rename)."""
    if _path is None:
        return
    state = {"store": dict(store), "idempotency": dict(idempotency.entries),
             "webhooks": dict(webhooks.endpoints)}
    fd, tmp = tempfile.mkstemp(dir=_path.parent, prefix=".stripe_emulator.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, _path)
    except BaseException:
        os.unlink(tmp)
        raise
