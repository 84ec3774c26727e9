"""Schema-driven fuzzing of every subscribed topic (hypothesis, real broker, real models).

tests/integration/test_fuzz.py throws raw garbage at the command topics; this one builds requests
from each command's pydantic model (valid-looking, then broken in one place), pushes real, odd and
corrupted images on ``frame/in`` with every pipeline on, throws raw and entry-shaped messages at
the fleet bank topics of a keyed fleet, and junk at Home Assistant's control and birth topics.
After every input: a reply came, an error reply left the banks byte-for-byte unchanged, nothing
raised internally, the worker never failed on a frame and no unsigned entry got in. The
strategies and checks live in tools/fuzz.py, which runs the long session outside CI.
"""

from __future__ import annotations

from pathlib import Path

from agent.mqtt.embedded import EmbeddedBroker
from tests.integration.conftest import AgentFactory
from tools.fuzz import FLEET_KEY, Assets, Fuzzer


def test_schema_fuzz_of_commands_frames_and_bank_entries(
    make_agent: AgentFactory, broker: EmbeddedBroker, eval_dir: Path
) -> None:
    agent = make_agent(
        "fzm",
        source={"uri": "mqtt"},
        pipelines={"faces": True, "classifier": True, "segment": True, "track": True},
        fleet={"key": FLEET_KEY},
        homeassistant={"enabled": True},
        limits={"expensive_rate": 0},
    )
    assets = Assets.load(eval_dir)
    fuzzer = Fuzzer(agent, broker.port)
    try:
        fuzzer.frame(assets.valid[1])  # a latest frame (a face), for the commands that use it
        fuzzer.run_batch(assets, 60, derandomize=True)
        found = fuzzer.found
        assert min(found.inputs[k] for k in ("command", "frame", "bank", "homeassistant")) >= 60
        assert found.replies["ok"] > 0 and found.replies["bad_request"] > 0  # both sides were reached
        assert agent.worker.processed > 0 and agent.worker.bad_frames > 0
        assert agent.state()["bank_rejected"] > 0
        assert not fuzzer.internal and agent.worker.errors == 0
    finally:
        fuzzer.close()
