"""How a model pack's pieces of evidence should combine, measured on music the pack never saw.

`aimusicd learn` already compares the ways of reading the evidence by cross-validation on its own
examples; this measures each of them the way the ACE-Step test does: fitted on the ACE-Step
train+calib prompts against the human music of three calibration-split packages, then scored on
the test prompts and on held-out test-split packages (30-s excerpts, each codec condition), at the
threshold the pack would have written.

    python benchmarks/learn_pieces.py [--conditions as-given mp3-64 ...] [--human-test PACKAGE ...]

Features are cached per file in the usual cache folder (`features/`), so a second run is quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from support.corpora import ace_step, package

    from daemon.config import cache_dir
    from daemon.engines.cnn import PACKAGED_WEIGHTS
    from daemon.engines.logistic import sigmoid
    from daemon.engines.packs import PackModel
    from daemon.hashing import sha256_file
    from daemon.learning import features, learn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", nargs="+", default=["as-given", "mp3-128", "mp3-64", "aac-128", "opus-64"])
    parser.add_argument("--human-learn", nargs="+", default=["lincity-ng-data", "frozen-bubble-data",
                                                              "extremetuxracer-data"])
    parser.add_argument("--human-test", nargs="+", default=["xmoto-data", "flare-game"])
    parser.add_argument("--ai-learn", nargs="+", default=["train", "calib"], help="ACE-Step prompt splits")
    parser.add_argument("--fpr", type=float, default=0.01)
    args = parser.parse_args()

    human_learn = [f for p in args.human_learn for f in package(p)]
    human_test = [f for p in args.human_test for f in package(p)]
    sides = {"learn": features.sources_of(ace_step(*args.ai_learn), human_learn),
             "test": features.sources_of(ace_step("test"), human_test)}
    cnn = {"cnn_weights": PACKAGED_WEIGHTS, "cnn_sha256": sha256_file(PACKAGED_WEIGHTS)}
    log = lambda m: print(m, file=sys.stderr, flush=True)   # noqa: E731
    measured = {k: features.measure(v, args.conditions, cache_dir() / "features", log=log, **cnn)[0]
                for k, v in sides.items()}
    pieces = ("spectrum", "embedding", "images")
    train = learn.table_of(measured["learn"], sides["learn"], pieces)
    test = learn.table_of(measured["test"], sides["test"], pieces)
    fold = learn.fold_of(train)
    held_out: dict = {}
    ways = [("joint", pieces, "joint"), ("max", pieces, "max"), ("spectrum+embedding", pieces[:2], "joint")]
    ways += [(p, (p,), "joint") for p in pieces]
    print(f"learn: {int((train.y == 1).sum())} generator / {int((train.y == 0).sum())} human rows; "
          f"test: {int((test.y == 1).sum())} / {int((test.y == 0).sum())}; conditions {args.conditions}")
    head = f"{'evidence':<20} {'thr':>6} {'cv_auc':>6} {'cv_min_rec':>10} {'test_auc':>8} " + " ".join(
        f"{c + ' rec/fp':>16}" for c in args.conditions)
    print(head + "\n" + "-" * len(head))
    rows = []
    for label, reads, combine in ways:
        cand, platt = learn._candidate(train, label, reads, combine, fold, args.fpr, held_out)
        heads = ({"joint": learn._calibrated_final(train, reads, *platt["joint"])} if combine == "joint"
                 else {p: learn._calibrated_final(train, (p,), *platt[p]) for p in reads})
        model = PackModel("x", reads, combine, heads, cand.threshold)
        p = sigmoid(model.logits({r: test.x[r] for r in reads}))
        cells = []
        for c in args.conditions:
            ai, hum = (test.y == 1) & (test.condition == c), (test.y == 0) & (test.condition == c)
            cells.append(f"{np.mean(p[ai] >= cand.threshold):.3f}/{np.mean(p[hum] >= cand.threshold):.3f}")
        from daemon.training.metrics import roc_auc

        auc = float(roc_auc(test.y, p))
        rows.append({"evidence": label, "threshold": cand.threshold, "cv_auc": cand.auc, "cv_min_recall": cand.rank[0],
                     "test_auc": auc, "test": dict(zip(args.conditions, cells))})
        print(f"{label:<20} {cand.threshold:>6.4g} {cand.auc:>6.3f} {cand.rank[0]:>10.3f} {auc:>8.3f} "
              + " ".join(f"{x:>16}" for x in cells), flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
