"""Signing matches the documented test vector; money never becomes a float on the wire."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.providers.cryptoprocessing import sign
from bot.providers.wire import dump_json, load_json

DOC_SECRET = b"AbCdEfG123456"
DOC_BODY = b'{"currency":"BTC","foreign_id":"123456"}'
DOC_SIGNATURE = (
    "03c25fcf7cd35e7d995e402cd5d51edd72d48e1471e865907967809a0c189ba5"
    "5b90815f20e2bb10f82c7a9e9d865546fda58989c2ae9e8e2ff7bc29195fa1ec"
)


def test_signature_matches_the_documented_test_vector() -> None:
    assert sign(DOC_SECRET, DOC_BODY) == DOC_SIGNATURE


def test_the_bytes_we_sign_are_the_compact_json_we_send() -> None:
    assert dump_json({"currency": "BTC", "foreign_id": "123456"}) == DOC_BODY


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.1") + Decimal("0.2"), b"0.3"),
        (Decimal("100"), b"100"),
        (Decimal("1234.50"), b"1234.50"),
        (Decimal("1E+2"), b"100"),
        (Decimal("0.00000001"), b"0.00000001"),
    ],
)
def test_decimals_are_written_as_exact_plain_numbers(amount: Decimal, text: bytes) -> None:
    body = dump_json({"amount": amount})
    assert body == b'{"amount":' + text + b"}"
    assert load_json(body)["amount"] == amount


def test_floats_and_non_finite_amounts_never_reach_the_wire() -> None:
    with pytest.raises(TypeError):
        dump_json({"amount": 0.1})
    with pytest.raises(ValueError, match="non-finite"):
        dump_json({"amount": Decimal("NaN")})


def test_non_ascii_names_are_sent_as_utf8() -> None:
    assert dump_json({"last_name": "Müller"}) == '{"last_name":"Müller"}'.encode()
