"""A quick COCO check on the first images of coco128 (the full run: tools/eval_segment.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[3] / "tools" / "eval_segment.py"


def test_coco_subset_through_the_eval_tool(eval_dir: Path, models_dir: Path) -> None:
    args = ["--eval-dir", str(eval_dir), "--models-dir", str(models_dir)]
    args += ["--limit", "24", "--runs", "0", "--json"]
    proc = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["images"] == 24 and res["masks_from"] == "polygons"
    assert res["box_map50"] > 0.35
    assert res["mask_map50"] > 0.3
