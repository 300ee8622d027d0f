"""The HJ 212 data segment: `QN=;ST=;CN=;PW=;MN=;Flag=[;PNUM=;PNO=];CP=&&...&&` as a `Packet`.

HJ 212-2017 section 6.3 (DOMAIN.md "HJ 212-2017"): the header fields come in that order; inside CP,
`;` separates groups (DataTime in its own group, then one group per factor), `,` the items of a group
and `=` a key from its value. Flag's bits are V5..V0 D A: A asks for an answer (9014 for data), D
marks a split packet (with PNUM parts, this one PNO), and the version bits name the edition.

Parsing is strict about order, duplicates, unknown header fields and value shapes. Two leniencies,
both for existing loggers: QN and Flag may be absent (HJ/T 212-2005 loggers omit them; such a packet
asks for no answer), and one empty group before the closing `&&` (`...;&&`) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .codes import CN_DATA_ANSWER, CN_EXECUTION_RESULT, CN_NOTIFY_ANSWER, CN_REQUEST_ANSWER, ST_SYSTEM
from .frame import MAX_SEGMENT, TEXT_ENCODING

# --- Flag bits and editions ------------------------------------------------------------------------
FLAG_ACK = 0b01
FLAG_SPLIT = 0b10
EDITION_VERSION = {"2017": 1, "2025": 2}
"""The version bits (Flag >> 2) of each edition: 2017 is version 1, so Flag 4 = no answer wanted,
5 = answer wanted, 7 = answer wanted and split. 2025: version 2 (Flag 8, 9, 11), as caoyiliang/HJ212
(HJ212/Enum.cs, `Version`: HJT212_2005 = 0, HJT212_2017 = 4, HJT212_2025 = 8, raw Flag values with
neither A nor D set) reads it; DOMAIN.md's "Flag version 8" is that raw value. The 2025 text is not
public here, so unconfirmed: this is the one place to change it."""
VERSION_EDITION = {v: k for k, v in EDITION_VERSION.items()}
DEFAULT_EDITION = "2017"


def make_flag(edition: str = DEFAULT_EDITION, *, ack: bool = False, split: bool = False) -> int:
    """The Flag value for `edition` with the A and D bits set as asked."""
    if edition not in EDITION_VERSION:
        raise ValueError(f"HJ 212 edition {edition!r}: known editions are {', '.join(EDITION_VERSION)}")
    return EDITION_VERSION[edition] << 2 | (FLAG_SPLIT if split else 0) | (FLAG_ACK if ack else 0)


# --- Field shapes ----------------------------------------------------------------------------------
_QN = re.compile(r"[0-9]{17}")                # YYYYMMDDhhmmsszzz
_ST = re.compile(r"[0-9]{2}")
_CN = re.compile(r"[0-9]{4}")
_PW = re.compile(r"[^;,=&\s]{1,32}")
_MN = re.compile(r"[0-9A-Za-z_\-]{1,32}")  # 24 characters in the standard; loggers in the field use 14-24
_FLAG = re.compile(r"[0-9]{1,3}")
_PART = re.compile(r"[0-9]{1,4}")
_KEY = re.compile(r"[0-9A-Za-z_\-]{1,64}")
_BAD_VALUE = re.compile(r"[;,&=\r\n]")
_HEADER_ORDER = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_OPTIONAL = frozenset({"QN", "Flag", "PNUM", "PNO"})
_CP_START = "CP=&&"
_CP_END = "&&"
DATETIME_FORMAT = "%Y%m%d%H%M%S"


class PacketError(ValueError):
    """A data segment that breaks the standard's packet structure; the message names the field."""


Group = dict[str, str]


@dataclass(frozen=True, slots=True)
class Packet:
    """One data segment. Values are kept as the text the wire carries; `cp` is the ordered groups of
    CP, each a dict key -> value in wire order (tuples of dicts; build with any iterable of mappings)."""

    st: str
    cn: str
    pw: str
    mn: str
    qn: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    cp: tuple[Group, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cp", tuple(dict(g) for g in self.cp))
        _validate(self)

    @classmethod
    def _checked(cls, qn: str | None, st: str, cn: str, pw: str, mn: str, flag: int | None, pnum: int | None,
                 pno: int | None, cp: tuple[Group, ...]) -> Packet:
        """A packet from fields that passed every check of `_validate` already (`parse_segment`'s
        fast path, a reply to a parsed packet): no second validation, no copy of CP's dicts."""
        p = object.__new__(cls)
        for set_slot, value in zip(_SLOT_SETTERS, (qn, st, cn, pw, mn, flag, pnum, pno, cp)):
            set_slot(p, value)  # the slot's own setter: what object.__setattr__ does, without the name lookup
        return p

    # --- Flag helpers
    @property
    def ack_wanted(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_ACK)

    @property
    def is_split(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_SPLIT)

    @property
    def version(self) -> int | None:
        """The Flag's version bits (1 for 2017), None without a Flag."""
        return None if self.flag is None else self.flag >> 2

    @property
    def edition(self) -> str | None:
        """`"2017"`, `"2025"`, or None for no Flag or a version this codec does not know."""
        return None if self.version is None else VERSION_EDITION.get(self.version)

    # --- CP helpers
    def cp_value(self, key: str) -> str | None:
        """The first value of `key` in any group of CP (e.g. `DataTime`, `QnRtn`)."""
        for group in self.cp:
            if key in group:
                return group[key]
        return None

    @property
    def data_time(self) -> datetime | None:
        """CP's DataTime as a naive datetime (the standard's time has no zone; the logger's config says
        which zone it is in), None when absent. PacketError when malformed."""
        text = self.cp_value("DataTime")
        return None if text is None else parse_data_time(text)

    def factors(self) -> dict[str, dict[str, str]]:
        """Factor code -> {suffix: value}, from CP keys `code-Suffix` (e.g. `a05001-Avg` -> a05001: Avg)."""
        out: dict[str, dict[str, str]] = {}
        for group in self.cp:
            for key, value in group.items():
                code, sep, suffix = key.rpartition("-")
                if sep and code:
                    out.setdefault(code, {})[suffix] = value
        return out

    def segment(self) -> str:
        """The data segment text, fields in the standard's order."""
        head = []
        if self.qn is not None:
            head.append(f"QN={self.qn}")
        head += [f"ST={self.st}", f"CN={self.cn}", f"PW={self.pw}", f"MN={self.mn}"]
        if self.flag is not None:
            head.append(f"Flag={self.flag}")
        if self.pnum is not None:
            head += [f"PNUM={self.pnum}", f"PNO={self.pno}"]
        return ";".join(head) + ";" + _CP_START + encode_cp(self.cp) + _CP_END


_SLOT_SETTERS = tuple(Packet.__dict__[name].__set__ for name in ("qn", "st", "cn", "pw", "mn", "flag", "pnum", "pno", "cp"))


def encode_cp(groups: Iterable[Mapping[str, str]]) -> str:
    return ";".join(",".join(f"{k}={v}" for k, v in g.items()) for g in groups)


def _validate(p: Packet) -> None:
    checks = (("QN", p.qn, _QN), ("ST", p.st, _ST), ("CN", p.cn, _CN), ("PW", p.pw, _PW), ("MN", p.mn, _MN))
    for name, value, shape in checks:
        if value is None:
            continue
        if not isinstance(value, str) or not shape.fullmatch(value):
            raise PacketError(f"{name}={value!r}: not a valid {name} ({shape.pattern})")
    if p.flag is not None and not (isinstance(p.flag, int) and 0 <= p.flag <= 255):
        raise PacketError(f"Flag={p.flag!r}: must be 0..255")
    if (p.pnum is None) != (p.pno is None):
        raise PacketError("PNUM and PNO come together")
    if p.pnum is not None:
        if not (isinstance(p.pnum, int) and isinstance(p.pno, int) and 1 <= p.pno <= p.pnum <= 9999):
            raise PacketError(f"PNUM={p.pnum!r} PNO={p.pno!r}: need 1 <= PNO <= PNUM <= 9999")
        if not p.is_split:
            raise PacketError(f"PNUM/PNO given but Flag={p.flag} has no split bit (D, value 2)")
    for group in p.cp:
        if not group:
            raise PacketError("CP has an empty group")
        for key, value in group.items():
            if not _KEY.fullmatch(key):
                raise PacketError(f"CP key {key!r}: letters, digits, '-' and '_' only")
            if not isinstance(value, str) or _BAD_VALUE.search(value):
                raise PacketError(f"CP {key}={value!r}: a value may not contain ; , & = CR LF")


def parse_data_time(text: str) -> datetime:
    """`YYYYMMDDhhmmss` (naive). PacketError when malformed. 2005-style loggers may add milliseconds
    (17 digits); those are accepted and dropped."""
    if not (text.isascii() and text.isdigit() and len(text) in (14, 17)):
        raise PacketError(f"DataTime={text!r}: expected YYYYMMDDhhmmss")
    try:  # by hand: strptime costs ten times more, on every packet central stores
        return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                        int(text[12:14]))
    except ValueError:
        raise PacketError(f"DataTime={text!r}: not a valid date and time") from None


def format_data_time(t: datetime) -> str:
    """`YYYYMMDDhhmmss` of `t` (an aware time is first converted to UTC)."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime(DATETIME_FORMAT)


def make_qn(t: datetime) -> str:
    """A QN (`YYYYMMDDhhmmsszzz`, milliseconds) for time `t` (aware times converted to UTC)."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime(DATETIME_FORMAT) + f"{t.microsecond // 1000:03d}"


def _parse_cp(body: str) -> tuple[Group, ...]:
    if body == "":
        return ()
    raw_groups = body.split(";")
    if raw_groups[-1] == "" and len(raw_groups) > 1:
        raw_groups.pop()  # tolerated: `...;&&`
    groups: list[Group] = []
    for gi, raw in enumerate(raw_groups, 1):
        if raw == "":
            raise PacketError(f"CP group {gi} is empty")
        group: Group = {}
        for item in raw.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise PacketError(f"CP group {gi}: item {item[:40]!r} has no '='")
            if key in group:
                raise PacketError(f"CP group {gi}: key {key!r} appears twice")
            if not _KEY.fullmatch(key):
                raise PacketError(f"CP group {gi}: key {key[:40]!r}: letters, digits, '-' and '_' only")
            if "&" in value:
                raise PacketError(f"CP {key}: value {value[:40]!r} contains '&'")
            group[key] = value
        groups.append(group)
    return tuple(groups)


# The fast path of `parse_segment`: a segment these match passes every check of the slow path and of
# `_validate` (the same shapes, fields in order, no duplicate, no stray character); anything else
# takes the slow path, which names what is wrong. One regex pass instead of a split and a fullmatch
# per field and per CP key, then `_validate` over again: most of the codec's time per packet.
_FAST_HEAD = re.compile(
    r"(?:QN=([0-9]{17});)?ST=([0-9]{2});CN=([0-9]{4});PW=([^;,=&\s]{1,32});MN=([0-9A-Za-z_\-]{1,32});"
    r"(?:Flag=([0-9]{1,3});(?:PNUM=([0-9]{1,4});PNO=([0-9]{1,4});)?)?CP=&&")
_FAST_ITEM = r"[0-9A-Za-z_\-]{1,64}=[^;,&=\r\n]*"
_FAST_GROUP = rf"{_FAST_ITEM}(?:,{_FAST_ITEM})*"
_FAST_CP = re.compile(rf"(?:{_FAST_GROUP}(?:;{_FAST_GROUP})*;?)?")


def _parse_fast(text: str) -> Packet | None:
    """`parse_segment`'s result for a well-formed segment; None when any check might fail (the slow
    path then decides, and names the error)."""
    m = _FAST_HEAD.match(text)
    if m is None or not text.endswith(_CP_END):
        return None
    body = text[m.end():-2]
    if len(text) < m.end() + 2 or not _FAST_CP.fullmatch(body):
        return None
    qn, st, cn, pw, mn, flag_t, pnum_t, pno_t = m.groups()
    flag = None if flag_t is None else int(flag_t)
    pnum = pno = None
    if pnum_t is not None:
        pnum, pno = int(pnum_t), int(pno_t)
        if not (1 <= pno <= pnum) or not flag & FLAG_SPLIT:  # type: ignore[operator]
            return None
    if flag is not None and flag > 255:
        return None
    groups: list[Group] = []
    if body:
        raw_groups = body.split(";")
        if raw_groups[-1] == "":
            raw_groups.pop()
        for raw in raw_groups:
            items = raw.split(",")
            group = dict(item.split("=") for item in items)  # exactly one '=' per item (the regex)
            if len(group) != len(items):  # a key twice
                return None
            groups.append(group)
    return Packet._checked(qn, st, cn, pw, mn, flag, pnum, pno, tuple(groups))


def parse_segment(text: str) -> Packet:
    """The `Packet` of a data segment; PacketError naming the first thing wrong."""
    fast = _parse_fast(text)
    return fast if fast is not None else _parse_slow(text)


def _parse_slow(text: str) -> Packet:
    """`parse_segment` field by field: the reference the fast path is tested against, and the error."""
    cp_at = text.find(_CP_START)
    if cp_at < 0:
        raise PacketError("no CP=&& in the data segment")
    if not text.endswith(_CP_END) or len(text) < cp_at + len(_CP_START) + len(_CP_END):
        raise PacketError("CP does not end in && at the end of the segment")
    if cp_at > 0 and text[cp_at - 1] != ";":
        raise PacketError("CP is not preceded by ';'")
    head = text[:cp_at - 1] if cp_at > 0 else ""
    fields: dict[str, str] = {}
    last = -1
    for item in head.split(";") if head else []:
        name, sep, value = item.partition("=")
        if not sep:
            raise PacketError(f"header item {item[:40]!r} has no '='")
        if name not in _HEADER_ORDER:
            raise PacketError(f"unknown header field {name[:20]!r} (expected {', '.join(_HEADER_ORDER)}, then CP)")
        if name in fields:
            raise PacketError(f"header field {name} appears twice")
        pos = _HEADER_ORDER.index(name)
        if pos < last:
            raise PacketError(f"header field {name} out of order (the standard's order: {';'.join(_HEADER_ORDER)})")
        last = pos
        fields[name] = value
    for name in _HEADER_ORDER:
        if name not in fields and name not in _OPTIONAL:
            raise PacketError(f"header field {name} missing")

    def number(name: str, shape: re.Pattern[str]) -> int | None:
        if name not in fields:
            return None
        if not shape.fullmatch(fields[name]):
            raise PacketError(f"{name}={fields[name][:20]!r}: not a number ({shape.pattern})")
        return int(fields[name])

    return Packet(
        qn=fields.get("QN"), st=fields["ST"], cn=fields["CN"], pw=fields["PW"], mn=fields["MN"],
        flag=number("Flag", _FLAG), pnum=number("PNUM", _PART), pno=number("PNO", _PART),
        cp=_parse_cp(text[cp_at + len(_CP_START):-len(_CP_END)]),
    )


def segment_size(packet: Packet) -> int:
    """Bytes of the packet's data segment on the wire (what the length field and the limit count)."""
    return len(packet.segment().encode(TEXT_ENCODING))


# --- Split packets ---------------------------------------------------------------------------------
def _is_factor_group(group: Mapping[str, str]) -> bool:
    return any("-" in k for k in group)


def split_packet(packet: Packet, limit: int = MAX_SEGMENT) -> list[Packet]:
    """`packet` as parts whose segments fit in `limit` bytes: the packet itself when it fits, else
    parts with the D bit set in Flag, PNUM and PNO. The leading groups that are not factor groups
    (DataTime) go into every part, so each part is a data packet on its own; factor groups are never
    cut. Every part keeps the QN. ValueError when one factor group cannot fit."""
    if segment_size(packet) <= limit:
        return [packet]
    if packet.flag is None:
        raise ValueError("a packet without Flag cannot be split (the D bit lives in Flag)")
    lead: list[Group] = []
    rest = list(packet.cp)
    while rest and not _is_factor_group(rest[0]):
        lead.append(rest.pop(0))
    flag = packet.flag | FLAG_SPLIT
    groupings: list[list[Group]] = []
    current: list[Group] = []
    for group in rest:
        trial = replace(packet, flag=flag, pnum=9999, pno=9999, cp=(*lead, *current, group))
        if current and segment_size(trial) > limit:
            groupings.append(current)
            current = [group]
        else:
            current.append(group)
    if current:
        groupings.append(current)
    n = len(groupings)
    parts = [replace(packet, flag=flag, pnum=n, pno=i, cp=(*lead, *groups)) for i, groups in enumerate(groupings, 1)]
    for part in parts:
        if segment_size(part) > limit:
            raise ValueError(f"CP group {next(iter(part.cp[-1]), '?')} alone makes a {segment_size(part)}-byte "
                             f"segment, over the {limit}-byte limit")
    return parts


def merge_parts(parts: Iterable[Packet]) -> Packet:
    """The whole packet from its split parts (any order): the common leading groups once, then every
    part's factor groups in PNO order; Flag without the D bit. ValueError for an incomplete or mixed set."""
    ps = sorted(parts, key=lambda p: p.pno or 0)
    if not ps:
        raise ValueError("no parts")
    first = ps[0]
    n = first.pnum
    if n is None or [p.pno for p in ps] != list(range(1, n + 1)):
        raise ValueError(f"parts {[p.pno for p in ps]} do not make 1..{n}")
    key = (first.qn, first.st, first.cn, first.mn, first.pnum)
    for p in ps:
        if (p.qn, p.st, p.cn, p.mn, p.pnum) != key:
            raise ValueError(f"part {p.pno} belongs to another packet (QN/ST/CN/MN/PNUM differ)")
    groups: list[Group] = []
    lead_done = False
    for p in ps:
        cp = list(p.cp)
        lead = []
        while cp and not _is_factor_group(cp[0]):
            lead.append(cp.pop(0))
        if not lead_done:
            groups += lead
            lead_done = True
        groups += cp
    flag = first.flag & ~FLAG_SPLIT if first.flag is not None else None
    return replace(first, flag=flag, pnum=None, pno=None, cp=tuple(groups))


# --- Replies -----------------------------------------------------------------------------------------
def _reply(request: Packet, cn: str, cp: tuple[Group, ...]) -> Packet:
    """A system reply (ST 91, Flag = the request's version, no answer wanted) with the request's QN."""
    version = request.version if request.version is not None else EDITION_VERSION[DEFAULT_EDITION]
    flag = version << 2
    if flag <= 255 and all(type(g) is dict for g in cp):  # the request's fields were checked when it was made
        return Packet._checked(request.qn, ST_SYSTEM, cn, request.pw, request.mn, flag, None, None, cp)
    return Packet(qn=request.qn, st=ST_SYSTEM, cn=cn, pw=request.pw, mn=request.mn, flag=version << 2, cp=cp)


def reply_9014(request: Packet) -> Packet:
    """The data answer: same QN, ST=91, CN=9014, Flag=4 (2017), CP=&&&&."""
    return _reply(request, CN_DATA_ANSWER, ())


def reply_9011(request: Packet, qn_rtn: int = 1) -> Packet:
    """The request answer: QnRtn (1 ready to execute, 2 refused, 3 PW wrong, 4 MN wrong, ... see codes.QN_RTN)."""
    return _reply(request, CN_REQUEST_ANSWER, ({"QnRtn": str(qn_rtn)},))


def reply_9012(request: Packet, exe_rtn: int = 1) -> Packet:
    """The execution result: ExeRtn (1 success, 100 no data, ... see codes.EXE_RTN)."""
    return _reply(request, CN_EXECUTION_RESULT, ({"ExeRtn": str(exe_rtn)},))


def reply_9013(request: Packet) -> Packet:
    """The notify answer: same QN, ST=91, CN=9013, CP=&&&&."""
    return _reply(request, CN_NOTIFY_ANSWER, ())
