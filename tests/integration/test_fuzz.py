"""Garbage on every command topic never stops the agent (hypothesis, real broker)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient


def _values(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none() | st.booleans() | ints | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )


json_values = _values(st.integers(-(2**70), 2**70)).filter(lambda v: not isinstance(v, bytes))
msgpack_values = _values(st.integers(-(2**63), 2**64 - 1))  # msgpack's integer range
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v, default=str).encode()),
    st.dictionaries(
        st.sampled_from(["id", "label", "image", "box", "face", "x", "pipeline", "format"]), json_values, max_size=4
    ).map(lambda d: json.dumps(d, default=str).encode()),
    st.dictionaries(
        st.sampled_from(["id", "label", "image", "box", "pick", "to", "pipeline", "bank", "format", "data"]),
        msgpack_values,
        max_size=4,
    ).map(lambda d: msgpack.packb(d, use_bin_type=True)),
    st.dictionaries(st.text(max_size=6), msgpack_values, max_size=4).map(lambda d: msgpack.packb(d, use_bin_type=True)),
)


def test_random_payloads_on_every_command_topic(make_agent: AgentFactory, client: TestClient, prefix: str) -> None:
    agent = make_agent("fz")
    commands = sorted(f"{f}/{n}" if n else f for f, n in agent.router.commands)
    commands.append("no/such")
    client.subscribe(f"{prefix}/fz/reply/#")
    sent: list[Any] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.sampled_from(commands), payloads)
    def throw(command: str, payload: bytes) -> None:
        client.publish(f"{prefix}/fz/cmd/{command}", payload, qos=0)
        sent.append(command)

    throw()
    # The agent answered every one (error or not) and still answers ping.
    reply = client.request(prefix, "fz", "system/ping", timeout=60)
    assert reply["ok"] and reply["data"]["pong"]
    assert sum(agent.router.counts.values()) >= len(sent)
    assert agent.router.counts.get("internal", 0) == 0
