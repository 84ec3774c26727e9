"""A small TCP proxy on loopback that can cut, stall (half-open) or slow the connections it carries.

Put it between the agent and a real broker (agent → proxy.port → broker) and inject faults:

- :meth:`TcpProxy.stall` stops forwarding on the connections open now, in both directions, while
  keeping their sockets open: each end sees a silent, half-open peer (a dead Wi-Fi link or a NAT
  that dropped its state). New connections are not affected, so a client that detects the stall
  and reconnects gets through.
- :meth:`TcpProxy.cut` resets every open connection (RST: ``SO_LINGER`` 0).
- :meth:`TcpProxy.slow` adds a delay to every chunk forwarded (and optionally a bandwidth cap).
- :meth:`TcpProxy.refuse` makes new connections fail at once (the port closes them).

Threads only; everything it opens is closed by :meth:`TcpProxy.close`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a crashed peer or a middlebox would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: client socket, upstream socket, two pump threads."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self.bytes_up = 0
        self.bytes_down = 0
        for src, dst, up in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(target=self._pump, args=(src, dst, up), daemon=True, name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while not self.closed.is_set():
                if self.stalled.is_set():  # half-open: read nothing, send nothing, keep the socket
                    self.closed.wait(0.05)
                    continue
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready or self.stalled.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                delay = self.proxy.delay + (len(data) / self.proxy.bandwidth if self.proxy.bandwidth else 0.0)
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
        except OSError:
            pass
        self.close()

    def close(self, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()


class TcpProxy:
    """Listen on a free loopback port and forward every connection to ``target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self.delay = 0.0  # seconds added to every forwarded chunk
        self.bandwidth = 0.0  # bytes per second per direction; 0 = unlimited
        self.refusing = False
        self.accepted = 0  # connections accepted and forwarded (a reconnect shows here)
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="proxy-accept")
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.05)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            link = _Link(self, client, upstream)
            with self._lock:
                self._links = [lk for lk in self._links if not lk.closed.is_set()]
                self._links.append(link)
                self.accepted += 1

    def links(self) -> list[_Link]:
        with self._lock:
            return [lk for lk in self._links if not lk.closed.is_set()]

    # -- faults ------------------------------------------------------------------------------
    def stall(self) -> int:
        """Freeze every open connection (half-open); returns how many were frozen."""
        links = self.links()
        for link in links:
            link.stalled.set()
        return len(links)

    def resume(self) -> None:
        for link in self.links():
            link.stalled.clear()

    def cut(self) -> int:
        """Reset every open connection; returns how many were cut."""
        links = self.links()
        for link in links:
            link.close(reset=True)
        return len(links)

    def slow(self, delay: float = 0.0, bandwidth: float = 0.0) -> None:
        """Add ``delay`` seconds per forwarded chunk and cap each direction at ``bandwidth`` B/s."""
        self.delay = delay
        self.bandwidth = bandwidth

    def refuse(self, refusing: bool = True) -> None:
        self.refusing = refusing

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(2)
        for link in self.links():
            link.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
