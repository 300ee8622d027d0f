"""Scheduled refits of the medium-precision models in the receiver (`refit_every_h` on a
`[[medium_precision]]` entry; none set: no thread).

A thread of its own with its own store connection, as central/aggregation/worker.py: each entry is
refitted when its latest stored model is `refit_every_h` old (none stored: at once), over the
`refit_window_days` of whole hours before now, with `service.calibrate` (the model and the
corrected hours stored, as `central-receiver medium-precision calibrate` does). What it fitted is
logged (`mp_refitted`: coefficients, hours, residuals); a window that cannot be fitted is logged
(`mp_refit_failed`) and tried again at the next due time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from ..config import CentralConfig
from ..store import open_configured_store
from ..store_thread import StoreThread
from .config import MediumPrecisionSite
from .fit import FitError
from .service import Calibration, calibrate, site_label

log = structlog.get_logger(component="mp_refit")

POLL_S = 60.0
"""How often (real seconds) the thread looks for an entry that is due."""


def scheduled(config: CentralConfig) -> list[MediumPrecisionSite]:
    return [m for m in config.medium_precision if m.refit_every_h]


def refit_window(m: MediumPrecisionSite, now: datetime) -> tuple[datetime, datetime]:
    """[start, end): the `refit_window_days` of whole hours before `now`."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(days=m.refit_window_days), end


class Refitter(StoreThread):
    """The scheduled-refit thread of a receiver process."""

    thread_name = "central-mp-refit"
    failure_event = "mp_refit_error"

    def __init__(self, config: CentralConfig, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 poll_s: float = POLL_S) -> None:
        super().__init__(lambda: open_configured_store(config), lambda: self.poll_s)
        self.config = config
        self.sites = scheduled(config)
        self._now = now
        self.poll_s = poll_s
        self._last: dict[str, datetime] = {}  # label -> time of the last attempt
        self.fitted: list[Calibration] = []
        self.failed = 0

    def due(self, store, m: MediumPrecisionSite, now: datetime) -> bool:
        label = site_label(m)
        if label not in self._last:
            models = [r for r in store.mp_models(m.site) if r.device == m.device and r.species == m.species]
            if models:
                self._last[label] = models[-1].created_at
        last = self._last.get(label)
        return last is None or now - last >= timedelta(hours=m.refit_every_h)

    def refit(self, store, m: MediumPrecisionSite, now: datetime) -> Calibration | None:
        label = site_label(m)
        self._last[label] = now
        start, end = refit_window(m, now)
        try:
            cal = calibrate(self.config, store, m, start, end, now)
        except FitError as exc:
            self.failed += 1
            log.warning("mp_refit_failed", site=label, start=start.isoformat(), end=end.isoformat(), error=str(exc))
            return None
        c = cal.residuals["corrected"]
        log.info("mp_refitted", site=label, model_id=cal.model_id, start=start.isoformat(), end=end.isoformat(),
                 hours=cal.hours, paired=c["n"], coefficients={k: round(v, 6) for k, v in cal.model.coefficients.items()},
                 dropped=cal.model.dropped, rmse=c["rmse"], bias=c["bias"],
                 uncorrected_rmse=cal.residuals["uncorrected"]["rmse"])
        self.fitted.append(cal)
        return cal

    def run_pass(self, store) -> bool:
        now = self._now()
        for m in self.sites:
            if self._stop.is_set():
                break
            if self.due(store, m, now):
                self.refit(store, m, now)
        return False
