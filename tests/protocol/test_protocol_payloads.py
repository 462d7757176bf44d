"""IbkrSubscriptionProcessor: the seed's semantics and docstring examples, JSON as json.dumps writes it.

(tests/ibind/test_ibind_payloads.py compares every case with IBind 0.1.14 itself.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rxibkr.protocol import ArgumentTypeError, IbkrSubscriptionProcessor, SubscriptionProcessor

PROCESSOR = IbkrSubscriptionProcessor()


def _json_part(payload: str, prefix: str) -> Any:
    assert payload.startswith(prefix)
    return json.loads(payload[len(prefix) :])


def test_seed_docstring_examples() -> None:
    # make_subscribe_payload('md', {'foo': 'bar'}) returns "smd+{"foo": "bar"}"
    with_data = PROCESSOR.make_subscribe_payload("md", {"foo": "bar"})
    assert _json_part(with_data, "smd+") == json.loads('{"foo": "bar"}')
    assert with_data == 'smd+{"foo": "bar"}'
    # make_subscribe_payload('md') returns "smd"
    assert PROCESSOR.make_subscribe_payload("md") == "smd"
    # make_unsubscribe_payload('md', {'foo': 'bar'}) returns "umd+{"foo": "bar"}"
    assert PROCESSOR.make_unsubscribe_payload("md", {"foo": "bar"}) == 'umd+{"foo": "bar"}'
    # make_unsubscribe_payload('md') returns "umd+{}"
    assert PROCESSOR.make_unsubscribe_payload("md") == "umd+{}"


def test_brief_examples() -> None:
    payload = PROCESSOR.make_subscribe_payload("md+265598", {"fields": ["31"]})
    assert payload == 'smd+265598+{"fields": ["31"]}'
    assert PROCESSOR.make_subscribe_payload("or", {}) == "sor+{}"
    assert PROCESSOR.make_subscribe_payload("sd+DU1234567") == "ssd+DU1234567"
    assert PROCESSOR.make_unsubscribe_payload("md+265598") == "umd+265598+{}"
    assert PROCESSOR.make_unsubscribe_payload("md+265598", {}) == "umd+265598+{}"


def test_is_a_subscription_processor_and_the_base_is_abstract() -> None:
    assert isinstance(PROCESSOR, SubscriptionProcessor)
    with pytest.raises(TypeError):
        SubscriptionProcessor()  # type: ignore[abstract]


@pytest.mark.parametrize("method", ["make_subscribe_payload", "make_unsubscribe_payload"])
@pytest.mark.parametrize("channel", [None, 5, b"md"])
def test_channel_of_wrong_type(method: str, channel: object) -> None:
    with pytest.raises(ArgumentTypeError, match="channel"):
        getattr(PROCESSOR, method)(channel)
    with pytest.raises(TypeError, match="channel"):
        getattr(PROCESSOR, method)(channel)


@pytest.mark.parametrize("method", ["make_subscribe_payload", "make_unsubscribe_payload"])
def test_empty_channel(method: str) -> None:
    with pytest.raises(ValueError, match="channel"):
        getattr(PROCESSOR, method)("")


@pytest.mark.parametrize("method", ["make_subscribe_payload", "make_unsubscribe_payload"])
@pytest.mark.parametrize("data", [[], "x", 3, {(1,): "tuple key"}, {"x": object()}])
def test_data_of_wrong_type(method: str, data: object) -> None:
    with pytest.raises(ValueError, match="data"):
        getattr(PROCESSOR, method)("md", data)


def test_json_dumps_semantics() -> None:
    keys: dict[Any, str] = {1: "a", None: "b"}  # json.dumps turns non-str keys into strings
    assert PROCESSOR.make_subscribe_payload("md", keys) == 'smd+{"1": "a", "null": "b"}'
    assert PROCESSOR.make_subscribe_payload("md", {"n": 2**70}) == 'smd+{"n": 1180591620717411303424}'
    assert PROCESSOR.make_unsubscribe_payload("md", {"x": float("nan")}) == 'umd+{"x": NaN}'
