"""Two or three plain sentences that say why a report's verdict is what it is, and the thresholds
in words. Built only from what the report records, so an appeal can check every word."""

from __future__ import annotations

from .view import ReportView

VERDICT_WORDS = {"ai": "AI-generated", "human": "human-made", "uncertain": "uncertain"}


def thresholds_in_words(view: ReportView) -> str:
    ai, human = view.ai_threshold, view.human_threshold
    return (f"A file is called AI-generated at a probability of {ai:.3g} or more and human-made at "
            f"{human:.3g} or less; in between the evidence is not strong enough either way and the "
            "verdict is uncertain. The shipped thresholds were set on held-out human music so that about "
            "1 in 100 human tracks at most is called AI-generated.")


def strength(p: float) -> str:
    """How far a probability is from a coin toss, in words."""
    margin = abs(p - 0.5)
    return "strong" if margin >= 0.4 else "moderate" if margin >= 0.2 else "weak"


def leaning(p: float) -> str:
    return "towards AI" if p >= 0.5 else "towards human"


def sentences(view: ReportView) -> list[str]:
    out = [_verdict_sentence(view), _codec_sentence(view)]
    reasons = _evidence_sentence(view)
    if reasons:
        out.append(reasons)
    fingerprint = _fingerprint_sentence(view)
    if fingerprint:
        out.append(fingerprint)
    return out


# How the human limits' evidence is named in words (fusion.Evidence.typical_values).
EVIDENCE_WORDS = {"cnn_logit": "the CNN's logit", "images_score": "the decoder-image score",
                  "demucs_logit": "the Demucs residual's logit",
                  "fingerprint_logit": "the closest generator fingerprint's logit",
                  "bandlimit": "the audio's bandwidth (too narrow for the engines to tell)"}


def _verdict_sentence(view: ReportView) -> str:
    p = view.probability
    if view.verdict == "ai" and view.fingerprint and view.fingerprint.matched and p < view.ai_threshold:
        where = "below the AI threshold, but a generator fingerprint matched"
    elif view.verdict == "ai":
        where = f"at or above the AI threshold {view.ai_threshold:.3g}"
    elif view.verdict == "human":
        where = f"at or below the human threshold {view.human_threshold:.3g}"
    elif view.atypical and p <= view.human_threshold:
        outside = " and ".join(EVIDENCE_WORDS.get(a, a) for a in view.atypical)
        where = (f"at or below the human threshold {view.human_threshold:.3g}, but {outside} "
                 f"{'lies' if len(view.atypical) == 1 else 'lie'} outside the range in which the models "
                 "vouch for human music")
    else:
        where = f"between the human ({view.human_threshold:.3g}) and AI ({view.ai_threshold:.3g}) thresholds"
    return f"Verdict {VERDICT_WORDS.get(view.verdict, view.verdict)}: the probability of AI is {p:.2f}, {where}."


def _codec_sentence(view: ReportView) -> str:
    reason = view.codec.get("reason") or ""
    if view.lossy:
        return (f"The input has been through a lossy codec ({reason}), which blurs the fine "
                "detail the CNN looks for, so the fusion leans more on the other evidence.")
    return "There is no sign of a lossy codec, so the CNN saw the audio at full detail."


def _evidence_sentence(view: ReportView) -> str:
    parts = []
    cnn_p = view.cnn_probability
    if cnn_p is not None:
        parts.append(f"the CNN's evidence is {strength(cnn_p)} (p {cnn_p:.2f}, {leaning(cnn_p)})")
    demucs_p = view.demucs_probability
    if demucs_p is not None:
        parts.append(f"the Demucs residual's is {strength(demucs_p)} (p {demucs_p:.2f}, {leaning(demucs_p)})")
    elif view.demucs.get("reason"):
        parts.append(f"Demucs did not run ({view.demucs['reason']})")
    decided = view.decided_by
    if demucs_p is not None and "demucs" not in decided:
        parts.append("the fusion gives the Demucs evidence no weight for input like this, so the "
                     + " and ".join(_names(decided) or ["CNN"]) + " decided")
    elif "demucs" in decided and cnn_p is not None and strength(cnn_p) == "weak":
        parts.append("the Demucs residual decided")
    elif decided:
        parts.append(" and ".join(_names(decided)) + (" decided" if len(decided) > 1 else " decided alone"))
    if "images" in decided and view.images_score is not None:
        parts.append(f"the decoder-image score ({view.images_score:.2f}; about 0 when there are no "
                     "images) counted too")
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _fingerprint_sentence(view: ReportView) -> str:
    fp = view.fingerprint
    if fp is None:
        return ""
    if fp.matched:
        p = dict(fp.matches).get(fp.matched)
        if fp.matched in fp.packs:
            return (f"The model pack {fp.matched} (learned with `aimusicd learn`) matched"
                    + (f" (p {p:.2f})" if p is not None else "") + ".")
        return (f"The long-term spectrum carries the fingerprint of {fp.matched}"
                + (f" (p {p:.2f})" if p is not None else "") + ".")
    return "The long-term spectrum matches none of the generator fingerprints the models know."


def _names(decided: list[str]) -> list[str]:
    words = {"cnn": "CNN", "demucs": "Demucs residual", "images": "image score",
             "fingerprint": "fingerprint"}
    return [words.get(d, d) for d in decided]
