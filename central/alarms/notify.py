"""Telling people about alarms: e-mail (SMTP) and webhooks (HTTP POST of JSON).

`Notifier.submit` never blocks and never raises: a notification goes into a bounded queue that a
thread of its own empties (a full queue drops the notification and counts it), so a slow mail
server or a dead webhook cannot hold up ingest or the evaluation of the rules. A webhook is tried
again with exponential backoff (`retries`, `backoff_s`, doubling up to `backoff_max_s`); an e-mail
once per notification (the SMTP server queues and retries itself).

The webhook body is the JSON of `notification_doc`: {"event": "raised"|"cleared", "alarm": {...}}.
"""

from __future__ import annotations

import json
import queue
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import structlog

from ghgnet.timeutil import iso_utc

from ..store.operations import AlarmChange
from .config import AlarmsConfig, EmailConfig, WebhookConfig

log = structlog.get_logger(component="alarms")


def notification_doc(change: AlarmChange) -> dict[str, Any]:
    return {
        "event": change.change,
        "alarm": {"id": change.id, "rule": change.rule, "station": change.station, "subject": change.subject,
                  "severity": change.severity, "time": iso_utc(change.time), "message": change.message,
                  "value": change.value, "data": change.data},
    }


def email_message(cfg: EmailConfig, change: AlarmChange) -> EmailMessage:
    what = " ".join(x for x in (change.station, change.subject) if x)
    msg = EmailMessage()
    msg["Subject"] = f"{cfg.subject_prefix} {change.change.upper()} {change.rule} {what}".strip()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg.set_content(f"{change.message}\n\nalarm #{change.id}, {change.change} at {iso_utc(change.time)}, "
                    f"severity {change.severity}\n\n{json.dumps(notification_doc(change), indent=2)}\n")
    return msg


def send_email(cfg: EmailConfig, change: AlarmChange) -> None:
    """One message through the configured SMTP server (STARTTLS and login when configured)."""
    msg = email_message(cfg, change)
    context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    smtp_type = smtplib.SMTP_SSL if cfg.ssl else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": context} if cfg.ssl else {}
    with smtp_type(cfg.host, cfg.port, timeout=cfg.timeout_s, **kwargs) as smtp:
        if cfg.starttls:
            smtp.starttls(context=context)
        if cfg.username:
            smtp.login(cfg.username, cfg.secret() or "")
        smtp.send_message(msg)


def post_webhook(cfg: WebhookConfig, change: AlarmChange, wait: Callable[[float], bool]) -> bool:
    """POST the notification; retried with backoff on a connection error or a 5xx/429 answer.
    `wait(seconds)` sleeps and returns True when the notifier is stopping. True when delivered."""
    body = json.dumps(notification_doc(change)).encode()
    delay = cfg.backoff_s
    for attempt in range(cfg.retries + 1):
        req = urllib.request.Request(cfg.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **cfg.headers})
        try:
            with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
                resp.read()
            return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                log.error("webhook_refused", url=cfg.url, status=exc.code, alarm=change.id)
                return False  # a 4xx will not change by asking again
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        log.warning("webhook_failed", url=cfg.url, error=error, attempt=attempt + 1, retry_in_s=delay)
        if attempt == cfg.retries or wait(delay):
            break
        delay = min(delay * 2, cfg.backoff_max_s)
    return False


class Notifier:
    """A thread that sends each submitted alarm change by e-mail and to every webhook."""

    def __init__(self, config: AlarmsConfig) -> None:
        self.config = config
        self._queue: queue.Queue[AlarmChange | None] = queue.Queue(maxsize=config.notify_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self.config.email is not None or bool(self.config.webhooks)

    def start(self) -> Notifier:
        self._thread = threading.Thread(target=self._loop, name="central-alarm-notify", daemon=True)
        self._thread.start()
        return self

    def submit(self, change: AlarmChange) -> bool:
        """Queue a raised or cleared alarm for sending; never blocks. False when dropped."""
        if not self.enabled or change.change not in ("raised", "cleared"):
            return False
        try:
            self._queue.put_nowait(change)
            return True
        except queue.Full:
            self.stats["dropped"] += 1
            log.error("alarm_notification_dropped", alarm=change.id, queue=self._queue.maxsize)
            return False

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued notification has been handled (tests, a clean stop)."""
        done = threading.Event()

        def waiter() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        return done.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            try:
                change = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                if change is None or self._stop.is_set():
                    if change is not None or self._queue.qsize():
                        log.warning("alarm_notifications_unsent", count=self._queue.qsize() + (change is not None))
                    return
                self._send(change)
            finally:
                self._queue.task_done()

    def _send(self, change: AlarmChange) -> None:
        if self.config.email is not None:
            try:
                send_email(self.config.email, change)
                self.stats["emails_sent"] += 1
            except Exception as exc:  # a mail server away must not end the notifier
                self.stats["emails_failed"] += 1
                log.error("alarm_email_failed", alarm=change.id, error=str(exc))
        for hook in self.config.webhooks:
            if post_webhook(hook, change, self._stop.wait):
                self.stats["webhooks_sent"] += 1
            else:
                self.stats["webhooks_failed"] += 1
