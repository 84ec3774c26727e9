"""The face library's pages in a real Chromium against a real agent (faces on, a video with people):
the review queue (name one unknown face to enrol it, dismiss the rest), removing one sample of a
person, and *Not this person* on a named face of the camera page. Each test asserts on the page
and on the agent's state over MQTT."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from agent.app import Agent
from tests.browser.conftest import AgentFactory, ConsoleProcess, request_ok
from tests.support.mqtt import TestClient, wait_until

DEV = "cam1"
LARGEST = "(a, b) => (a.box[2] * a.box[3] >= b.box[2] * b.box[3] ? a : b)"


@pytest.fixture(scope="module")
def agent(make_agent: AgentFactory, mqtt: TestClient, prefix: str) -> Agent:
    mqtt.subscribe(f"{prefix}/{DEV}/reply/#")
    return make_agent(DEV, faces=True)


@pytest.fixture
def page(browser: Any, console: ConsoleProcess, agent: Agent) -> Iterator[Any]:
    p = browser.new_page(viewport={"width": 1280, "height": 860}, bypass_csp=True)  # wait_for_function evals
    p.on("pageerror", lambda e: print(f"page error: {e}"))
    yield p
    if not p.is_closed():
        p.close()


def _open(page: Any, console: ConsoleProcess, route: str) -> None:
    page.goto(console.url + route)
    page.wait_for_selector("#broker.online", timeout=15_000)


def _person(mqtt: TestClient, prefix: str, label: str) -> dict[str, Any] | None:
    return next((f for f in request_ok(mqtt, prefix, DEV, "face/list")["faces"] if f["label"] == label), None)


def _enrol_latest(mqtt: TestClient, prefix: str, label: str) -> None:
    """face/enrol of the largest face of the latest frame, retried while the video shows no face."""
    wait_until(
        lambda: mqtt.request(prefix, DEV, "face/enrol", {"label": label}, timeout=60)["ok"], 60, f"enrol {label}"
    )


def _unknowns(mqtt: TestClient, prefix: str) -> list[dict[str, Any]]:
    return request_ok(mqtt, prefix, DEV, "face/unknowns")["unknowns"]  # type: ignore[no-any-return]


def test_review_queue_name_one_and_dismiss_another(
    page: Any, console: ConsoleProcess, mqtt: TestClient, prefix: str, artifacts: Any
) -> None:
    """Unknown faces that stay on the video are queued; the review page names one (it is enrolled)
    and dismisses another (it leaves the queue)."""
    wait_until(lambda: len(_unknowns(mqtt, prefix)) >= 2, 90, "two unknown faces queued for review")
    _open(page, console, f"#/library/{DEV}")
    page.click("#tab-review")
    cards = page.locator("#unknowns .card.unknown")
    cards.nth(1).wait_for(timeout=15_000)
    assert cards.first.locator("img.crop").get_attribute("src").startswith("data:image/jpeg;base64,/9j/")
    page.screenshot(path=str(artifacts / "library-review-queue.png"))
    named, other = cards.nth(0).get_attribute("data-id"), cards.nth(1).get_attribute("data-id")

    card = page.locator(f"#unknowns .card.unknown[data-id='{named}']")
    card.locator("input").fill("Reviewed")
    card.get_by_role("button", name="Enrol").click()
    card.wait_for(state="detached", timeout=30_000)  # the page reloads the queue without it
    person = _person(mqtt, prefix, "Reviewed")
    assert person is not None and person["samples"] == 1, person
    assert named not in {u["id"] for u in _unknowns(mqtt, prefix)}

    page.locator(f"#unknowns .card.unknown[data-id='{other}']").get_by_role("button", name="Dismiss").click()
    page.locator(f"#unknowns .card.unknown[data-id='{other}']").wait_for(state="detached", timeout=30_000)
    assert other not in {u["id"] for u in _unknowns(mqtt, prefix)}
    page.click("#tab-faces")
    page.locator(".card.person[data-label='Reviewed']").wait_for(timeout=15_000)


def test_remove_one_sample_of_a_person(
    page: Any, console: ConsoleProcess, mqtt: TestClient, prefix: str, agent: Agent, artifacts: Any
) -> None:
    """A person with two samples: removing one leaves one thumbnail, and face/list agrees."""
    _enrol_latest(mqtt, prefix, "Twice")
    seen = agent.worker.processed
    wait_until(lambda: agent.worker.processed > seen + 3, 60, "a later frame")
    _enrol_latest(mqtt, prefix, "Twice")
    ids = [s["id"] for s in (_person(mqtt, prefix, "Twice") or {"sample_list": []})["sample_list"]]
    assert len(ids) == 2, ids

    _open(page, console, f"#/library/{DEV}")
    card = page.locator(".card.person[data-label='Twice']")
    thumbs = card.locator(".thumb")
    thumbs.locator("img.loaded").nth(1).wait_for(timeout=15_000)
    assert thumbs.count() == 2
    page.screenshot(path=str(artifacts / "library-two-samples.png"))
    card.locator(f".thumb[data-sample='{ids[0]}'] .remove-sample").click()
    page.wait_for_function(  # the page reloads the library: the card again, with the other sample only
        "ids => JSON.stringify([...document.querySelectorAll(\".card.person[data-label='Twice'] .thumb\")]"
        ".map(t => t.dataset.sample)) === JSON.stringify(ids)",
        arg=[ids[1]],
        timeout=15_000,
    )
    assert [t.get_attribute("data-sample") for t in thumbs.all()] == [ids[1]]
    assert "1 sample" in card.inner_text()
    person = _person(mqtt, prefix, "Twice")
    assert person is not None and [s["id"] for s in person["sample_list"]] == [ids[1]], person
    assert person["samples"] == 1
    request_ok(mqtt, prefix, DEV, "face/forget", {"label": "Twice"})  # the next test names one person only


def test_not_this_person_sends_a_correction(
    page: Any, console: ConsoleProcess, mqtt: TestClient, prefix: str, artifacts: Any
) -> None:
    """Clicking a named face on the camera page and *Not Shown* sends face/reject with its box; the
    page shows the agent's reply and face/list counts the negative."""
    request_ok(mqtt, prefix, DEV, "face/forget", {"label": "Reviewed"})  # one person: no look-alike to tie with
    _open(page, console, f"#/camera/{DEV}")
    # a frame other than the enrolled one (0.95 and closer: "that is the sample itself", a conflict)
    named = "f => f.label === 'Shown' && f.similarity < 0.93"
    live = f"(window.maixConsole.page.current?.faces?.faces || []).filter({named})"
    for _attempt in range(4):  # the largest face of the latest frame; one more sample if the video moved on
        _enrol_latest(mqtt, prefix, "Shown")
        try:
            page.wait_for_function(f"{live}.length > 0", timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    before = request_ok(mqtt, prefix, DEV, "face/list")["faces"]
    assert [(p["label"], p["negatives"]) for p in before] == [("Shown", 0)], before
    reply = page.locator("#teach-reply")
    for _attempt in range(8):  # click the named face, then the same face on the still frame the view froze on
        page.wait_for_function(f"{live}.length > 0", timeout=60_000)
        x, y, w, h = page.evaluate(f"{live}[0].box")
        page.mouse.click(*_canvas_point(page, x + w / 2, y + h / 2))
        page.wait_for_function("window.maixConsole.page.frozen?.faces !== undefined", timeout=30_000)
        still = page.evaluate(f"window.maixConsole.page.frozen.faces.filter({named})")
        if not still:
            page.click("#teach-cancel")
            continue
        x, y, w, h = still[0]["box"]
        page.mouse.click(*_canvas_point(page, x + w / 2, y + h / 2))
        page.wait_for_selector("#face-reject", timeout=10_000)
        assert page.locator("#face-reject").inner_text() == "Not Shown"
        page.click("#face-reject")
        reply.filter(has_text="face/reject").wait_for(timeout=60_000)
        break
    assert reply.inner_text() == "face/reject: ok", reply.inner_text()
    answer = page.locator("#log div", has_text="face/reject:").first
    assert answer.inner_text().startswith("face/reject: ok"), answer.inner_text()
    page.screenshot(path=str(artifacts / "camera-not-this-person.png"))
    after = request_ok(mqtt, prefix, DEV, "face/list")["faces"]
    assert [(p["label"], p["samples"], p["negatives"]) for p in after] == [("Shown", before[0]["samples"], 1)], after
    assert len(after[0]["negative_list"]) == 1


def _canvas_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of frame pixel (x, y) on the live view."""
    return page.evaluate(  # type: ignore[no-any-return]
        """([x, y]) => { const p = window.maixConsole.page; const c = p.canvas; const r = c.getBoundingClientRect();
        const k = r.width / c.width; return [r.left + x * p.scale * k, r.top + y * p.scale * k]; }""",
        [x, y],
    )
