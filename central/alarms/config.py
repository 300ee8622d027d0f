"""`[alarms]` of central's config: the rules, how often they are evaluated, where alarms are sent.

```toml
[alarms]
interval_s = 60

[[alarms.rules]]
kind = "station_down"      # seconds since the station's last status (a last will: at once)
raise_at = 300
clear_at = 120

[[alarms.rules]]
kind = "cylinder_empty"    # days until a cylinder's pressure trend reaches its low-pressure threshold
raise_at = 14              # lower is worse: raised within 14 days, cleared beyond 21
clear_at = 21

[[alarms.rules]]
kind = "target_bias"       # |latest target bias| in units of the species' compatibility goal
raise_at = 1.0
clear_at = 0.7
hold_s = 0

[alarms.email]
host = "smtp.example.org"
port = 587
starttls = true
username = "ghgnet"
password_file = "/etc/ghgnet/smtp-password"
sender = "ghgnet@example.org"
to = ["noc@example.org"]

[[alarms.webhooks]]
url = "https://chat.example.org/hooks/ghgnet"
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ghgnet.config import RelPath, StrictModel

RuleKind = Literal["station_down", "data_gap", "backlog_age", "target_bias", "calibration_drift", "dead_letters",
                   "clock_offset", "cylinder_empty"]

DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "station_down": (300.0, 120.0),
    "data_gap": (3600.0, 900.0),
    "backlog_age": (3600.0, 600.0),
    "target_bias": (1.0, 0.7),
    "calibration_drift": (1.0, 0.7),
    "dead_letters": (1.0, 0.0),
    "clock_offset": (60.0, 20.0),
    "cylinder_empty": (14.0, 21.0),
}
"""(raise_at, clear_at) per kind when a rule names neither; units in central/alarms/rules.py."""

LOWER_IS_WORSE = frozenset({"cylinder_empty"})
"""Kinds whose value is worse when lower (days left): raised at or below raise_at, cleared above clear_at."""


class AlarmRule(StrictModel):
    kind: RuleKind
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                             description="the rule's name in alarms (default: its kind); unique")
    raise_at: float | None = Field(default=None, description="raise when the value reaches this (default per kind)")
    clear_at: float | None = Field(
        default=None, description="clear when the value is at or below this (default per kind); below raise_at: "
        "hysteresis")
    hold_s: float = Field(default=0.0, ge=0, description="the value must stay at raise_at or above this long")
    clear_hold_s: float = Field(default=0.0, ge=0, description="the value must stay at clear_at or below this long")
    severity: Literal["info", "warning", "critical"] = "warning"
    stations: list[str] = Field(default_factory=list, description="only these stations (default: every one)")
    lookback_h: float = Field(default=48.0, gt=0,
                              description="target_bias, calibration_drift: how far back results are read")
    window_days: float = Field(default=180.0, gt=0,
                               description="cylinder_empty: the pressure readings of the last DAYS days are fitted")

    @property
    def rule_name(self) -> str:
        return self.name or self.kind

    @property
    def thresholds(self) -> tuple[float, float]:
        raise_default, clear_default = DEFAULT_THRESHOLDS[self.kind]
        up = raise_default if self.raise_at is None else self.raise_at
        nearest = max if self.kind in LOWER_IS_WORSE else min
        down = (nearest(clear_default, up) if self.raise_at is not None else clear_default) if self.clear_at is None \
            else self.clear_at
        return up, down

    @model_validator(mode="after")
    def _hysteresis(self) -> AlarmRule:
        up, down = self.thresholds
        if self.kind in LOWER_IS_WORSE and down < up:
            raise ValueError(f"{self.kind}: lower is worse, so clear_at ({down:g}) must not be below raise_at ({up:g})")
        if self.kind not in LOWER_IS_WORSE and down > up:
            raise ValueError(f"clear_at ({down:g}) must not be above raise_at ({up:g})")
        return self


class EmailConfig(StrictModel):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="upgrade the connection with STARTTLS before logging in")
    ssl: bool = Field(default=False, description="SMTP over TLS from the start (port 465); excludes starttls")
    username: str | None = None
    password: str | None = Field(default=None, description="prefer password_file")
    password_file: RelPath | None = None
    ca_file: RelPath | None = Field(default=None, description="CA certificates to trust (default: the system's)")
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=20.0, gt=0)
    subject_prefix: str = "[ghgnet]"

    @model_validator(mode="after")
    def _tls(self) -> EmailConfig:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls exclude each other: set starttls = false with ssl = true")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password


class WebhookConfig(StrictModel):
    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=5, ge=0, le=20, description="tries after the first")
    backoff_s: float = Field(default=1.0, gt=0, description="first wait between tries; doubles each time")
    backoff_max_s: float = Field(default=300.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. an Authorization header")


class AlarmsConfig(StrictModel):
    enabled: bool = Field(default=True, description="evaluate the rules inside `central-receiver run`")
    interval_s: float = Field(default=60.0, gt=0, description="how often the rules are evaluated (central's clock)")
    rules: list[AlarmRule] = Field(default_factory=list)
    email: EmailConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    notify_queue: int = Field(default=1000, ge=1, description="notifications waiting at most; more are dropped")

    @model_validator(mode="after")
    def _unique(self) -> AlarmsConfig:
        names = [r.rule_name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique (give `name`): {', '.join(dup)}")
        return self
