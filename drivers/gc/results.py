"""GC results (`gc.results`): a file-drop driver that turns the result files a gas chromatograph's
software exports (GCWerks, ChemStation) into one `Reading` per injection.

A GC is not polled: its software writes a result file after each run (or each batch of runs) into
a folder the station watches. Layouts, and what no public source fixes about them, are in
drivers/gc/layouts.py.

The folder (`folder`, reported as `file://...`): result files are dropped in it; each file read
whole goes to `done/`, renamed `<newest injection, UTC>_<name>`; a file that cannot be read goes to
`quarantine/` with `<name>.reason.txt` beside it, and the reason is named in `PollResult.problems`
(the station turns it into an event). Files whose name starts with `.` or ends in `.tmp`/`.part`
are left alone (a copy in progress).

A file is read only when it is complete: unchanged (size and modification time) since the previous
poll, and finished by its layout (a GCWerks file ends its last line; a ChemStation report has its
`*** End of Report ***`). One that stays unchanged and unfinished for `max_incomplete_polls` polls
is quarantined as cut.

One reading per injection: time (the file's, in `timezone`, converted to UTC), the stream named by
the file (the inlet or sample name through `streams`; an unlisted name `x` is `inlet:x`), the
compounds named in `species` as dry mole fractions (`<species>_dry`: a GC measures dried air) in
ghgnet units, and flags: a compound the file flags is left out and named in `status_flags`
(`<species>_flagged`); a ChemStation `Error` makes the injection's status not ok, a `Warning` is a
flag. The values are the GC software's own, calibrated against the GC's standards; the standard
injections come through as their own stream (`cal:<name>` in `streams`).

Exactly once: injections are delivered oldest first and never one at or before the newest already
delivered (so a re-dropped or duplicate file gives nothing twice; a file with nothing new goes to
quarantine as a duplicate). The store is the truth across restarts: at every open the station calls
`resume(newest)` with the time of this device's newest stored reading, and the driver delivers
again, from `done/`, every injection after it: those a crash caught between the file's move and the
store's commit. Without `resume` (no store) nothing is delivered twice, but a crash can lose what
was in flight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from drivers.base import AnalyzerDriver, DeviceConfig, PollResult, TimeZoneName
from drivers.gc.layouts import (
    CHEMSTATION_DATE_FORMAT,
    Injection,
    MalformedFile,
    chemstation_complete,
    decode,
    gcwerks_complete,
    parse_chemstation,
    parse_gcwerks,
)
from drivers.reading import Reading, unit_of
from drivers.transport import TransportError
from ghgnet.config import RelPath
from ghgnet.species import MOLE_FRACTION_UNITS

DONE = "done"
QUARANTINE = "quarantine"
STAMP = "%Y%m%dT%H%M%SZ"
IGNORED_SUFFIXES = (".tmp", ".part", ".reason.txt")


class GcResultsConfig(DeviceConfig):
    """A GC fed by result files: `[[analyzers]]` entry with driver = "gc.results"."""

    driver: Literal["gc.results"] = "gc.results"
    url: str = Field(default="", description="set from `folder` (file://...); leave out")
    folder: RelPath = Field(description="the folder the GC software exports its result files into")
    layout: Literal["gcwerks", "chemstation"] = Field(description="which software's export")
    poll_interval_s: float = Field(default=30.0, gt=0, description="seconds between looks at the folder")
    timezone: TimeZoneName = Field(default="UTC", description="IANA zone of the times in the files")
    species: dict[str, str] = Field(
        default_factory=lambda: {"CO2": "co2", "CH4": "ch4", "N2O": "n2o", "CO": "co"},
        description="compound name in the file -> ghgnet species (reported dry); others are ignored",
    )
    streams: dict[str, str] = Field(
        default_factory=dict,
        description="inlet or sample name in the file -> stream (inlet:<x>, cal:<cylinder>, target:<cylinder>);"
        " an unlisted name x is inlet:x",
    )
    date_format: str = Field(default=CHEMSTATION_DATE_FORMAT, description="ChemStation `Injection Date` format")
    default_unit: str = Field(default="ppm", description="ChemStation: the amount's unit when the report gives none")
    max_incomplete_polls: int = Field(default=10, ge=1, description="polls an unfinished, unchanged file waits")

    @field_validator("species")
    @classmethod
    def _species(cls, species: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in species.items() if unit_of(v) not in MOLE_FRACTION_UNITS}
        if bad:
            raise ValueError(f"not mole-fraction species: {bad}")
        return species

    @field_validator("streams")
    @classmethod
    def _streams(cls, streams: dict[str, str]) -> dict[str, str]:
        bad = [s for s in streams.values() if not s.startswith(("inlet:", "cal:", "target:")) and s not in
               ("zero", "span")]
        if bad:
            raise ValueError(f"streams {bad}: a stream is inlet:<x>, cal:<cylinder>, target:<cylinder>, zero or span")
        return streams

    @model_validator(mode="after")
    def _url(self) -> "GcResultsConfig":
        self.url = self.folder.resolve().as_uri()
        return self


class DropFolder:
    """The folder a GC exports into, as the transport the station opens and closes: open makes sure
    it exists (with done/ and quarantine/); a missing folder is a lost link."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(urlsplit(str(path)).path if str(path).startswith("file:") else path)
        self.url = self.path.as_uri() if self.path.is_absolute() else str(self.path)
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        if not self.path.is_dir():
            raise TransportError(f"result folder {self.path} does not exist")
        for sub in (DONE, QUARANTINE):
            (self.path / sub).mkdir(exist_ok=True)
        self._open = True

    def close(self) -> None:
        self._open = False

    def incoming(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")
                      and not p.name.endswith(IGNORED_SUFFIXES))

    def archived(self) -> list[Path]:
        return sorted((self.path / DONE).iterdir())

    def _move(self, src: Path, sub: str, name: str) -> Path:
        dest = self.path / sub / name
        n = 1
        while dest.exists():
            dest = self.path / sub / f"{name}.{n}"
            n += 1
        os.replace(src, dest)
        return dest

    def archive(self, src: Path, newest: datetime) -> Path:
        return self._move(src, DONE, f"{newest.strftime(STAMP)}_{src.name}")

    def quarantine(self, src: Path, reason: str) -> Path:
        dest = self._move(src, QUARANTINE, src.name)
        dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n")
        return dest


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    polls: int = 1


class GcResults(AnalyzerDriver):
    """A gas chromatograph, through the result files its software exports."""

    name = "gc.results"
    Config = GcResultsConfig
    simulator = "simulators.gc.results:GcResultsSimulator"

    config: GcResultsConfig
    LAYOUTS: ClassVar[dict[str, Any]] = {"gcwerks": gcwerks_complete, "chemstation": chemstation_complete}

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        # A file drop writes no bytes to the instrument: a ScriptedTransport in a test stands beside
        # the folder named by the config.
        self.folder = transport if isinstance(transport, DropFolder) else DropFolder(config.folder)
        self._zone = ZoneInfo(config.timezone)
        self._seen: dict[str, _Seen] = {}
        self._newest: datetime | None = None
        self._again: list[Reading] = []

    @classmethod
    def make_transport(cls, config: DeviceConfig) -> DropFolder:
        assert isinstance(config, GcResultsConfig)
        return DropFolder(config.folder)

    def open(self) -> None:
        super().open()
        if self.folder is not self.transport:
            self.folder.open()

    # ---- reading files

    def _parse(self, text: str) -> list[Injection]:
        if self.config.layout == "gcwerks":
            return parse_gcwerks(text)
        return parse_chemstation(text, self.config.date_format, self.config.default_unit)

    def _reading(self, inj: Injection) -> Reading:
        values: dict[str, float] = {}
        flags = [f"{self.config.species[c]}_flagged" for c in inj.flagged if c in self.config.species]
        for compound, (value, unit) in inj.values.items():
            sp = self.config.species.get(compound)
            if sp is None:
                continue
            target = unit_of(sp)
            if unit not in MOLE_FRACTION_UNITS:
                raise MalformedFile(f"{compound}: unit {unit!r} is not one of {', '.join(MOLE_FRACTION_UNITS)}")
            values[f"{sp}_dry"] = round(value * MOLE_FRACTION_UNITS[unit] / MOLE_FRACTION_UNITS[target], 9)
        flags += ["gc_warning"] * bool(inj.warnings) + ["gc_error"] * bool(inj.errors)
        return Reading(
            time=inj.time.replace(tzinfo=self._zone).astimezone(UTC),
            device=self.device_id,
            values=values,
            status_ok=not inj.errors,
            status_flags=tuple(flags),
            stream=self.config.streams.get(inj.source, f"inlet:{inj.source}"),
        )

    def _read(self, path: Path) -> list[Reading]:
        return [self._reading(inj) for inj in self._parse(decode(path.read_bytes()))]

    def _complete(self, path: Path, problems: list[str]) -> bool:
        """Unchanged since the previous poll and finished; quarantines one that stays unfinished."""
        st = path.stat()
        seen = self._seen.get(path.name)
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self._seen[path.name] = _Seen(st.st_size, st.st_mtime_ns)
            return False
        if self.LAYOUTS[self.config.layout](decode(path.read_bytes())):
            return True
        seen.polls += 1
        if seen.polls > self.config.max_incomplete_polls:
            self._refuse(path, f"unfinished and unchanged for {seen.polls} polls: the file is cut", problems)
        return False

    def _refuse(self, path: Path, reason: str, problems: list[str]) -> None:
        self._seen.pop(path.name, None)
        dest = self.folder.quarantine(path, reason)
        problems.append(f"{path.name} quarantined to {dest.parent.name}/: {reason}")

    # ---- the driver

    def resume(self, newest: datetime | None) -> None:
        """The store holds this device's readings up to `newest` (None: none): deliver again, from
        done/, every injection after it."""
        self._newest = newest
        again: list[Reading] = []
        for path in self.folder.archived():
            stamp = path.name.split("_", 1)[0]
            try:
                last = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
            except ValueError:
                continue
            if newest is None or last > newest:
                try:
                    again += [r for r in self._read(path) if newest is None or r.time > newest]
                except (MalformedFile, OSError):
                    continue  # it was read when it was archived; a file changed since is left alone
        self._again = sorted(again, key=lambda r: r.time)

    def poll(self) -> PollResult:
        """Every complete new result file, as readings oldest first; each file then archived, or
        quarantined with the reason in `problems`."""
        if not self.folder.is_open:
            raise TransportError(f"{self.folder.url} is not open")
        problems: list[str] = []
        readings, self._again = list(self._again), []
        try:
            paths = self.folder.incoming()
        except OSError as exc:
            raise TransportError(f"cannot list {self.folder.url}: {exc}") from exc
        for gone in set(self._seen) - {p.name for p in paths}:
            del self._seen[gone]
        parsed: list[tuple[Path, list[Reading]]] = []
        for path in paths:
            if not self._complete(path, problems):
                continue
            try:
                got = self._read(path)
            except MalformedFile as exc:
                self._refuse(path, f"malformed {self.config.layout} file: {exc}", problems)
                continue
            if got:
                parsed.append((path, got))
        newest = max([t for t in (self._newest, readings[-1].time if readings else None) if t], default=None)
        for path, got in sorted(parsed, key=lambda item: min(r.time for r in item[1])):
            fresh = sorted((r for r in got if newest is None or r.time > newest), key=lambda r: r.time)
            if not fresh:
                self._refuse(path, f"duplicate: all {len(got)} injection(s) at or before the newest delivered "
                                   f"({newest.isoformat() if newest else '-'})", problems)
                continue
            if len(fresh) < len(got):
                problems.append(f"{path.name}: {len(got) - len(fresh)} injection(s) at or before the newest "
                                "delivered were skipped")
            self._seen.pop(path.name, None)
            self.folder.archive(path, fresh[-1].time)
            readings += fresh
            newest = fresh[-1].time
        if newest is not None:
            self._newest = newest
        return PollResult(readings=readings, problems=problems)

    def identify(self) -> dict[str, Any]:
        info = super().identify()
        info.update(folder=str(self.folder.path), layout=self.config.layout,
                    waiting=[p.name for p in self.folder.incoming()],
                    quarantined=sorted(p.name for p in (self.folder.path / QUARANTINE).glob("*")
                                       if not p.name.endswith(".reason.txt")))
        return info
