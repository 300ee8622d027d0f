"""A receiver's background job: a thread with its own store connection running one pass at a time.

The aggregator, the alarm evaluation and the medium-precision refits each run this way: a pass,
then a pause of `interval_s` (none when the pass says more is waiting); a pass that raises is
logged and counted, and the connection is closed and opened again for the next, so one bad pass
(a database restart, a broken row) never ends the job for good.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

import structlog

log = structlog.get_logger(component="central")


class StoreThread(ABC):
    """Subclasses give `thread_name`, `failure_event` and `run_pass`."""

    thread_name = "central-job"
    failure_event = "pass_failed"

    def __init__(self, open_store: Callable[[], object], interval_s: Callable[[], float]) -> None:
        self._open_store = open_store
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    @abstractmethod
    def run_pass(self, store) -> bool:
        """One pass on the thread's store; True when more work is waiting (no pause before the next)."""

    def after_pause(self) -> None:
        """Called after each pause (a hook for state that a pause invalidates)."""

    def start(self) -> StoreThread:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        store = None
        try:
            while not self._stop.is_set():
                try:
                    if store is None:
                        store = self._open_store()
                    if self.run_pass(store):
                        continue
                except Exception as exc:  # a bad pass must not end the job for good
                    self.errors += 1
                    log.warning(self.failure_event, error=repr(exc))
                    if store is not None:
                        try:
                            store.close()
                        except Exception:
                            pass
                        store = None
                self._stop.wait(self._interval_s())
                self.after_pause()
        finally:
            if store is not None:
                store.close()
