"""JSON on the wire without float: Decimals are written as exact numbers and read back as such."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import simplejson


def _raw_decimals(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite amount")
        # Plain positional notation: "100.50", never "1E+2" or a float artefact.
        return simplejson.RawJSON(format(value, "f"))
    if isinstance(value, float):
        raise TypeError("float on the wire: use Decimal for money")
    if isinstance(value, dict):
        return {key: _raw_decimals(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_raw_decimals(item) for item in value]
    return value


def dump_json(payload: dict[str, Any]) -> bytes:
    """Serialise once; the returned bytes are what gets signed and sent."""
    text: str = simplejson.dumps(_raw_decimals(payload), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def load_json(content: bytes) -> Any:
    return json.loads(content, parse_float=Decimal)
