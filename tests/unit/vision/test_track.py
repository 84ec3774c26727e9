"""NanoTracker on the real NanoTrack v2/v3 models and the real VOT2015 "bag" frames (no mocks)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.models.manifest import load_manifest
from agent.vision.runtime import OnnxModel
from agent.vision.track import NanoTracker, TrackParams, TrackResult, crop_square
from tools.eval_track import iou

Box = tuple[float, float, float, float]
Models = tuple[OnnxModel, OnnxModel]
N_FRAMES = 70


@pytest.fixture(scope="module")
def bag(eval_dir: Path) -> tuple[list[np.ndarray], list[Box]]:
    """The first N_FRAMES frames of vot15_bag and their axis-aligned ground-truth boxes."""
    folder = eval_dir / "tracking" / "vot15_bag"
    paths = sorted((folder / "imgs").glob("*.jpg"))[:N_FRAMES]
    frames = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        assert img is not None, p
        frames.append(img)
    boxes: list[Box] = []
    for line in (folder / "groundtruth.txt").read_text().splitlines()[:N_FRAMES]:
        v = [float(a) for a in line.split(",")]
        xs, ys = v[0::2], v[1::2]
        boxes.append((min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
    assert len(frames) == len(boxes) == N_FRAMES
    return frames, boxes


@pytest.fixture(scope="module", params=["v2", "v3"])
def models(request: pytest.FixtureRequest, models_dir: Path) -> Models:
    manifest = load_manifest()
    version = request.param
    return (
        OnnxModel(manifest.get(f"nanotrack_{version}_backbone"), models_dir, threads=1),
        OnnxModel(manifest.get(f"nanotrack_{version}_head"), models_dir, threads=1),
    )


def test_short_run_keeps_the_bag(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    frames, gt = bag
    tracker = NanoTracker(*models)
    tracker.init(frames[0], gt[0])
    results = [tracker.track(f) for f in frames[1:40]]
    ious = [iou(r.box, g) for r, g in zip(results, gt[1:40], strict=True)]
    assert float(np.mean(ious)) > 0.7
    assert min(ious) > 0.4
    assert all(r.state == "tracking" for r in results)
    assert all(isinstance(r.score, float) and 0.9 <= r.score <= 1.0 for r in results)
    assert all(type(v) is float for r in results for v in (*r.box, r.score))  # plain floats for msgpack


def test_head_grid_is_read_from_the_model(models: Models) -> None:
    tracker = NanoTracker(*models)
    expected = 16 if models[1].spec.name.startswith("nanotrack_v2") else 15
    assert tracker.grid == expected
    assert tracker.threshold == 0.9  # calibrated default: a correct track scores >= 0.96


@pytest.mark.parametrize(
    "box",
    [
        (100.0, 100.0, 0.0, 50.0),
        (100.0, 100.0, 50.0, -5.0),
        (480.0, 100.0, 50.0, 50.0),  # right of a 480-wide frame
        (-60.0, 10.0, 50.0, 50.0),  # left of it
        (10.0, 400.0, 50.0, 50.0),  # below a 360-high frame
        (math.nan, 10.0, 50.0, 50.0),
    ],
)
def test_invalid_box_raises(models: Models, bag: tuple[list[np.ndarray], list[Box]], box: Box) -> None:
    tracker = NanoTracker(*models)
    with pytest.raises(ValueError):
        tracker.init(bag[0][0], box)
    assert not tracker.initialised


def test_a_sub_pixel_box_is_tracked(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    """A box smaller than a pixel is a valid (if hopeless) target: a one-pixel template, no error."""
    frames, _ = bag
    tracker = NanoTracker(*models)
    tracker.init(frames[0], (100.0, 100.0, 0.1, 0.1))
    r = tracker.track(frames[1])
    assert all(math.isfinite(v) for v in r.box) and r.box[2] >= 10 and r.box[3] >= 10


def test_track_before_init_and_bad_frames(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    frames, gt = bag
    tracker = NanoTracker(*models)
    with pytest.raises(RuntimeError):
        tracker.track(frames[0])
    with pytest.raises(ValueError):
        tracker.init(frames[0][:, :, 0], gt[0])
    with pytest.raises(ValueError):
        tracker.init(frames[0].astype(np.float32), gt[0])


def test_state_moves_only_on_a_hit(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    """MaixPy's rule: threshold 1.01 is never reached, so the centre and size never move."""
    frames, gt = bag
    tracker = NanoTracker(*models, TrackParams(score=1.01, lost_after=3, search_after=100))
    tracker.init(frames[0], gt[0])
    centre, size = tracker.center, tracker.size
    results = [tracker.track(f) for f in frames[1:25]]
    assert tracker.center == centre and tracker.size == size
    # The prediction is still returned (the bag moves, so the boxes do too) ...
    assert max(abs(r.box[0] - results[0].box[0]) for r in results) > 2.0
    # ... and the state reports the misses: coasting, then lost after lost_after misses.
    assert [r.state for r in results[:3]] == ["tracking", "tracking", "lost"]
    assert all(r.state == "lost" for r in results[2:])
    assert tracker.misses == len(results)


def _run(tracker: NanoTracker, frames: list[np.ndarray]) -> list[TrackResult]:
    return [tracker.track(f) for f in frames]


def test_lost_search_and_resume_after_grey_frames(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    """Frames 31-50 go grey: the target is gone, then comes back where it has moved meanwhile."""
    frames, gt = bag
    grey = np.full_like(frames[0], 128)
    params = TrackParams(lost_after=3, search_after=6, search_every=4)
    tracker = NanoTracker(*models, params)
    tracker.init(frames[0], gt[0])
    before = _run(tracker, frames[1:30])
    assert all(r.state == "tracking" for r in before)
    gap = _run(tracker, [grey] * 20)
    states = [r.state for r in gap]
    assert all(r.score < tracker.threshold for r in gap)
    assert states[:2] == ["tracking", "tracking"]  # coasting before lost_after
    assert states[2] == "lost"
    assert states[6] == "searching"  # misses 6, 10, 14, 18 trigger a wide search
    assert [i for i, s in enumerate(states) if s == "searching"] == [6, 10, 14, 18]
    assert set(states[2:]) == {"lost", "searching"}
    after = _run(tracker, frames[50:N_FRAMES])
    assert after[0].state == "tracking"
    ious = [iou(r.box, g) for r, g in zip(after, gt[50:N_FRAMES], strict=True)]
    assert all(r.state == "tracking" for r in after)
    assert float(np.mean(ious)) > 0.6


def test_wide_search_finds_a_target_that_moved_away(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    """After a grey gap the frames come back shifted 150 px: only the wide search can find it."""
    frames, gt = bag
    grey = np.full_like(frames[0], 128)
    shift = np.array([[1, 0, -150], [0, 1, 0]], dtype=np.float32)
    h, w = frames[0].shape[:2]
    moved = [cv2.warpAffine(f, shift, (w, h), borderMode=cv2.BORDER_REFLECT) for f in frames[30:45]]
    moved_gt = [(g[0] - 150, g[1], g[2], g[3]) for g in gt[30:45]]

    def states(search_after: int) -> list[TrackResult]:
        tracker = NanoTracker(*models, TrackParams(lost_after=2, search_after=search_after, search_every=3))
        tracker.init(frames[0], gt[0])
        _run(tracker, frames[1:20])
        _run(tracker, [grey] * 5)  # misses 1..5 (a wide search on miss 4 finds nothing)
        return _run(tracker, moved)  # misses 6, 7: the wide search on miss 7 finds it

    local_only = states(search_after=1000)
    assert all(r.state == "lost" for r in local_only)  # the local search cannot reach 150 px
    after = states(search_after=4)
    assert [r.state for r in after[:2]] == ["lost", "lost"]
    assert all(r.state == "tracking" for r in after[2:])
    ious = [iou(r.box, g) for r, g in zip(after[2:], moved_gt[2:], strict=True)]
    assert float(np.mean(ious)) > 0.6


def test_painted_out_target_is_not_a_hit_with_verify(models: Models, bag: tuple[list[np.ndarray], list[Box]]) -> None:
    """NanoTrack's raw score stays high when the target is painted out; the template check drops it."""
    frames, gt = bag
    erased = []
    for f, g in zip(frames[60:70], gt[60:70], strict=True):
        x, y, bw, bh = (int(v) for v in g)
        mask = np.zeros(f.shape[:2], np.uint8)
        mask[max(0, y - 8) : y + bh + 8, max(0, x - 8) : x + bw + 8] = 255
        erased.append(cv2.inpaint(f, mask, 5, cv2.INPAINT_TELEA))
    raw = NanoTracker(*models, TrackParams(verify=False))
    raw.init(frames[0], gt[0])
    _run(raw, frames[1:60])
    raw_gap = _run(raw, erased)
    checked = NanoTracker(*models)
    checked.init(frames[0], gt[0])
    _run(checked, frames[1:60])
    gap = _run(checked, erased)
    # Without the check most painted-out frames still count as hits (v2 9/10, v3 8/10) ...
    assert sum(r.score >= raw.threshold for r in raw_gap) >= 6
    # ... with it they are misses (v2 1/10, v3 0/10) and the target is reported lost.
    assert sum(r.score >= checked.threshold for r in gap) <= 2
    assert gap[-1].state in ("lost", "searching")


def test_crop_square_is_the_exact_window() -> None:
    """The crop is the box-centred window to the sub-pixel: on whole pixels at 1:1 it is the
    frame's slice (a box (x, y, w, h) is centred on x + w/2); otherwise cv2.warpAffine of it."""
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    pad = (10.0, 20.0, 30.0)
    x, y, w = 40, 30, 50
    got = crop_square(frame, x + w / 2, y + w / 2, float(w), w, pad)
    assert np.array_equal(got[0], frame[y : y + w, x : x + w].transpose(2, 0, 1).astype(np.float32))
    for cx, cy, side, out in [(80.0, 60.0, 50.0, 127), (5.3, 100.7, 90.0, 255), (150.0, 3.0, 301.0, 255)]:
        got = crop_square(frame, cx, cy, side, out, pad)
        assert got.shape == (1, 3, out, out) and got.dtype == np.float32
        s = out / side
        m = np.array([[s, 0.0, s * (0.5 - cx + side / 2) - 0.5], [0.0, s, s * (0.5 - cy + side / 2) - 0.5]])
        want = cv2.warpAffine(frame, m, (out, out), flags=cv2.INTER_LINEAR, borderValue=pad)
        diff = np.abs(got - want.transpose(2, 0, 1)[None].astype(np.float32))
        assert float(diff.mean()) < 0.5 and float(diff.max()) <= 2.0


def test_tiles_cover_the_frame(models: Models) -> None:
    tracker = NanoTracker(*models, TrackParams(max_tiles=6))
    for ww, hh, s_x in [(480, 360, 300.0), (480, 360, 60.0), (640, 480, 900.0), (1920, 1080, 100.0)]:
        tiles = tracker._tiles(ww, hh, s_x)
        assert 1 <= len(tiles) <= 6
        covered = np.zeros((hh, ww), bool)
        for (cx, cy), side in tiles:
            assert side >= min(s_x, max(ww, hh)) - 1e-6
            x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
            covered[y0 : int(cy + side / 2) + 1, x0 : int(cx + side / 2) + 1] = True
        assert covered.all()


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        TrackParams(lost_after=0)
    with pytest.raises(ValueError):
        TrackParams(verify_min=0.0)
    with pytest.raises(ValueError):
        TrackParams(max_tiles=0)
    with pytest.raises(ValueError):
        TrackParams(score=-0.1)


def test_feature_check_agrees_with_a_recropped_template(
    models: Models, bag: tuple[list[np.ndarray], list[Box]]
) -> None:
    """The check reads the search features under the hit instead of re-running the backbone on a
    re-cropped template: on a correct track the two cosines agree and both pass ``verify_min``."""
    frames, gt = bag
    tracker = NanoTracker(*models, TrackParams(verify=False))
    tracker.init(frames[0], gt[0])
    p = tracker.params
    gaps = []
    for frame in frames[1:30]:
        s_z = tracker._template_side()
        cand = tracker._search(frame, tracker.center, s_z * p.instance_size / p.exemplar_size, 127 / s_z, window=True)
        fast, slow = tracker._feature_similarity(cand), tracker._similarity(frame, cand)
        assert fast >= tracker.verify_min and slow >= tracker.verify_min
        gaps.append(abs(fast - slow))
        tracker.track(frame)
    assert float(np.median(gaps)) < 0.1
