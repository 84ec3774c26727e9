"""Open-set faces on ../shared/eval/faces_open (LFW colour, Extended Yale B grey, Essex faces94)
with the protocol of ``tools/eval_faces_open.py``: identities split (seeded) into a calibration
and a test half, 43 strangers held back per episode, 1 or 5 photos enrolled; per dataset and per
split, known faces named right and strangers rejected at the agent's default thresholds.

The photos go through the agent's own detector, quality gate, embedder and decision rule
(``BankIndex.match``), not through MQTT: 2,629 photos x 20 episodes would take an hour as
commands. They are embedded once per test session (~2-3 min on 2 idle cores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.pipelines.faces import FaceThresholds
from agent.vision.face_decision import DecisionRule
from tools.eval_faces_open import BARS, DATASETS, EPISODE_SEEDS, Photos, Tally, embed_photos, episode, evaluate
from tools.eval_faces_open import split_identities as split

Results = dict[tuple[str, int], dict[str, Tally]]


@pytest.fixture(scope="module")
def photos(eval_dir: Path, models_dir: Path) -> Photos:
    return embed_photos(eval_dir / "faces_open", models_dir)


@pytest.fixture(scope="module")
def results(photos: Photos) -> Results:
    th = FaceThresholds()
    return evaluate(photos, DecisionRule(match=th.match, margin=th.margin, margin_grey=th.margin_grey))


@pytest.mark.accuracy
def test_protocol_holds_back_enough_strangers(photos: Photos) -> None:
    assert len(photos.identity) == 2629 and len(set(photos.identity)) == 211
    assert photos.found.all()  # every photo gives a face on its canvas
    for part in split(photos).values():
        for seed in EPISODE_SEEDS:
            ep = episode(photos, part, 1, seed)
            assert ep.strangers >= 40
            strangers = {photos.identity[q] for q, t in zip(ep.queries, ep.truth, strict=True) if t is None}
            assert len(strangers) == ep.strangers and not strangers & set(ep.labels)


@pytest.mark.accuracy
@pytest.mark.parametrize("split_name", ["calibration", "test"])
@pytest.mark.parametrize("shots", [1, 5])
@pytest.mark.parametrize("dataset", DATASETS)
def test_open_set_bar(results: Results, split_name: str, shots: int, dataset: str, record_property: Any) -> None:
    tally = results[(split_name, shots)][dataset]
    known, rejected = tally.rates()
    record_property("known", known)
    record_property("strangers_rejected", rejected)
    print(f"{split_name} {shots} photo(s) {dataset}: known {known:.3f}, strangers rejected {rejected:.3f}")
    assert tally.known > 300 and tally.strangers > 300
    bar_known, bar_rejected = BARS[shots]
    assert known >= bar_known
    assert rejected >= bar_rejected
