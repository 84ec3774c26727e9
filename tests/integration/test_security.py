"""Transport security against a real mosquitto: TLS (CA, client certificates, the insecure flag),
username/password and config/mosquitto-acl.example, over MQTT 5 and 3.1.1.

A throwaway PKI is made per test module with the ``openssl`` binary (`make broker` installs it):
a CA, a server certificate for 127.0.0.1, one client certificate per broker user, a rogue CA with a
client certificate of its own, and a self-signed server certificate for the wrong host name.
"""

from __future__ import annotations

import logging
import os
import queue
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.errors import TransportError
from agent.mqtt.embedded import EmbeddedBroker
from tests.integration.conftest import AgentFactory
from tests.support.mqtt import TestClient, decode

REPO = Path(__file__).resolve().parents[2]
ACL = REPO / "config" / "mosquitto-acl.example"
USERS = {"cam1": "cam1-secret", "cam2": "cam2-secret", "homeassistant": "ha-secret", "mallory": "mallory-secret"}


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_ca(d: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def make_leaf(d: Path, name: str, ca: str, *, san: str, usage: str) -> None:
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    (d / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\nsubjectAltName={san}\nextendedKeyUsage={usage}\n")
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_leaf(d, "server", "ca", san="IP:127.0.0.1,DNS:localhost", usage="serverAuth")
    for user in USERS:
        make_leaf(d, user, "ca", san=f"DNS:{user}", usage="clientAuth")
    make_ca(d, "rogue-ca")
    make_leaf(d, "rogue", "rogue-ca", san="DNS:rogue", usage="clientAuth")
    # Self-signed, for another host name: what a home broker often has (see mqtt.tls.insecure).
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "selfsigned.key", "-out", "selfsigned.crt", "-days", "2", "-subj", "/CN=broker.example",
        "-addext", "subjectAltName=DNS:broker.example",
        cwd=d,
    )  # fmt: skip
    passwd = d / "passwd"
    passwd.write_text("")
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    return d


@pytest.fixture(scope="module")
def broker(pki: Path) -> Iterator[EmbeddedBroker]:
    """Overrides the integration ``broker``: TLS with client certificates + passwords + the ACL example."""
    b = EmbeddedBroker(
        listener_extra=(
            f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
            "require_certificate true\n"
            f"allow_anonymous false\npassword_file {pki / 'passwd'}\nacl_file {ACL}\n"
        )
    ).start()
    yield b
    b.cleanup()


def tls_context(pki: Path, cert: str | None, ca: str = "ca") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / f"{ca}.crt"))
    if cert is not None:
        ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    return ctx


def user_client(broker: EmbeddedBroker, pki: Path, user: str, protocol: str = "5") -> TestClient:
    return TestClient(broker.port, protocol=protocol, username=user, password=USERS[user], tls=tls_context(pki, user))


def tls_settings(pki: Path, user: str, protocol: str = "5") -> dict[str, Any]:
    return {
        "prefix": "maix",
        "protocol": protocol,
        "username": user,
        "password": USERS[user],
        "tls": {"ca": pki / "ca.crt", "cert": pki / f"{user}.crt", "key": pki / f"{user}.key"},
    }


def camera(make_agent: AgentFactory, pki: Path, dev: str = "cam1", protocol: str = "5", **kw: Any) -> Any:
    return make_agent(dev, mqtt=tls_settings(pki, dev, protocol), device={"fleet": "default"}, **kw)


def request(c: TestClient, dev: str, command: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return c.request("maix", dev, command, body)


# -- (a) the agent works through TLS + password + ACL ------------------------------------------
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_agent_works_with_tls_password_and_acl(
    make_agent: AgentFactory, broker: EmbeddedBroker, pki: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.mqtt.client")
    agent = camera(make_agent, pki, "cam1", protocol, pipelines={"classifier": False})
    ha = user_client(broker, pki, "homeassistant", protocol)
    ha.subscribe("maix/cam1/availability", "maix/cam1/state", "maix/cam1/reply/#")
    ha.wait_for(lambda m: m.topic == "maix/cam1/availability" and m.payload == b"online")
    ha.wait_for(lambda m: m.topic == "maix/cam1/state" and decode(m.payload)["dev"] == "cam1")
    assert request(ha, "cam1", "system/ping")["data"]["pong"] is True
    assert request(ha, "cam1", "pipelines/set", {"segment": False})["ok"]
    ha.publish("maix/fleet/default/cmd/system/ping", b'{"id": "fleet"}')  # fleet commands too
    ha.wait_for(lambda m: m.topic == "maix/cam1/reply/system/ping" and decode(m.payload)["id"] == "fleet")
    # Every subscription of the agent was granted by the ACL (commands, fleet commands, banks).
    assert agent.link is not None and agent.link.connected.is_set()
    assert "refused the subscription" not in caplog.text
    ha.close()


# -- (b) other users can neither command the camera nor read what it publishes -----------------
def test_other_users_cannot_command_the_camera_or_read_its_results(
    make_agent: AgentFactory, broker: EmbeddedBroker, pki: Path, eval_dir: Path
) -> None:
    agent = camera(
        make_agent,
        pki,
        "cam1",
        source={"uri": f"images:{eval_dir / 'images'}", "loop": True, "fps": 5},
        pipelines={"classifier": True},
    )
    assert agent.link is not None
    ha = user_client(broker, pki, "homeassistant")
    ha.subscribe("maix/cam1/reply/#", "maix/cam1/result/classify")
    ha.wait_for(lambda m: m.topic == "maix/cam1/result/classify", timeout=60)  # results are flowing

    spies = {"cam2": user_client(broker, pki, "cam2"), "mallory": user_client(broker, pki, "mallory")}
    for spy in spies.values():
        spy.subscribe("maix/cam1/#", "maix/+/reply/#", "maix/#", "#")
    spies["cam2"].subscribe("maix/cam2/marker")

    before = dict(agent.router.counts)
    thresholds = agent.controls.thresholds.model_dump()
    for spy in spies.values():
        for cmd, body in (
            ("thresholds/set", b'{"face": {"match": 0.01}}'),
            ("face/forget", b'{"label": "x"}'),
            ("system/ping", b'{"id": "spy"}'),
        ):
            spy.publish(f"maix/cam1/cmd/{cmd}", body)  # PUBACK'ed or refused: never delivered
        spy.publish("maix/fleet/default/cmd/system/ping", b'{"id": "spy-fleet"}')
        spy.publish("maix/cam1/frame/in", b"\xff\xd8 not for you", qos=1)

    # The controller's ping goes through the same broker after those: once it is answered, the
    # broker has long dealt with the spies' messages.
    r = request(ha, "cam1", "system/ping")
    assert r["ok"]
    assert agent.router.counts["ok"] == before.get("ok", 0) + 1
    assert sum(agent.router.counts.values()) == sum(before.values()) + 1
    assert agent.controls.thresholds.model_dump() == thresholds

    spies["cam2"].publish("maix/cam2/marker", b"x")  # delivered after everything published before it
    spies["cam2"].wait_for(lambda m: m.topic == "maix/cam2/marker")
    for name, spy in spies.items():
        leaked = sorted({m.topic for m in spy.all if m.topic.startswith("maix/cam1/") or "/cmd/" in m.topic})
        assert leaked == [], f"{name} read {leaked}"
        spy.close()
    ha.close()


def can_connect(port: int, ctx: ssl.SSLContext | None, user: str = "cam2") -> bool:
    """True once the broker accepts (CONNACK success); False as soon as it refuses or hangs up."""
    outcome: queue.Queue[bool] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(user, USERS[user])
    if ctx is not None:
        c.tls_set_context(ctx)
    c.on_connect = lambda _c, _u, _f, rc, _p: outcome.put(not rc.is_failure)
    c.on_disconnect = lambda *_a: outcome.put(False)
    try:
        c.connect("127.0.0.1", port, keepalive=5)
    except OSError:  # ssl.SSLError included: the handshake failed
        return False
    c.loop_start()
    try:
        return outcome.get(timeout=15)
    finally:
        c.disconnect()
        c.loop_stop()


def test_clients_without_a_valid_certificate_are_refused(broker: EmbeddedBroker, pki: Path) -> None:
    assert can_connect(broker.port, tls_context(pki, "cam2"))  # the control: a proper client gets in
    assert not can_connect(broker.port, tls_context(pki, None))  # no client certificate
    assert not can_connect(broker.port, tls_context(pki, "rogue"))  # a certificate from another CA
    assert not can_connect(broker.port, None)  # plain TCP on the TLS port


# -- (c) a wrong password: fail fast, a clear log line, no reconnect storm ---------------------
def test_wrong_password_over_tls_fails_fast_without_reconnect_storm(
    broker: EmbeddedBroker, pki: Path, tmp_path: Path
) -> None:
    dev = f"pw{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "MAIX_AGENT_MQTT__HOST": "127.0.0.1",
        "MAIX_AGENT_MQTT__PORT": str(broker.port),
        "MAIX_AGENT_MQTT__USERNAME": "cam1",
        "MAIX_AGENT_MQTT__PASSWORD": "not-the-password",
        "MAIX_AGENT_MQTT__TLS__CA": str(pki / "ca.crt"),
        "MAIX_AGENT_MQTT__TLS__CERT": str(pki / "cam1.crt"),
        "MAIX_AGENT_MQTT__TLS__KEY": str(pki / "cam1.key"),
        "MAIX_AGENT_MQTT__RECONNECT_MIN": "1",
        "MAIX_AGENT_MQTT__RECONNECT_MAX": "2",
        "MAIX_AGENT_DEVICE__ID": dev,
        "MAIX_AGENT_STORAGE__DIR": str(tmp_path / dev),
        "MAIX_AGENT_PIPELINES__FACES": "false",
        "MAIX_AGENT_PIPELINES__TRACK": "false",
    }
    seen = len(broker.log_path.read_text().splitlines())  # the module's broker: only our lines after this
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err.decode()
    text = err.decode()
    assert "refused the connection" in text and "not retrying" in text and "check mqtt.username" in text
    lines = broker.log_path.read_text().splitlines()[seen:]  # mosquitto logs a refused client as <unknown>
    connections = [line for line in lines if "New connection from" in line]
    refused = [line for line in lines if "not authorised" in line or "bad user name or password" in line]
    assert len(refused) == 1 and len(connections) == 1, lines


# -- the insecure flag, for a self-signed broker ------------------------------------------------
def test_insecure_flag_accepts_a_self_signed_broker_and_warns(
    make_agent: AgentFactory, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = EmbeddedBroker(
        listener_extra=f"certfile {pki / 'selfsigned.crt'}\nkeyfile {pki / 'selfsigned.key'}\n"
    ).start()
    try:
        caplog.set_level(logging.WARNING, logger="agent.mqtt.client")
        strict = make_agent("ss1", start=False, mqtt={"port": own.port, "tls": {}})
        with pytest.raises(TransportError):
            strict.start(connect_timeout=3)
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text and "mqtt.tls.insecure" in caplog.text
        strict.stop()

        caplog.clear()
        lax = make_agent("ss2", mqtt={"port": own.port, "tls": {"insecure": True}})
        assert lax.link is not None and lax.link.connected.is_set()
        assert "mqtt.tls.insecure is set" in caplog.text and "NOT verified" in caplog.text
        c = TestClient(own.port, tls=ssl._create_unverified_context())  # the point of the test
        c.subscribe(f"{lax.settings.mqtt.prefix}/ss2/reply/#")
        assert c.request(lax.settings.mqtt.prefix, "ss2", "system/ping")["ok"]
        c.close()
        lax.stop()
    finally:
        own.cleanup()
