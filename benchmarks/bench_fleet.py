"""Benchmark: fleet bank sync over real mosquitto (DESIGN §5).

Run on demand (not by pytest):  .venv/bin/python benchmarks/bench_fleet.py [--trials N] [--entries N]

1. Convergence, 3 agents on one broker: a face entry added on one agent (the store call a
   ``face/enrol`` makes after embedding, so model time is left out) until it is in the bank of
   each of the two others (timed by the banks' change hook, no polling). p50/p99 over trials.
2. The same for two agents on two mosquitto brokers joined by a bridge (``topic …/fleet/# both 1``).
3. 10,000 entries: signed faces entries seeded on a broker with ``max_queued_messages 0`` as
   retained messages; time for a new agent to hold all of them (from ``start``), to have them on
   disk and to finish its sync; mosquitto's resident memory (VmRSS) before and after seeding;
   time for that agent to restart from its own file and find the broker up to date. Then, on a
   broker with mosquitto's default limits, how many entries a new agent receives when it
   subscribes at QoS 0 and at QoS 1 (the broker drops the rest of the flood).
Writes benchmarks/results/bench_fleet.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.app import Agent
from agent.bank.clock import HLC
from agent.bank.entry import BankEntry
from agent.bank.store import new_entry_id
from agent.mqtt.embedded import EmbeddedBroker
from agent.settings import load_settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KEY = "bench-fleet-key"
PREFIX = "bench"
QUIET = 1.0  # fleet.quiet (the default)


def make_agent(dev: str, port: int, state: Path, **fleet: Any) -> Agent:
    settings = load_settings(
        None,
        mqtt={"host": "127.0.0.1", "port": port, "prefix": PREFIX, "reconnect_min": 1, "reconnect_max": 2},
        device={"id": dev, "fleet": "f1"},
        storage={"dir": state / dev},
        models={"dir": REPO / "models"},
        fleet={"key": KEY, **fleet},
        pipelines={"faces": False, "track": False, "segment": False, "classifier": False},
    )
    agent = Agent(settings)
    agent.start(connect_timeout=15)
    return agent


def wait(pred: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(0.002)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def convergence(source: Agent, others: list[Agent], trials: int) -> dict[str, float]:
    """ms from ``add`` on ``source`` until the entry is in every other agent's bank."""
    arrived: dict[str, dict[int, float]] = {}
    lock = threading.Lock()

    def hook(agent: Agent) -> Callable[[], None]:
        def on_change() -> None:
            now = time.perf_counter()
            with lock:
                for eid, per in arrived.items():
                    if id(agent) not in per and agent.services.banks["faces"].entries.get(eid) is not None:
                        per[id(agent)] = now

        return on_change

    for o in others:
        o.services.banks["faces"].on_change.append(hook(o))
    rng = np.random.default_rng(1)
    times = []
    for i in range(trials):
        v = rng.normal(size=128).astype(np.float32)
        t0 = time.perf_counter()
        (entry,) = source.services.banks["faces"].add(f"p{i % 20}", [v / np.linalg.norm(v)])
        with lock:
            arrived[entry.id] = {
                id(o): time.perf_counter() for o in others if entry.id in o.services.banks["faces"].entries
            }
        wait(lambda eid=entry.id: len(arrived[eid]) == len(others), 30)  # type: ignore[misc]
        times.append((max(arrived[entry.id].values()) - t0) * 1000)
        with lock:
            del arrived[entry.id]
    return {"p50 ms": pct(times, 50), "p99 ms": pct(times, 99), "mean ms": statistics.fmean(times), "trials": trials}


def seed(port: int, model: str, n: int) -> float:
    """Publish ``n`` signed retained faces entries; seconds until the broker acknowledged all."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-seeder")
    client.max_inflight_messages_set(200)
    client.connect("127.0.0.1", port)
    client.loop_start()
    clock = HLC("seeder")
    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(n, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    t0 = time.perf_counter()
    infos = []
    for i in range(n):
        stamp = clock.tick()
        e = BankEntry.from_vector(
            id=new_entry_id(stamp), bank="faces", label=f"person{i // 5}", vector=vecs[i], hlc=stamp, origin="seeder"
        )
        infos.append(client.publish(f"{PREFIX}/fleet/f1/bank/faces/{model}/{e.id}", e.encode(KEY.encode()), 1, True))
        if len(infos) >= 1000:
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    took = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return took


def synced(agent: Agent) -> Agent:
    wait(lambda: agent.fleet_sync.phase == "synced")
    return agent


def truncation(n: int, tmp: Path) -> dict[str, Any]:
    """What a new agent gets from a broker with mosquitto's default per-client queue limits."""
    broker = EmbeddedBroker().start()
    try:
        probe = make_agent("probe", broker.port, tmp)
        model = probe.services.banks["faces"].model
        probe.stop()
        seed(broker.port, model, n)
        got = {}
        for qos in (0, 1):
            a = synced(make_agent(f"q{qos}", broker.port, tmp, subscribe_qos=qos))
            got[f"default mosquitto, QoS-{qos} subscription: entries received"] = len(a.services.banks["faces"].entries)
            a.stop()
        return got
    finally:
        broker.cleanup()


def load(n: int, tmp: Path) -> dict[str, Any]:
    """Timings and broker memory with ``max_queued_messages 0`` (no per-client queue cap)."""
    broker = EmbeddedBroker(extra="max_queued_messages 0\n").start()
    agents: list[Agent] = []
    try:
        assert broker.proc is not None
        probe = make_agent("probe", broker.port, tmp)  # only to learn the faces model fingerprint
        model = probe.services.banks["faces"].model
        probe.stop()
        rss0 = rss_kb(broker.proc.pid)
        seed_s = seed(broker.port, model, n)
        rss1 = rss_kb(broker.proc.pid)
        t0 = time.perf_counter()
        new = make_agent("newcomer", broker.port, tmp)
        agents.append(new)
        wait(lambda: len(new.services.banks["faces"].entries) >= n)
        t_mem = time.perf_counter() - t0
        wait(lambda: new.fleet_sync.state()["bank_sync"]["unsaved"] == 0)
        t_disk = time.perf_counter() - t0
        synced(new)
        t_sync = time.perf_counter() - t0
        file_mb = new.services.banks["faces"].path.stat().st_size / 1e6
        new.stop()
        t1 = time.perf_counter()
        again = synced(make_agent("newcomer", broker.port, tmp))
        agents.append(again)
        t_restart = time.perf_counter() - t1
        return {
            "entries": n,
            "seed publish s": seed_s,
            "new agent: all in memory s": t_mem,
            "new agent: saved to disk s": t_disk,
            f"new agent: sync done s (incl. {QUIET} s quiet)": t_sync,
            "restart from own file: sync done s": t_restart,
            "restart: entries re-published": again.fleet_sync.state()["bank_sync"].get("republished", 0),
            "bank file MB": file_mb,
            "broker RSS before kB": rss0,
            "broker RSS after kB": rss1,
            "broker RSS per entry B": (rss1 - rss0) * 1024 / n,
        }
    finally:
        for a in agents:
            a.stop()
        broker.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--entries", type=int, default=10_000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as d:
        tmp = Path(d)
        broker = EmbeddedBroker().start()
        try:
            a, b, c = (make_agent(dev, broker.port, tmp / "one") for dev in ("A", "B", "C"))
            results["3 agents, one broker"] = convergence(a, [b, c], args.trials)
            for x in (a, b, c):
                x.stop()
        finally:
            broker.cleanup()
        b1 = EmbeddedBroker().start()
        b2 = EmbeddedBroker(extra=f"connection fleet\naddress 127.0.0.1:{b1.port}\ntopic {PREFIX}/fleet/# both 1\n")
        b2.start()
        try:
            x = make_agent("X", b1.port, tmp / "bridge")
            y = make_agent("Y", b2.port, tmp / "bridge")
            (probe,) = x.services.banks["faces"].add("bridge-probe", [np.ones(128, np.float32)])
            wait(lambda: probe.id in y.services.banks["faces"].entries, 30)  # the bridge is up
            results["2 agents, bridged brokers"] = convergence(x, [y], args.trials)
            x.stop()
            y.stop()
        finally:
            b2.cleanup()
            b1.cleanup()
        results["retained load"] = load(args.entries, tmp / "load")
        results["retained load"].update(truncation(args.entries, tmp / "trunc"))

    for name in ("3 agents, one broker", "2 agents, bridged brokers"):
        r = results[name]
        print(f"convergence, {name:<26} p50 {r['p50 ms']:7.2f} ms   p99 {r['p99 ms']:7.2f} ms   ({r['trials']} trials)")
    for key, val in results["retained load"].items():
        print(f"  {key:<46}{val:>12.2f}" if isinstance(val, float) else f"  {key:<46}{val:>12}")
    out = {
        "benchmark": "fleet_sync",
        "results": results,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "note": "in-process agents (separate MQTT clients and state dirs) on loopback mosquitto; shared 2-core box",
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_fleet.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
