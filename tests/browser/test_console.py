"""The console in a real Chromium against a real agent on a real mosquitto (a video with people):
fleet, live view with overlays, teaching by pointing, libraries, thresholds, leases, security."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.browser.conftest import AgentFactory, ConsoleProcess, request_ok
from tests.support.mqtt import TestClient, wait_until

DEV = "cam1"


def _count(client: TestClient, suffix: str) -> int:
    with client._lock:
        return sum(1 for m in client.all if m.topic.endswith(suffix))


def _results(client: TestClient, prefix: str, kind: str) -> list[dict[str, Any]]:
    with client._lock:
        msgs = [m for m in client.all if m.topic == f"{prefix}/{DEV}/result/{kind}"]
    return [msgpack.unpackb(m.payload, raw=False) for m in msgs[-40:]]


@pytest.fixture
def pages(browser: Any) -> Iterator[list[Any]]:
    """Pages opened by a test, closed after it whatever happened (an open camera page holds a lease)."""
    opened: list[Any] = []
    yield opened
    for page in opened:
        if not page.is_closed():
            page.close()


def _page(browser: Any, console: ConsoleProcess, route: str = "", opened: list[Any] | None = None) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 860}, bypass_csp=True)  # wait_for_function evals
    if opened is not None:
        opened.append(page)
    page.on("console", lambda m: print(f"page console: {m.type}: {m.text}"))
    page.on("pageerror", lambda e: print(f"page error: {e}"))
    page.goto(console.url + route)
    page.wait_for_selector("#broker.online", timeout=15_000)
    return page


def _live(page: Any, n: int = 2, timeout: float = 30_000) -> None:
    page.wait_for_function(f"Number(document.querySelector('#view')?.dataset.frames || 0) >= {n}", timeout=timeout)


def _canvas_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of frame pixel (x, y) on the live view."""
    point: tuple[float, float] = page.evaluate(
        """([x, y]) => { const p = window.maixConsole.page; const c = p.canvas; const r = c.getBoundingClientRect();
        const k = r.width / c.width; return [r.left + x * p.scale * k, r.top + y * p.scale * k]; }""",
        [x, y],
    )
    return point


def test_no_preview_without_a_page(
    make_agent: AgentFactory, console: ConsoleProcess, mqtt: TestClient, prefix: str
) -> None:
    """With the console running and no page open, no preview message for 10 s."""
    agent = make_agent(DEV, faces=True, segment=True)
    mqtt.subscribe(f"{prefix}/+/preview", f"{prefix}/{DEV}/result/#", f"{prefix}/{DEV}/reply/#")
    wait_until(lambda: agent.worker.processed > 2, 60, "frames processed")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10.0:
        time.sleep(0.5)
        assert _count(mqtt, "/preview") == 0
    assert agent.preview.sent == 0 and agent.worker.processed > 5


def test_fleet_page_online_offline(
    pages: list[Any], browser: Any, make_agent: AgentFactory, console: ConsoleProcess, artifacts: Path, eval_dir: Path
) -> None:
    page = _page(browser, console, opened=pages)
    row = page.locator(f"#fleet tr[data-dev='{DEV}']")
    row.locator(".status.online").wait_for(timeout=15_000)
    extra = make_agent("cam2")  # a second camera appears live, then goes offline and back
    page.locator("#fleet tr[data-dev='cam2'] .status.online").wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts / "fleet.png"))
    extra.stop()
    page.locator("#fleet tr[data-dev='cam2'] .status.offline").wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts / "fleet-offline.png"))
    make_agent("cam2")
    page.locator("#fleet tr[data-dev='cam2'] .status.online").wait_for(timeout=15_000)
    assert "faces" in row.inner_text() and "segment" in row.inner_text()
    page.close()


def test_live_view_and_overlays(
    pages: list[Any], browser: Any, console: ConsoleProcess, artifacts: Path, mqtt: TestClient
) -> None:
    page = _page(browser, console, f"#/camera/{DEV}", opened=pages)
    _live(page, 2)
    first = page.locator("#view").screenshot()
    _live(page, int(page.locator("#view").get_attribute("data-frames") or 0) + 3)
    second = page.locator("#view").screenshot()
    assert first != second  # the live view moves
    page.wait_for_function(
        "(document.querySelector('#frameinfo').dataset.overlays || '').includes('faces') && "
        "(document.querySelector('#frameinfo').dataset.overlays || '').includes('segments')",
        timeout=30_000,
    )
    drawn = page.evaluate("window.maixConsole.page.current")
    assert drawn["faces"]["faces"] and drawn["segments"]["objects"]
    assert any(o["label"] == "person" for o in drawn["segments"]["objects"])
    page.screenshot(path=str(artifacts / "camera.png"))
    assert _count(mqtt, "/preview") > 0  # the page holds a lease
    page.close()


def test_threshold_slider_changes_thresholds(
    pages: list[Any], browser: Any, console: ConsoleProcess, mqtt: TestClient, prefix: str
) -> None:
    page = _page(browser, console, f"#/camera/{DEV}", opened=pages)
    slider = page.locator("#th-segment-score")
    page.wait_for_function("document.querySelector('#th-segment-score').value === '0.4'", timeout=15_000)
    slider.fill("0.55")
    slider.dispatch_event("change")
    wait_until(
        lambda: request_ok(mqtt, prefix, DEV, "thresholds/get")["segment"]["score"] == 0.55, 15, "thresholds/set"
    )
    page.locator("#pipeline-classifier").check()  # a pipeline switch, for the next test
    wait_until(lambda: request_ok(mqtt, prefix, DEV, "pipelines/get")["classifier"], 15, "pipelines/set")
    page.close()


def _answered(page: Any, command: str) -> None:
    """The agent's reply to ``command`` as the page shows it (the log keeps it): ok."""
    answer = page.locator("#log div", has_text=f"{command}:").first
    answer.wait_for(timeout=60_000)
    assert answer.inner_text().startswith(f"{command}: ok"), answer.inner_text()


def _drag(page: Any, box: list[float]) -> None:
    x0, y0 = _canvas_point(page, box[0], box[1])
    x1, y1 = _canvas_point(page, box[0] + box[2], box[1] + box[3])
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=3)
    page.mouse.move(x1, y1, steps=3)
    page.mouse.up()


def test_draw_a_box_to_track_and_to_learn_a_class(
    pages: list[Any], browser: Any, console: ConsoleProcess, mqtt: TestClient, prefix: str, artifacts: Path
) -> None:
    page = _page(browser, console, f"#/camera/{DEV}", opened=pages)
    _live(page, 2)
    _drag(page, [250, 60, 140, 170])
    page.wait_for_selector("#track-this", timeout=10_000)
    page.wait_for_function("!!document.querySelector('#view').dataset.grab", timeout=10_000)
    page.screenshot(path=str(artifacts / "camera-draw.png"))
    page.click("#track-this")
    _answered(page, "track/start")
    seen_before = len(_results(mqtt, prefix, "track"))
    wait_until(lambda: len(_results(mqtt, prefix, "track")) > seen_before + 3, 30, "track results")
    boxes = {tuple(r["box"]) for r in _results(mqtt, prefix, "track")[-10:] if r.get("box")}
    assert len(boxes) > 1  # the target moves and the box follows it
    page.wait_for_function(
        "(document.querySelector('#frameinfo').dataset.overlays || '').includes('track')", timeout=30_000
    )
    page.screenshot(path=str(artifacts / "camera-track.png"))

    # Learn as class: a box over most of the frame (classify looks at the centre crop)
    _live(page, int(page.locator("#view").get_attribute("data-frames") or 0) + 1)
    _drag(page, [100, 20, 440, 320])
    page.fill("#class-label", "stage")
    page.click("#learn-class")
    _answered(page, "classifier/add_class")
    wait_until(
        lambda: any(r["label"] == "stage" for r in _results(mqtt, prefix, "classify")[-5:]), 30, "classify names it"
    )
    page.wait_for_function("(window.maixConsole.page.current?.classify?.label) === 'stage'", timeout=30_000)
    page.close()


def test_bad_input_shows_an_error_and_reaches_no_agent(
    pages: list[Any], browser: Any, console: ConsoleProcess, mqtt: TestClient
) -> None:
    page = _page(browser, console, f"#/camera/{DEV}", opened=pages)
    before = _count(mqtt, "/reply/face/enrol")
    replies = page.evaluate(
        """async () => { const l = window.maixConsole.link; return [
          await l.command('cam1', 'face/enrol', {label: 'x', image: 'AAAA'}),
          await l.command('cam1', 'bank/import', {}),
          await l.command('cam1', 'track/start', {box: [1, 2, 3, 4]}),
          await l.command('cam1', 'thresholds/set', {face: 'high'}),
          await l.command('cam/../x', 'system/ping', {}),
        ]; }"""
    )
    assert [r["ok"] for r in replies] == [False] * 5
    messages = [r["error"]["message"] for r in replies]
    assert "cannot send images" in messages[0] and "not offered" in messages[1] and "grab it first" in messages[2]
    assert "face" in messages[3] and "dev" in messages[4]
    time.sleep(0.5)
    assert _count(mqtt, "/reply/face/enrol") == before
    page.close()


def test_enrol_by_clicking_a_face_then_rename_and_forget(
    pages: list[Any], browser: Any, console: ConsoleProcess, mqtt: TestClient, prefix: str, artifacts: Path
) -> None:
    page = _page(browser, console, f"#/camera/{DEV}", opened=pages)
    _live(page, 2)
    page.wait_for_function("(window.maixConsole.page.current?.faces?.faces || []).length > 0", timeout=30_000)
    largest = "(a, b) => (a.box[2] * a.box[3] >= b.box[2] * b.box[3] ? a : b)"
    face = page.evaluate(f"window.maixConsole.page.current.faces.faces.reduce({largest})")
    x, y, w, h = face["box"]
    for _attempt in range(6):  # a still frame between two shots may show no face: try another
        page.mouse.click(*_canvas_point(page, x + w / 2, y + h / 2))  # freezes the view on a grabbed frame
        page.wait_for_function("window.maixConsole.page.frozen?.faces !== undefined", timeout=30_000)
        if page.evaluate("window.maixConsole.page.frozen.faces.length"):  # click the largest face of the still frame
            still = page.evaluate(f"window.maixConsole.page.frozen.faces.reduce({largest})")
            x, y, w, h = still["box"]
            page.mouse.click(*_canvas_point(page, x + w / 2, y + h / 2))
            break
        page.click("#teach-cancel")
        _live(page, int(page.locator("#view").get_attribute("data-frames") or 0) + 2)
    page.wait_for_selector("#face-enrol", timeout=10_000)
    page.fill("#face-label", "Lin")
    page.click("#face-enrol")
    _answered(page, "face/enrol")
    with mqtt._lock:
        since = len(mqtt.all)

    def named() -> bool:
        with mqtt._lock:
            new = [m for m in mqtt.all[since:] if m.topic == f"{prefix}/{DEV}/result/faces"]
        return any(f["label"] == "Lin" for m in new for f in msgpack.unpackb(m.payload, raw=False)["faces"])

    wait_until(named, 90, f"the next results name the face enrolled from {still['box']}")
    page.wait_for_function(
        "(window.maixConsole.page.current?.faces?.faces || []).some(f => f.label === 'Lin')", timeout=30_000
    )
    page.screenshot(path=str(artifacts / "camera-named.png"))

    page.goto(f"{console.url}#/library/{DEV}")
    card = page.locator(".card.person[data-label='Lin']")
    card.wait_for(timeout=15_000)
    card.locator(".thumb img.loaded").first.wait_for(timeout=15_000)  # the sample's crop (face/sample)
    assert card.locator(".thumb img.loaded").first.get_attribute("src").startswith("data:image/jpeg;base64,/9j/")
    page.screenshot(path=str(artifacts / "library-faces.png"))
    card.locator(".rename-to").fill("Lin-Manuel")
    card.locator(".rename").click()
    page.locator(".card.person[data-label='Lin-Manuel']").wait_for(timeout=15_000)
    assert page.locator(".card.person[data-label='Lin']").count() == 0
    names = [f["label"] for f in request_ok(mqtt, prefix, DEV, "face/list")["faces"]]
    assert names == ["Lin-Manuel"]
    page.locator(".card.person[data-label='Lin-Manuel'] .forget").click()
    page.locator("#faces:has-text('nobody enrolled yet')").wait_for(timeout=15_000)
    assert request_ok(mqtt, prefix, DEV, "face/list")["faces"] == []

    page.click("#tab-classes")
    page.locator("#classes tr[data-label='stage']").wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts / "library-classes.png"))
    page.click("#tab-review")
    page.locator("#library :is(#unknowns, .error)").first.wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts / "library-review.png"))
    page.close()


def test_leases_end_with_the_page(
    pages: list[Any], browser: Any, console: ConsoleProcess, mqtt: TestClient, make_agent: Any
) -> None:
    page = _page(browser, console, f"#/camera/{DEV}", opened=pages)
    _live(page, 2)
    page.goto(f"{console.url}#/")  # leaving the camera page releases the lease at once
    time.sleep(1.0)
    n = _count(mqtt, "/preview")
    time.sleep(1.5)
    assert _count(mqtt, "/preview") == n
    page.close()


def test_token_and_origin(browser: Any, broker: Any, prefix: str, artifacts: Path) -> None:
    from tests.browser.conftest import start_console, stop_console

    guarded = start_console(broker, prefix, MAIX_AGENT_CONSOLE__TOKEN="correct-horse-battery")
    try:
        page = browser.new_page()
        page.goto(guarded.url)
        assert page.url.endswith("/login")
        page.fill("#token", "wrong-token-123")
        page.click("#signin")
        page.wait_for_selector("text=Wrong token.")
        page.screenshot(path=str(artifacts / "login-refused.png"))
        assert page.evaluate("fetch('/ws').then(r => r.status)") == 401
        page.fill("#token", "correct-horse-battery")
        page.click("#signin")
        page.wait_for_selector("#broker.online", timeout=15_000)
        cookie = next(c for c in page.context.cookies() if c["name"] == "maix_console_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        page.close()
    finally:
        stop_console(guarded)


def test_foreign_origin_and_host_refused(console: ConsoleProcess) -> None:
    import asyncio
    import concurrent.futures

    import aiohttp

    async def probe() -> tuple[int, int, int]:
        async with aiohttp.ClientSession() as s:
            codes = []
            for headers in ({"Origin": "http://evil.example"}, {}):
                try:
                    async with s.ws_connect(console.url + "ws", headers=headers):
                        codes.append(101)
                except aiohttp.WSServerHandshakeError as exc:
                    codes.append(exc.status)
            async with s.get(console.url, headers={"Host": "evil.example:80"}) as r:
                codes.append(r.status)
            own = console.url.rstrip("/")
            async with s.ws_connect(console.url + "ws", headers={"Origin": own}) as ws:
                hello = json.loads((await ws.receive()).data)
                assert hello["type"] == "hello"
            return codes[0], codes[1], codes[2]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's loop
        assert pool.submit(asyncio.run, probe()).result(60) == (403, 403, 421)
