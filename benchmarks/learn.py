"""`aimusicd learn` speed: every real ACE-Step 1.5 track (about 15 min) against the human music of
two calibration-split packages (about 20 min), the default five codec conditions.

    python benchmarks/learn.py

Run twice with one empty feature cache: the first run measures every excerpt, the second reads the
cache. Targets (2-core CPU): the first <= 5 minutes for 30 minutes of examples (scaled to the
minutes measured); the second seconds. Each run prints its wall time, the example minutes, the
target and the load average before and after (the figures mean little on a busy machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from support.corpora import ace_step, package

    with tempfile.TemporaryDirectory(prefix="aimusicd-bench-learn-") as tmp:
        work = Path(tmp)
        folders = {"ai": work / "ai", "human": work / "human"}
        for side, files in (("ai", ace_step("train", "calib", "test")),
                            ("human", package("lincity-ng-data") + package("frozen-bubble-data"))):
            folders[side].mkdir()
            for f in files:
                (folders[side] / f.name).symlink_to(f)
        env = {**os.environ, "AIMUSICD_DATA": str(work / "data"), "AIMUSICD_CACHE": str(work / "cache")}
        results = []
        for run in ("first", "cached"):
            load_before = os.getloadavg()
            cmd = [sys.executable, "-m", "daemon", "learn", "--ai", str(folders["ai"]), "--human",
                   str(folders["human"]), "--name", "bench", "--force", "--json"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            meta = json.loads(proc.stdout)
            minutes = (meta["examples"]["ai"]["seconds"] + meta["examples"]["human"]["seconds"]) / 60
            target = 300.0 * minutes / 30.0 if run == "first" else 30.0
            results.append({"run": run, "seconds": round(seconds, 1), "example_minutes": round(minutes, 1),
                            "target_s": round(target, 1), "within_target": seconds <= target,
                            "pieces": meta.get("pieces"), "combine": meta.get("combine"),
                            "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                            "load_after": [round(x, 2) for x in os.getloadavg()]})
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
