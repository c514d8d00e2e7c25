"""A batch driver process on the tiny random models, as `aimusicd batch` runs but with the test
models (which no preset can name):

    python -m support.batch_driver --out DIR --mode MODE [--ray ADDRESS] [--preset TOML] SOURCE...

Prints one JSON line: the counts of the run and each listed file's row.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from daemon.batch import BatchOptions, run_batch
from daemon.config import load_config
from support.models import tiny_model_set


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("sources", nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mode", required=True)
    p.add_argument("--ray")
    p.add_argument("--preset")
    args = p.parse_args()
    models = Path(tempfile.mkdtemp(prefix="tiny-models-", dir=args.out.parent))
    tiny = tiny_model_set(models)
    result = run_batch(load_config(args.preset), BatchOptions(args.sources, args.out, args.mode, args.ray),
                       make_analyzer=tiny.analyzer)
    print(json.dumps({"analysed": result.analysed, "already_done": result.already_done,
                      "duplicates": result.duplicates, "rows": [asdict(r) for r in result.rows]}))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
