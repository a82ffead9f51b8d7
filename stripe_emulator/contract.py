# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
#
# This program is free software: you can redistribute it and/or modify it under the terms of
# the GNU General Public License as published by the Free Software Foundation, either version 3
# of the License, or (at your option) any later version. This program is distributed in the hope
# that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
"""Contract checks (`--contract DIR`): every /v1 request, response and event against Stripe's
published JSON Schemas, with each violation recorded for `GET /_config/contract`.

DIR holds the schemas of tests/contract/schemas/: one file per object (`charge.json`…,
`error.json`), `requests/*.json` and `operations.json` (which request and response schema each
route has). Requests arrive form-encoded, so strings are read as the integers and booleans the
schema asks for before validating. Off (the default), nothing here runs.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ERROR_ENVELOPE = {"type": "object", "required": ["error"], "additionalProperties": False,
                  "properties": {"error": {"$ref": "error.json"}}}
MAX_VIOLATIONS = 500
MAX_ERRORS = 10
MAX_PENDING = 2000


@dataclass
class Operation:
    method: str
    path: str
    pattern: re.Pattern[str]
    request: Any  # a jsonschema validator
    request_schema: dict[str, Any]
    response: Any


@dataclass
class Checker:
    """The loaded schemas and the violations seen so far."""

    operations: list[Operation]
    objects: dict[str, Any]  # object name -> validator
    error: Any
    violations: list[dict[str, Any]] = field(default_factory=list)
    pending: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    checked: int = 0

    # ---- queueing: requests answer at full speed; checks run when violations are read

    def queue_exchange(self, method: str, path: str, params: dict[str, Any], status: int,
                       body: bytes, *, caller: str, key: str, request_id: str) -> None:
        self._queue("exchange", (method, path, params, status, body),
                    {"caller": caller, "key": key, "request_id": request_id})

    def queue_event(self, event: dict[str, Any]) -> None:
        self._queue("event", (event,), {})

    def _queue(self, kind: str, args: tuple[Any, ...], extra: dict[str, Any]) -> None:
        self.pending.append((kind, args, extra))
        if len(self.pending) > MAX_PENDING:
            self.run_pending()

    def run_pending(self) -> None:
        pending, self.pending = self.pending, []
        for kind, args, extra in pending:
            self.checked += 1
            if kind == "event":
                self.check_event(*args)
                continue
            method, path, params, status, body = args
            if extra["caller"] == "secret":
                # Stripe.js's own calls (publishable key) are Stripe's client, not the app's.
                self.check_request(method, path, params, status=status, **extra)
            try:
                data = json.loads(body) if body else None
            except ValueError:
                self.record("response", f"{method} {path}", ["body is not JSON"],
                            status=status, **extra)
                continue
            self.check_response(method, path, status, data, **extra)

    def report(self, clear: bool = False) -> dict[str, Any]:
        self.run_pending()
        result = {"enabled": True, "checked": self.checked, "violations": list(self.violations)}
        if clear:
            self.violations.clear()
        return result

    def operation(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.pattern.fullmatch(path):
                return op
        return None

    def record(self, kind: str, where: str, errors: list[str], **extra: Any) -> None:
        if errors and len(self.violations) < MAX_VIOLATIONS:
            self.violations.append({"kind": kind, "where": where, "errors": errors[:MAX_ERRORS],
                                    "at": time.time(), **extra})

    # ---- checks

    def check_request(self, method: str, path: str, params: dict[str, Any], *, status: int,
                      caller: str, key: str, request_id: str) -> None:
        op = self.operation(method, path)
        if op is None:
            return
        data = coerce_form(params, op.request_schema, op.request_schema)
        self.record("request", f"{method} {op.path}", _errors(op.request, data),
                    status=status, caller=caller, key=key, request_id=request_id)

    def check_response(self, method: str, path: str, status: int, body: Any, *,
                       caller: str, key: str, request_id: str) -> None:
        where = f"{method} {path}"
        if status >= 400:
            errors = _errors(self.error, body)
        else:
            op = self.operation(method, path)
            if op is None:
                return
            where = f"{method} {op.path}"
            errors = _errors(op.response, body)
        self.record("response", where, errors, status=status, caller=caller, key=key,
                    request_id=request_id)

    def check_event(self, event: dict[str, Any]) -> None:
        where = f"event {event.get('type')}"
        errors = _errors(self.objects["event"], event)
        obj = (event.get("data") or {}).get("object")
        name = obj.get("object") if isinstance(obj, dict) else None
        if isinstance(name, str) and name in self.objects:
            errors += [f"data.object.{e}" for e in _errors(self.objects[name], obj)]
        self.record("event", where, errors, event=event.get("id"))


def _errors(validator: Any, data: Any) -> list[str]:
    found = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {_short(e)}"
            for e in found]


def _short(error: Any) -> str:
    # anyOf errors name every alternative; the deepest sub-error says what actually failed.
    if error.context:
        best = min(error.context, key=lambda e: (-len(e.absolute_path), len(e.message)))
        return f"{best.message}" if best.absolute_path == error.absolute_path else \
            f"{'.'.join(str(p) for p in best.relative_path)}: {best.message}"
    message: str = error.message
    return message if len(message) < 300 else message[:300] + "…"


# --------------------------------------------------------------------------- form values


def coerce_form(value: Any, schema: Any, root: dict[str, Any]) -> Any:
    """Read form strings as the integers/booleans the schema wants (Stripe's form encoding
    carries everything as text)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return value
    if "anyOf" in schema:
        options = [_resolve(s, root) for s in schema["anyOf"]]
        if isinstance(value, dict):
            obj = next((o for o in options if o.get("type") == "object"), None)
            return coerce_form(value, obj, root) if obj else value
        if isinstance(value, list):
            arr = next((o for o in options if o.get("type") == "array"), None)
            return coerce_form(value, arr, root) if arr else value
        if isinstance(value, str) and not any(o.get("type") == "string" or
                                              value in o.get("enum", ()) for o in options):
            for option in options:
                converted = coerce_form(value, option, root)
                if converted is not value:
                    return converted
        return value
    kind = schema.get("type")
    if isinstance(value, str):
        if kind == "integer" and re.fullmatch(r"-?\d+", value):
            return int(value)
        if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return float(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
        return value
    if isinstance(value, dict) and kind == "object":
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce_form(v, props.get(k, extra if isinstance(extra, dict) else None),
                               root) for k, v in value.items()}
    if isinstance(value, list) and kind == "array":
        return [coerce_form(v, schema.get("items"), root) for v in value]
    return value


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    while isinstance(schema, dict) and str(schema.get("$ref", "")).startswith("#/$defs/"):
        schema = root["$defs"][schema["$ref"][len("#/$defs/"):]]
    return schema


# --------------------------------------------------------------------------- loading


def load(directory: str | Path, *, check_schemas: bool = False) -> Checker:
    """Read the schemas under `directory`; fails loudly when any is missing or not JSON.

    `check_schemas` also checks each file against the draft 2020-12 metaschema: that takes
    seconds, so the emulator skips it at start-up and tests/contract checks the files once.
    """
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    base = Path(directory)
    ops_file = json.loads((base / "operations.json").read_text(encoding="utf-8"))
    resources = []
    names = []
    for path in sorted(base.glob("*.json")):
        if path.name == "operations.json":
            continue
        contents = json.loads(path.read_text(encoding="utf-8"))
        if check_schemas:
            Draft202012Validator.check_schema(contents)
        resources.append((path.name, Resource.from_contents(contents)))
        names.append(path.stem)
    registry: Registry[Any] = Registry().with_resources(resources)

    def validator(schema: dict[str, Any]) -> Any:
        return Draft202012Validator(schema, registry=registry)

    def response_validator(response: str) -> Any:
        if response.startswith("list:"):
            item = response[len("list:"):]
            return validator({"type": "object", "additionalProperties": False,
                              "required": ["data", "has_more", "object", "url"],
                              "properties": {"data": {"type": "array",
                                                      "items": {"$ref": f"{item}.json"}},
                                             "has_more": {"type": "boolean"},
                                             "object": {"enum": ["list"]},
                                             "url": {"type": "string"}}})
        return validator({"$ref": f"{response}.json"})

    operations = []
    for op in ops_file["operations"]:
        schema = json.loads((base / op["request"]).read_text(encoding="utf-8"))
        if check_schemas:
            Draft202012Validator.check_schema(schema)
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(op["path"])))
        operations.append(Operation(op["method"], op["path"], pattern, validator(schema),
                                    schema, response_validator(op["response"])))
    objects = {name: validator({"$ref": f"{name}.json"}) for name in names}
    return Checker(operations, objects, validator(ERROR_ENVELOPE))


checker: Checker | None = None


def configure(directory: str | None) -> None:
    global checker
    checker = load(directory) if directory else None
