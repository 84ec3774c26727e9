"""A private mosquitto on loopback for the agent's lifetime (``mqtt.host: embedded``).

Also used by the test-suite's broker fixtures: a free port, a temp config, a readiness probe
(connect until the listener accepts), never port 1883.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from agent.errors import TransportError

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str:
    for candidate in ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path:
            return path
    raise TransportError(
        "mosquitto is not installed: `apt-get install mosquitto` (make does this), or point mqtt.host at a broker"
    )


class EmbeddedBroker:
    """Start ``mosquitto -c <temp conf>``; ``extra`` lines are appended to the config."""

    def __init__(self, port: int = 0, extra: str = "", listener_extra: str = "") -> None:
        self.port = port or free_port()
        self.extra = extra
        self.listener_extra = listener_extra
        self.dir = Path(tempfile.mkdtemp(prefix="maix-mosquitto-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "mosquitto.log"

    @property
    def config_path(self) -> Path:
        return self.dir / "mosquitto.conf"

    def write_config(self) -> None:
        anonymous = "" if "allow_anonymous" in self.listener_extra + self.extra else "allow_anonymous true\n"
        # As root, mosquitto drops to user "mosquitto", which cannot read our private temp dir;
        # the embedded broker runs as whoever runs the agent.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(
            f"{user}per_listener_settings false\n"
            f"listener {self.port} 127.0.0.1\n{self.listener_extra}\n"
            f"{anonymous}"
            f"persistence false\n"
            f"set_tcp_nodelay true\n"  # small packets (replies) go out at once, not after a delayed ACK
            f"log_dest file {self.log_path}\n"
            f"log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"{self.extra}\n"
        )

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        self.write_config()
        self.proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # its own session: a Ctrl-C in the terminal reaches the agent, which publishes
            # `offline` and then stops this broker, instead of both dying at once
            start_new_session=True,
        )
        self.wait_ready(timeout)
        log.info("embedded mosquitto on 127.0.0.1:%d (pid %d)", self.port, self.proc.pid)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                logtxt = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise TransportError(f"mosquitto exited with {self.proc.returncode}: {err}{logtxt}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.02)  # readiness probe interval, not a fixed wait
        raise TransportError(f"mosquitto did not accept connections on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
