"""What the daemon sends unasked: a job's preliminary verdict, result or failure (to its requester
and every subscriber), and live scores and alerts (to whoever started live input and every
subscriber). Both verdicts of a job are read from its report."""

from __future__ import annotations

import math

from ..jobs import JobEvent
from ..live_control import LiveAlert, LiveScore
from .protocol import ANALYZE, ERROR, LIVE_ALERT, LIVE_SCORE, PRELIMINARY, RESULT
from .server import OscServer


class Pushes:
    def __init__(self, server: OscServer):
        self.server = server

    def job_event(self, event: JobEvent) -> None:
        job, r = event.job, event.report
        requester = (job.sender,) if job.sender else ()
        if event.kind == "preliminary":
            self.server.push(PRELIMINARY, job.request_id, job.reply_path, r.verdict,
                             osc_float(r.probability_ai), osc_float(r.cnn.probability_ai if r.cnn else None),
                             senders=requester)
        elif event.kind == "result":
            self.server.push(RESULT, job.request_id, job.reply_path, r.verdict,
                             osc_float(r.probability_ai), osc_float(r.cnn.probability_ai if r.cnn else None),
                             osc_float(r.demucs.probability_ai if r.demucs.ran else None),
                             job.report_path or "", senders=requester)
        elif event.kind == "failed":
            self.server.push(ERROR, job.request_id, ANALYZE, event.message, senders=requester)

    def live_score(self, score: LiveScore) -> None:
        self.server.push(LIVE_SCORE, score.p, score.smoothed, score.verdict, senders=score.requesters)

    def live_alert(self, alert: LiveAlert) -> None:
        self.server.push(LIVE_ALERT, alert.p, alert.since_s, senders=alert.requesters)


def osc_float(value: float | None) -> float:
    """What OSC promises as a float stays one: -1 where there is no finite number."""
    return float(value) if value is not None and math.isfinite(value) else -1.0
