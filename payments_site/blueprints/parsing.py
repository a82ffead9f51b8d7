"""Request parsing shared by the JSON routes: bodies, ids and integers, with clear 400s."""

from __future__ import annotations

from typing import Any

from flask import request

from payments_site.errors import InvalidRequest


def json_body() -> dict[str, Any]:
    """The request's JSON object; 400 for malformed JSON or anything but an object."""
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data(cache=True).strip():
            raise InvalidRequest("The request body is not valid JSON.")
        return {}
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def strict_int(value: Any, param: str, *, minimum: int | None = None,
               maximum: int | None = None) -> int:
    """An integer given as a JSON integer (not 1.5, "1e3", true); bounds checked."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{param} must be an integer.", param=param)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"{param} must be at least {minimum}.", param=param)
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"{param} must be at most {maximum}.", param=param)
    return value
