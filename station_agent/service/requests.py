"""The control socket's commands: one model per command, the single list of them (REQUESTS).

Each field carries two checks: its bounds (pydantic: lengths, ranges), which the agent applies
(`parse_request`), and the socket's `Check` of its JSON type, which the control server applies to
the raw request first to answer in plain words what was wrong (station_agent/service/control.py
derives its table of commands and fields from these models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import Field, StrictBool, StrictInt, StringConstraints, ValidationError

from ghgnet.config import StrictModel
from ghgnet.timeutil import parse_utc

MAX_REASON = 500
"""Characters of a maintenance reason (kept in the maintenance event and the engine's state)."""
MAX_NAME = 64
"""Characters of a run name or a cylinder id given on the control socket (the wire's `Name`)."""
MAX_TIME_TEXT = 64
MAX_SEQS = 10_000
"""Seqs one set-aside request may name."""
MAX_SEQ = 2**63 - 1


class Check(NamedTuple):
    """The socket's check of a field's JSON value: what it must be, in words, and the test."""

    what: str
    ok: Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _time(v: Any) -> bool:
    try:
        parse_utc(v)
    except (ValueError, OverflowError):
        return False
    return True


BOOL = Check("true or false", lambda v: isinstance(v, bool))
TEXT = Check("a string", lambda v: isinstance(v, str))
TEXT_OR_NULL = Check("a string or null", lambda v: v is None or isinstance(v, str))
OBJECT = Check("an object", lambda v: isinstance(v, dict))
PORT = Check("an integer from 1", lambda v: _is_int(v) and v >= 1)
LIMIT = Check("an integer from 1 to 100000", lambda v: _is_int(v) and 1 <= v <= 100_000)
SEQ = Check(f"an integer from 0 to {MAX_SEQ}", lambda v: _is_int(v) and 0 <= v <= MAX_SEQ)
TIME = Check("an ISO 8601 time string", lambda v: isinstance(v, str) and _time(v))
SEQS_OR_NULL = Check("null or an array of integers from 1",
                     lambda v: v is None or (isinstance(v, list) and all(_is_int(x) and 1 <= x <= MAX_SEQ for x in v)))

ReasonText = Annotated[str, StringConstraints(max_length=MAX_REASON, pattern=r"^[^\x00]*$")]
ShortText = Annotated[str, StringConstraints(max_length=MAX_NAME, pattern=r"^[^\x00]*$")]
TimeText = Annotated[str, StringConstraints(max_length=MAX_TIME_TEXT)]
Seqs = Annotated[list[Annotated[StrictInt, Field(ge=1, le=MAX_SEQ)]], Field(max_length=MAX_SEQS)]


class Request(StrictModel):
    cmd: str


class StatusRequest(Request):
    cmd: Literal["status"]


class MaintenanceRequest(Request):
    cmd: Literal["maintenance"]
    on: Annotated[StrictBool, BOOL]
    reason: Annotated[ReasonText, TEXT] = ""


class GotoRequest(Request):
    cmd: Literal["goto"]
    port: Annotated[StrictInt, Field(ge=1, le=1000), PORT]


class CalibrateRequest(Request):
    cmd: Literal["calibrate"]
    name: Annotated[ShortText | None, TEXT_OR_NULL] = None


class CylinderAddRequest(Request):
    cmd: Literal["cylinder_add"]
    cylinder: Annotated[dict[str, Any], OBJECT]  # a CylinderConfig, validated on its own: errors name its fields


class CylinderRetireRequest(Request):
    cmd: Literal["cylinder_retire"]
    id: Annotated[ShortText, TEXT]


class RecalibrateRequest(Request):
    cmd: Literal["recalibrate"]
    from_: Annotated[TimeText, TIME] = Field(alias="from")
    to: Annotated[TimeText, TIME]


class EventsRequest(Request):
    cmd: Literal["events"]
    limit: Annotated[StrictInt, Field(ge=1, le=1000), LIMIT] = 20


class TailRequest(Request):
    cmd: Literal["tail"]
    after_seq: Annotated[StrictInt, Field(ge=0, le=MAX_SEQ), SEQ] = 0


class SetAsideListRequest(Request):
    cmd: Literal["set_aside_list"]
    seqs: Annotated[Seqs | None, SEQS_OR_NULL] = Field(default=None, description="only these (default: all)")
    records: Annotated[StrictBool, BOOL] = Field(default=False, description="with the records themselves (export)")


class SetAsideRetryRequest(Request):
    cmd: Literal["set_aside_retry"]
    seqs: Annotated[Seqs | None, SEQS_OR_NULL] = Field(default=None, description="these (default: all of them)")


NAMES = Check("an array of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
CYCLES = Check("an integer from 1 to 100", lambda v: _is_int(v) and 1 <= v <= 100)
SECONDS = Check("a number of seconds", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))


class AssignRequest(Request):
    """Value assignment of a new working standard against reference cylinders (issue 21)."""

    cmd: Literal["assign"]
    candidate: Annotated[ShortText, TEXT]
    references: Annotated[list[ShortText], Field(min_length=2, max_length=16), NAMES]
    cycles: Annotated[StrictInt, Field(ge=1, le=100), CYCLES] = 6
    measure_s: Annotated[float, Field(gt=0, le=86400), SECONDS] = 1800.0
    use_last_minutes: Annotated[StrictInt, Field(ge=1, le=1440), LIMIT] = 10
    device: Annotated[ShortText | None, TEXT_OR_NULL] = None


REQUESTS: dict[str, type[Request]] = {
    "status": StatusRequest, "maintenance": MaintenanceRequest, "goto": GotoRequest, "calibrate": CalibrateRequest,
    "cylinder_add": CylinderAddRequest, "cylinder_retire": CylinderRetireRequest, "recalibrate": RecalibrateRequest,
    "events": EventsRequest, "tail": TailRequest, "set_aside_list": SetAsideListRequest,
    "set_aside_retry": SetAsideRetryRequest, "assign": AssignRequest,
}
"""The control socket's commands, each with its model."""


def socket_checks(model: type[Request]) -> tuple[dict[str, Check], dict[str, Check]]:
    """A command's fields as the socket names them (aliases), required and optional, each with its
    `Check`; a field without one is a programming error, raised at import."""
    required: dict[str, Check] = {}
    optional: dict[str, Check] = {}
    for name, field in model.model_fields.items():
        if name == "cmd":
            continue
        check = next((m for m in field.metadata if isinstance(m, Check)), None)
        if check is None:
            raise TypeError(f"{model.__name__}.{name} has no socket Check in its annotation")
        (required if field.is_required() else optional)[field.alias or name] = check
    return required, optional


def parse_request(req: dict[str, Any]) -> Request:
    """The request as its command's model; ValueError naming the command, the field and the problem."""
    cmd = req.get("cmd")
    model = REQUESTS.get(cmd) if isinstance(cmd, str) else None
    if model is None:
        raise ValueError(f"unknown command {str(cmd)[:MAX_NAME]!r}; known: {', '.join(REQUESTS)}")
    try:
        return model.model_validate(req)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(x) for x in err["loc"]) or "(request)"
            got = err.get("input")
            size = f" (got {len(got)})" if err["type"] in ("string_too_long", "too_long") and hasattr(got, "__len__") \
                else ""
            problems.append(f"{where}: {'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}{size}")
        raise ValueError(f"{cmd}: " + "; ".join(problems)) from None
