"""Fit what sits on top of the engines: the Demucs head, the CNN's Platt scaling, the fusion, and
the verdict thresholds - each on data the layer below never trained on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from ..engines.demucs.features import FEATURE_NAMES
from ..engines.fusion import BANDLIMIT_LIMIT, NARROW_BANDLIMIT, FusionParams, decide, engine_features, model_features
from ..engines.logistic import LogisticModel, fit_platt, sigmoid
from ..evaluation.fusion_data import FusionData, fused_probabilities
from ..evaluation.metrics import log_loss
from .scoring import Scored

HEAD_L2 = 2.0
FUSION_L2 = 1.0
CORRECTION_L2 = 10.0       # the Demucs correction learns from few examples: shrink it harder
MAX_HUMAN_FP = 0.01        # at most 1 % of human music called "ai"...
MAX_HUMAN_UNCERTAIN = 0.05  # ...and at most 5 % left "uncertain", in every codec group.
# Calibration leaves less than that "uncertain" on its own music (the human threshold and the
# human limits together), so that music it did not see stays within the 5 %.
CALIB_UNCERTAIN = 0.04
HUMAN_THRESHOLD_UNCERTAIN = 0.025   # the human threshold's share of it
# A little room above the worst human seen in calibration: twice its odds (a margin in p would
# mean nothing near p = 1, where a well-separated model's thresholds sit).
THRESHOLD_ODDS_MARGIN = float(np.log(2.0))
AI_THRESHOLD_RANGE = (0.5, 0.999)   # never "ai" below even odds; never out of reach
HUMAN_THRESHOLD_MAX = 0.5   # never "human" where the odds favour AI: "uncertain" instead


def fit_head(train: list[Scored]) -> LogisticModel:
    rows = [s for s in train if s.features is not None]
    x = np.array([[s.features[f] for f in FEATURE_NAMES] for s in rows])
    y = np.array([s.label for s in rows])
    return LogisticModel.fit(list(FEATURE_NAMES), x, y, l2=HEAD_L2)


def head_logit(head: LogisticModel, s: Scored) -> float | None:
    return None if s.features is None else head.logit_of(s.features)


def codec_groups(scored: list[Scored], by_condition: bool = False) -> list[str]:
    """The codec group each example's thresholds must hold in: its codec family (examples with a
    random bitrate), or its exact condition (the human music delivered through every evaluation
    condition, whose low bitrates a random draw reaches too rarely to hold a threshold)."""
    return [s.codec if by_condition else s.codec.split("-")[0] for s in scored]


def fusion_data(scored: list[Scored], platt: tuple[float, float], head: LogisticModel,
                weight: np.ndarray | None = None, by_condition: bool = False) -> FusionData:
    a, b = platt
    demucs = [head_logit(head, s) for s in scored]
    return FusionData(
        cnn=np.array([a * s.cnn_raw + b for s in scored]),
        demucs=np.array([np.nan if d is None else d for d in demucs]),
        delivery=[s.delivery for s in scored],
        y=np.array([s.label for s in scored]),
        group=codec_groups(scored, by_condition),
        images=np.array([np.nan if s.images is None else s.images for s in scored]),
        weight=weight,
        fingerprint=np.array([np.nan if s.fingerprint is None else s.fingerprint for s in scored]),
        matched=np.array([np.nan if s.matched_p is None else s.matched_p for s in scored]),
    )


def _fit(data: FusionData, names: list[str], engines: tuple[str, ...], mask: np.ndarray, l2: float,
         offset: np.ndarray | None = None, weight: np.ndarray | None = None) -> LogisticModel:
    rows = (data.inputs(i, engines) for i in np.nonzero(mask)[0])
    x = np.array([[row[n] for n in names] for row in rows])
    return LogisticModel.fit(names, x, data.y[mask], l2=l2,
                             offset=None if offset is None else offset[mask],
                             weight=None if weight is None else weight[mask])


def _logits(model: LogisticModel, data: FusionData, engines: tuple[str, ...],
            rows: np.ndarray | None = None) -> np.ndarray:
    """The model's logit for each row (all rows, or the given indices) from those engines' evidence."""
    rows = range(len(data.y)) if rows is None else rows
    return np.array([model.logit_of(data.inputs(i, engines)) for i in rows])


# The CNN path's two forms: the CNN logit with the codec evidence and its interactions (so that
# lossy input can move the CNN's weight), or Platt scaling alone. The first is the default where
# nothing can be held out; otherwise the data chooses (CnnPathChoice).
CNN_PATH_FORMS = {"codec-aware": model_features("cnn"), "platt-only": ["cnn_logit"]}
WEIGHINGS = ("examples alike", "packages alike")


def _fit_cnn_only(data: FusionData, features: list[str]) -> LogisticModel:
    """The one fit that takes the calibration weights, as Platt scaling does: the CNN path choice
    tests this path. The Demucs fits see a few dozen examples, too few to reweigh by package."""
    return _fit(data, features, ("cnn",), np.ones(len(data.y), bool), FUSION_L2, weight=data.weight)


def package_weights(packages: list[str]) -> np.ndarray:
    """Every package weighs the same in total, however many examples it has (mean weight 1)."""
    counts = Counter(packages)
    w = np.array([1.0 / counts[p] for p in packages])
    return w / w.mean()


def weights_for(weighing: str, packages: list[str]) -> np.ndarray:
    return package_weights(packages) if weighing == "packages alike" else np.ones(len(packages))


@dataclass(frozen=True)
class CnnPathChoice:
    """Leave-one-package-out choice of the CNN path's form and of how calibration examples are
    weighed: each calibration package left out in turn, Platt scaling and the CNN-only fusion fitted
    on the others in each form and weighing, scored by log-loss on the left-out package. The lowest
    mean wins; a tie keeps the earlier (simpler to defend) one. One package: nothing to hold out,
    so the defaults (codec-aware, examples alike) stand untested."""
    packages: int
    logloss: dict[str, dict[str, float]]   # form -> weighing -> mean held-out log-loss
    form: str
    weighing: str

    @property
    def features(self) -> list[str]:
        return CNN_PATH_FORMS[self.form]

    def to_dict(self) -> dict:
        return {"packages": self.packages, "form": self.form, "weighing": self.weighing,
                "logloss": {f: {w: round(v, 4) for w, v in ws.items()} for f, ws in self.logloss.items()}}


def choose_cnn_path(scored: list[Scored], head: LogisticModel) -> tuple[np.ndarray, CnnPathChoice]:
    """The CNN path's form and the calibration weights. One package can hold most of the calibration
    music (and its quirks), and codec terms fitted on a few packages can learn those packages'
    quirks rather than the codec's effect: each is kept only where it predicts unseen packages better."""
    packages = [s.package for s in scored]
    names = sorted(set(packages))
    default_form, default_weighing = next(iter(CNN_PATH_FORMS)), WEIGHINGS[0]
    if len(names) < 2:
        return (weights_for(default_weighing, packages),
                CnnPathChoice(len(names), {}, default_form, default_weighing))

    def held_out_loss(left_out: str, features: list[str], weighing: str) -> float:
        fit_rows = [s for s in scored if s.package != left_out]
        w = weights_for(weighing, [s.package for s in fit_rows])
        platt = fit_platt(np.array([s.cnn_raw for s in fit_rows]), np.array([s.label for s in fit_rows]), w)
        model = _fit_cnn_only(fusion_data(fit_rows, platt, head, w), features)
        held = fusion_data([s for s in scored if s.package == left_out], platt, head)
        return log_loss(held.y, _logits(model, held, ("cnn",)))

    loss = {form: {weighing: float(np.mean([held_out_loss(n, features, weighing) for n in names]))
                   for weighing in WEIGHINGS}
            for form, features in CNN_PATH_FORMS.items()}
    form, weighing = min(((f, w) for f in CNN_PATH_FORMS for w in WEIGHINGS), key=lambda c: loss[c[0]][c[1]])
    return weights_for(weighing, packages), CnnPathChoice(len(names), loss, form, weighing)


@dataclass(frozen=True)
class CorrectionCheck:
    """Held-out test of a correction on the rows that carry its evidence: each group (a track, or a
    package) left out in turn, the correction fitted on the others; mean log-loss of the logits
    below it, and of those plus the held-out correction."""
    rows: int
    groups: int
    unit: str                # what a group is: "track" or "package"
    logloss_before: float
    logloss_corrected: float

    @property
    def kept(self) -> bool:
        return self.logloss_corrected < self.logloss_before

    def to_dict(self) -> dict:
        return {"rows": self.rows, "groups": self.groups, "unit": self.unit,
                "logloss_before": round(self.logloss_before, 4),
                "logloss_corrected": round(self.logloss_corrected, 4), "kept": self.kept}


@dataclass(frozen=True)
class FusionChecks:
    images: CorrectionCheck
    demucs: CorrectionCheck


def fit_fusion(data: FusionData, tracks: list[str], packages: list[str], name: str,
               cnn_features: list[str], conditions: FusionData | None = None) -> tuple[FusionParams, FusionChecks]:
    """The fusion models and thresholds, the CNN-only model over `cnn_features` (the CNN path's
    chosen form); `tracks` and `packages` name each row's source. The thresholds and human limits
    hold on `data` and on `conditions` (human music under each evaluation condition) alike. Each correction is tested on
    music its fit did not see: the image score by package (every calibration example has one, and
    a package's production can look like images), the Demucs evidence by track (few examples carry
    it). One that does not beat what lies below it there is zeroed: evidence enters a verdict only
    where it has been shown to help on music no fit saw."""
    has_images, has_demucs = ~np.isnan(data.images), ~np.isnan(data.demucs)
    cnn_only = _fit_cnn_only(data, cnn_features)
    cnn_logits = _logits(cnn_only, data, ("cnn",))
    images, images_check = _held_out_correction(data, "images", has_images, FUSION_L2, cnn_logits,
                                                packages, "package")
    path_logits = cnn_logits.copy()
    path_logits[has_images] += _logits(images, data, ("images",), np.nonzero(has_images)[0])
    demucs, demucs_check = _held_out_correction(data, "demucs", has_demucs, CORRECTION_L2, path_logits,
                                                tracks, "track")
    params = FusionParams(
        name,
        cnn_only=cnn_only,
        demucs_only=_fit(data, model_features("demucs"), ("demucs",), has_demucs, FUSION_L2),
        images_correction=images,
        demucs_correction=demucs,
        ai_threshold=0.5, human_threshold=0.5, lossy_band=(0.0, 1.0))
    held = data if conditions is None else data.joined(conditions)
    probs = fused_probabilities(params, held)
    # The paths auto and full mode take (the CNN alone for live windows, with the image score for
    # files, and with Demucs too) set the thresholds; the Demucs-only model serves only the
    # explicit "demucs" mode and is reported, not tuned for.
    paths = {k: probs[k] for k in ("cnn", "cnn+img", "fused")}
    ai_t, human_t = choose_thresholds(paths, held)
    # A codec that cuts the band below NARROW_BAND_HZ leaves its artefacts where the fingerprints
    # and the CNN look: such music spans other ranges than wide-band music, and each tier gets its own.
    narrow = np.array([d.bandlimit > NARROW_BANDLIMIT for d in held.delivery])
    params = replace(params, ai_threshold=ai_t, human_threshold=human_t,
                     lossy_band=widened_band(human_t, ai_t),
                     human_limits=choose_human_limits(paths, held, ai_t, human_t, ~narrow),
                     narrow_human_limits=choose_human_limits(paths, held, ai_t, human_t, narrow))
    return params, FusionChecks(images_check, demucs_check)


def _held_out_correction(data: FusionData, source: str, mask: np.ndarray, l2: float, below: np.ndarray,
                         groups: list[str], unit: str) -> tuple[LogisticModel, CorrectionCheck]:
    """The correction for `source`'s evidence on top of the logits `below`, fitted on the rows in
    `mask`, and its held-out check; zeroed where the check finds it does not help."""
    correction = _correction(data, source, mask, l2, below)
    check = check_correction(data, groups, unit, source, mask, l2, below)
    if not check.kept:
        correction = replace(correction, coef=[0.0] * len(correction.coef))
    return correction, check


def _correction(data: FusionData, source: str, mask: np.ndarray, l2: float,
                below: np.ndarray) -> LogisticModel:
    return _fit(data, engine_features(source), (source,), mask, l2, offset=below)


def check_correction(data: FusionData, groups: list[str], unit: str, source: str, mask: np.ndarray,
                     l2: float, below: np.ndarray) -> CorrectionCheck:
    names = sorted({groups[i] for i in np.nonzero(mask)[0]})
    z, y = below[mask], data.y[mask]
    if len(names) < 2:   # nothing to hold out: no evidence that the correction helps
        loss = log_loss(y, z) if len(y) else 0.0
        return CorrectionCheck(len(y), len(names), unit, loss, loss)
    held_out = np.zeros(len(data.y))
    for name in names:
        test = mask & np.array([g == name for g in groups])
        fit = _correction(data, source, mask & ~test, l2, below)
        held_out[test] = _logits(fit, data, (source,), np.nonzero(test)[0])
    return CorrectionCheck(len(y), len(names), unit, log_loss(y, z), log_loss(y, z + held_out[mask]))


def choose_thresholds(probs: dict[str, np.ndarray], data: FusionData) -> tuple[float, float]:
    """ai: above the (1 - MAX_HUMAN_FP) quantile of human probabilities in the worst codec group
    and model; human: at the (1 - HUMAN_THRESHOLD_UNCERTAIN) quantile likewise, but never above even
    odds: where human music overlaps the fakes that far, more of it stays "uncertain" rather than
    fakes in the overlap being called "human" with a probability that says "ai". The
    quantiles ignore the fits' weights: every human example counts fully here, whichever package
    it comes from, so a package whose music looks AI-like still holds the threshold up."""
    ai_t = ai_threshold(probs.values(), data.y, data.group)
    mid = worst_human_quantile(probs.values(), data.y, data.group, 1 - HUMAN_THRESHOLD_UNCERTAIN)
    human_t = float(np.clip(_odds_shift(mid, THRESHOLD_ODDS_MARGIN), 0.01,
                            min(HUMAN_THRESHOLD_MAX, ai_t - 0.01)))
    return ai_t, round(human_t, 4)


def worst_human_quantile(probs, y: np.ndarray, group: list[str], q: float) -> float:
    """The highest, over the probability arrays and codec groups, of the q quantile of human
    examples' probabilities (nan ignored)."""
    human = np.asarray(y) == 0
    in_group = [human & np.array([x == g for x in group]) for g in sorted(set(group))]
    return float(max(np.quantile(p[sel & ~np.isnan(p)], q, method="higher")
                     for p in probs for sel in in_group if (sel & ~np.isnan(p)).any()))


def ai_threshold(probs, y: np.ndarray, group: list[str]) -> float:
    """Above the (1 - MAX_HUMAN_FP) quantile of human probabilities in the worst codec group and
    model, at twice its odds, within AI_THRESHOLD_RANGE (the fusion's and each fingerprint's)."""
    top = worst_human_quantile(probs, y, group, 1 - MAX_HUMAN_FP)
    return round(float(np.clip(_odds_shift(top, THRESHOLD_ODDS_MARGIN), *AI_THRESHOLD_RANGE)), 4)


MIN_LIMIT_GROUP = 30   # a codec group with fewer human examples in a band tier counts within the tier only
HUMAN_LIMIT_QUANTILES = (0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 1.0)


def choose_human_limits(probs: dict[str, np.ndarray], data: FusionData, ai_t: float, human_t: float,
                        tier: np.ndarray | None = None) -> dict[str, float]:
    """The human limits of the music in `tier` (all rows: None): "human" is said only where every
    piece of evidence is at most its limit, the same quantile q of that human calibration music for
    each. The smallest q on the grid whose limits leave at most CALIB_UNCERTAIN of it "uncertain"
    (with what the human threshold leaves there; nothing more where that is already more) in every
    codec group of at least MIN_LIMIT_GROUP examples, in the tier as a whole, and in every path wins,
    with the fixed limit on the band (`bandlimit`, MIN_HUMAN_BAND_HZ) beside them: the narrower
    the range "human" is said in, the less an unfamiliar generator's output can fall into it."""
    # Music narrower than MIN_HUMAN_BAND_HZ is "uncertain" by that rule whatever the limits: it is
    # left out of the budget, which would otherwise loosen every other limit to make room for it.
    vouchable = np.array([d.bandlimit <= BANDLIMIT_LIMIT for d in data.delivery])
    human = (data.y == 0) & vouchable & (np.ones(len(data.y), bool) if tier is None else tier)
    in_group = [human] + [sel for sel in (human & np.array([x == g for x in data.group]) for g in sorted(set(data.group)))
                          if sel.sum() >= MIN_LIMIT_GROUP]
    rows = np.nonzero(human)[0]
    sources = {"cnn": ("cnn",), "cnn+img": ("cnn", "images", "fingerprint"),
               "fused": ("cnn", "images", "fingerprint", "demucs")}
    values = {k: [data.typical_values(i, sources[k]) for i in range(len(data.y))] for k in probs}
    every = [data.typical_values(i, sources["fused"]) for i in range(len(data.y))]
    names = sorted({n for i in rows for n in every[i]} - {"bandlimit"})
    band = {"bandlimit": BANDLIMIT_LIMIT}

    def uncertain(limits: dict[str, float]) -> list[float]:
        shares = []
        for key, p in probs.items():
            for sel in in_group:
                idx = np.nonzero(sel & ~np.isnan(p))[0]
                if len(idx):
                    shares.append(float(np.mean([decide(float(p[i]), values[key][i], data.match(i, sources[key]),
                                                        ai_t, human_t, limits)[0] == "uncertain" for i in idx])))
        return shares

    base = uncertain(band)
    limits: dict[str, float] = band
    for q in HUMAN_LIMIT_QUANTILES:
        limits = {**{n: round(float(np.quantile([every[i][n] for i in rows if n in every[i]], q, method="higher")), 4)
                     for n in names}, **band}
        if all(a <= max(b, CALIB_UNCERTAIN) for a, b in zip(uncertain(limits), base)):
            break
    return limits


def _odds_shift(p: float, k: float) -> float:
    """p with its log-odds moved by k (p kept off 0 and 1, where the odds are infinite)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(sigmoid(np.log(p / (1 - p)) + k))


def widened_band(human_t: float, ai_t: float) -> tuple[float, float]:
    """Auto mode, lossy input: Demucs also runs where the CNN is outside the uncertain band but not
    far outside it (the band widened by a factor of e in odds on each side)."""
    return round(_odds_shift(human_t, -1.0), 4), round(_odds_shift(ai_t, 1.0), 4)
