"""The console's web side (aiohttp): the page, its session, and one WebSocket per open page.

Security: loopback by default; any other address needs ``console.token``. With a token the browser
sends it once (``POST /login``) and then carries an HttpOnly, SameSite=Strict session cookie. The
WebSocket refuses any Origin but the page's own (plus ``console.origins``); without a token the
Host header must be a loopback name, so a DNS-rebinding page cannot reach a loopback console.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from agent.console.bridge import Bridge, Peer, hide_boxes, to_json
from agent.console.requests import Cmd, Grab, Refused, Watch, check_command, parse
from agent.errors import ConfigError
from agent.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "maix_console_session"
SESSION_SECONDS = 12 * 3600
MAX_WS_MESSAGE = 64 << 10
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>maix console: sign in</title>
<link rel="stylesheet" href="/static/style.css"></head><body class="login"><form method="post" action="/login">
<h1>maix console</h1><p>{message}</p><label>Access token <input type="password" name="token" id="token"
autocomplete="current-password" autofocus></label><button type="submit" id="signin">Sign in</button>
</form></body></html>"""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name part of a Host header: ``[::1]:8321`` → ``::1``, ``localhost:8321`` → ``localhost``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_exposure(settings: Settings) -> None:
    c = settings.console
    if not is_loopback(c.host) and c.token is None:
        raise ConfigError(f"console.host {c.host!r} is not loopback: set console.token (MAIX_AGENT_CONSOLE__TOKEN)")


class Console:
    def __init__(self, settings: Settings, bridge: Bridge) -> None:
        self.settings = settings
        self.bridge = bridge
        self.token = settings.console.token
        self.sessions: dict[str, float] = {}
        self.origins = set(settings.console.origins)
        self.refused = {"origin": 0, "host": 0, "token": 0, "input": 0}

    # -- access -------------------------------------------------------------------------------------
    def _host_ok(self, request: web.Request) -> bool:
        if self.token is not None:
            return True  # the session cookie is what protects a console with a token
        host = host_name(request.host or "")
        return is_loopback(host) or host == self.settings.console.host

    def _session_ok(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        sid = request.cookies.get(COOKIE, "")
        expiry = self.sessions.get(sid)
        return expiry is not None and expiry > time.time()

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._host_ok(request):
            self.refused["host"] += 1
            return web.Response(status=421, text="this console answers only to loopback host names\n")
        open_paths = ("/login", "/static/style.css", "/healthz")
        if request.path not in open_paths and not self._session_ok(request):
            if request.path == "/ws" or request.path.startswith("/static/"):
                return web.Response(status=401, text="sign in first\n")
            raise web.HTTPFound("/login")
        response: web.StreamResponse = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def login_form(self, request: web.Request) -> web.Response:
        if self.token is None:
            raise web.HTTPFound("/")
        return web.Response(
            text=LOGIN_PAGE.format(message="Enter the console's access token."), content_type="text/html"
        )

    async def login(self, request: web.Request) -> web.Response:
        if self.token is None:
            raise web.HTTPFound("/")
        form = await request.post()
        given = str(form.get("token", ""))[:512]
        if not hmac.compare_digest(given.encode(), self.token.get_secret_value().encode()):
            self.refused["token"] += 1
            log.warning("console: wrong token from %s", request.remote)
            await asyncio.sleep(0.5)  # slow down guessing
            return web.Response(status=401, text=LOGIN_PAGE.format(message="Wrong token."), content_type="text/html")
        now = time.time()
        self.sessions = {k: v for k, v in self.sessions.items() if v > now}
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = now + SESSION_SECONDS
        resp = web.HTTPFound("/")
        resp.set_cookie(
            COOKIE, sid, httponly=True, samesite="Strict", max_age=SESSION_SECONDS, secure=request.secure, path="/"
        )
        raise resp

    # -- pages ----------------------------------------------------------------------------------------
    async def index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "broker": self.bridge.client.connected.is_set()})

    # -- the WebSocket --------------------------------------------------------------------------------
    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return False
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.origins

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_ok(request):
            self.refused["origin"] += 1
            log.warning("console: WebSocket from foreign origin %r refused", request.headers.get("Origin"))
            return web.Response(status=403, text="foreign origin\n")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_WS_MESSAGE)
        await ws.prepare(request)
        peer = Peer(ws.send_str, ws.send_bytes)
        self.bridge.peers.add(peer)
        pump = asyncio.create_task(peer.pump())
        peer.send(self.bridge.hello())
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        peer.send(
                            to_json({"type": "error", "ref": None, "message": "binary messages are not accepted"})
                        )
                    continue
                task = asyncio.create_task(self._handle(peer, msg.data))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self.bridge.leave(peer)
            for t in tasks:
                t.cancel()
            peer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pump, 1)
            pump.cancel()
        return ws

    async def _handle(self, peer: Peer, text: str) -> None:
        ref = ref_of(text)  # so that even a refused request gets its answer
        try:
            req = parse(text)
            if isinstance(req, Watch):
                self.bridge.watch(peer, req.dev)
                return
            ref = req.ref
            if isinstance(req, Grab):
                grabbed, reply = await self.bridge.grab(req.dev)
                out: dict[str, Any] = {"type": "grab", "ref": ref, "dev": req.dev, "reply": reply}
                if grabbed is not None:
                    out.update(grab=grabbed.id, seq=grabbed.seq, w=grabbed.w, h=grabbed.h, jpeg=grabbed.jpeg)
                peer.send(to_json(out))
                return
            assert isinstance(req, Cmd)
            image = self._image(req)
            body = check_command(req, image)
            reply = await self.bridge.command(req.dev, req.command, body)
            peer.send(to_json({"type": "reply", "ref": ref, "dev": req.dev, "command": req.command, "reply": reply}))
        except Refused as exc:
            self.refused["input"] += 1
            self.bridge.counts["refused"] += 1
            log.info("console: refused a request from the page: %s", exc)
            peer.send(to_json({"type": "error", "ref": ref, "message": str(exc)}))

    def _image(self, req: Cmd) -> bytes | None:
        if req.grab is None:
            if req.hide:
                raise Refused("hide: needs a grab")
            return None
        grabbed = self.bridge.grabs.get(req.grab)
        if grabbed is None or grabbed.dev != req.dev:
            raise Refused("grab: that frame is no longer held; grab again")
        if not req.hide:
            return grabbed.jpeg
        try:
            return hide_boxes(grabbed.jpeg, req.hide)
        except ValueError as exc:
            raise Refused(f"hide: {exc}") from None


def ref_of(text: str) -> int | None:
    try:
        ref = json.loads(text).get("ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, int) and not isinstance(ref, bool) else None


def build_app(settings: Settings, bridge: Bridge) -> tuple[web.Application, Console]:
    console = Console(settings, bridge)
    app = web.Application(middlewares=[console.guard], client_max_size=64 << 10)
    app.router.add_get("/", console.index)
    app.router.add_get("/login", console.login_form)
    app.router.add_post("/login", console.login)
    app.router.add_get("/healthz", console.health)
    app.router.add_get("/ws", console.websocket)
    app.router.add_get("/static/{name}", console.static)
    return app, console


async def serve(settings: Settings) -> None:
    check_exposure(settings)
    loop = asyncio.get_running_loop()
    # Ctrl-C handlers before anything is announced: a SIGINT right after the URL line is a clean stop.
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bridge = Bridge(settings, loop)
    app, _console = build_app(settings, bridge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    c = settings.console
    site = web.TCPSite(runner, c.host, c.port)
    await site.start()
    bridge.start()
    port = runner.addresses[0][1] if runner.addresses else c.port
    shown = f"[{c.host}]" if ":" in c.host else c.host
    print(f"maix-agent console: http://{shown}:{port}/ (broker {settings.mqtt.host}:{settings.mqtt.port})", flush=True)
    try:
        await stop.wait()
    finally:
        await bridge.stop()
        await runner.cleanup()


def run_console(settings: Settings) -> int:
    asyncio.run(serve(settings))
    return 0
