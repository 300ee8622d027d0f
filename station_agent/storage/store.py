"""The station's SQLite database: raw readings (L0), minute records, events, the outbox, state.

One writer: exactly one `StationStore(path)` per database writes, and in the daemon it lives in the
writer thread alone. Everybody else (status, export, the forwarder's reads) opens it with
`read_only=True`; WAL mode lets them read while the writer writes.

Every record that goes to central (minute records, calibration and target results, events) gets its
per-station `seq` from the outbox in the same transaction that stores it, so a crash can never leave
a record without its outbox entry or the other way round. Outbox rows are deleted only when central
acknowledges them, or moved to `set_aside` (records the broker will not take, kept until retried).

Each database has an identity made with it (`store_id`, 32 hex digits): seqs are per store, so a
replaced database, starting again at seq 1, is new data at central, not duplicates.

The daemon talks to SQLite through sqlite3 alone: sqlite-utils (the technician's tool for this
database) imports pandas when it is installed, which a daemon has no use for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.reading import Reading
from ghgnet.records import Event, MinuteRecord, event_to_dict, minute_to_dict
from ghgnet.timeutil import iso_utc
from station_agent.storage.highrate_block import HighRateBlock, decode_block, encode_block, merge_blocks

# Each entry migrates the schema from version i to i+1; never edit a released entry, append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE raw (
        id INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        time TEXT NOT NULL,
        stream TEXT NOT NULL,
        flushing INTEGER NOT NULL,
        status INTEGER,
        status_ok INTEGER NOT NULL,
        status_flags TEXT NOT NULL,
        "values" TEXT NOT NULL
    );
    CREATE INDEX raw_time ON raw (time);
    CREATE INDEX raw_device_time ON raw (device, time);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        created TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE minute (
        seq INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        time TEXT NOT NULL,
        stream TEXT NOT NULL,
        flag TEXT NOT NULL,
        reasons TEXT NOT NULL,
        species TEXT NOT NULL,
        h2o REAL,
        n_total INTEGER NOT NULL,
        calibration_id TEXT,
        diagnostics TEXT NOT NULL,
        UNIQUE (device, time, stream)
    );
    CREATE INDEX minute_time ON minute (time);
    CREATE TABLE event (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        device TEXT,
        message TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX event_time ON event (time);
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE raw ADD COLUMN conditions TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE cylinder (
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        serial TEXT NOT NULL,
        assigned TEXT NOT NULL,
        uncertainty TEXT NOT NULL,
        scale TEXT NOT NULL,
        fill_date TEXT,
        pressure_bar REAL,
        low_pressure_bar REAL NOT NULL,
        added TEXT NOT NULL,
        retired TEXT
    );
    CREATE TABLE calibration (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        device TEXT NOT NULL,
        time_start TEXT NOT NULL,
        time_end TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX calibration_device_end ON calibration (device, time_end);
    CREATE TABLE target (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        device TEXT NOT NULL,
        time TEXT NOT NULL,
        cylinder TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX target_time ON target (time);
    """,
    # How many rows the outbox holds, kept by the writer in the transactions that add and remove
    # them (StationStore._Transaction): COUNT(*) walks every outbox page, ~15 ms for a month of
    # minutes, and a station's status reports its backlog every few seconds, replays included.
    """
    CREATE TABLE outbox_count (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT INTO outbox_count (id, n) SELECT 1, COUNT(*) FROM outbox;
    """,
    # The database's identity, made with it (an upgraded database gets one now): central keys
    # records by (station, store, seq), so a replaced database's new seq 1 is new data.
    """
    CREATE TABLE identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        store TEXT NOT NULL CHECK (length(store) = 32),
        created TEXT NOT NULL
    );
    INSERT INTO identity (id, store, created)
        VALUES (1, lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
    """,
    # Records the broker will not take (too big, refused, or dropping the connection each time),
    # moved out of the outbox so they do not block the records behind them; kept, never deleted,
    # and put back by `station-agent set-aside retry` under their own seq.
    """
    CREATE TABLE set_aside (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        created TEXT NOT NULL,
        payload TEXT NOT NULL,
        set_aside TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    """,
    # HJ 212 uplinks (station_agent/storage/hj212_queue.py): each uplink's packets until the
    # platform's 9014 names their QN, how far its packets are made per CN, its last QN and the
    # OverTime/ReCount a platform set with CN 1000.
    """
    CREATE TABLE hj212_packet (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uplink TEXT NOT NULL,
        qn TEXT NOT NULL,
        cn TEXT NOT NULL,
        data_time TEXT NOT NULL,
        pnum INTEGER NOT NULL,
        pno INTEGER NOT NULL,
        cp TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (uplink, qn)
    );
    CREATE INDEX hj212_packet_uplink ON hj212_packet (uplink, id);
    CREATE TABLE hj212_cursor (
        uplink TEXT NOT NULL,
        cn TEXT NOT NULL,
        until TEXT NOT NULL,
        PRIMARY KEY (uplink, cn)
    );
    CREATE TABLE hj212_link (
        uplink TEXT PRIMARY KEY,
        last_qn TEXT NOT NULL,
        overtime_s REAL,
        recount INTEGER
    );
    """,
    # A stack CEMS's emission minutes and hours (issue 18), one row per (unit, period, time).
    """
    CREATE TABLE emission (
        seq INTEGER PRIMARY KEY,
        unit TEXT NOT NULL,
        period TEXT NOT NULL,
        time TEXT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (unit, period, time)
    );
    """,
    # Eddy-covariance sites: the half-hourly flux records (sent to central, kind "flux") and each
    # device's 10-20 Hz records as one compressed block per averaging period
    # (station_agent/storage/highrate_block.py), dropped by retention like raw readings.
    """
    CREATE TABLE flux (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL
    );
    CREATE TABLE highrate_block (
        device TEXT NOT NULL,
        start TEXT NOT NULL,
        fs_hz REAL NOT NULL,
        n INTEGER NOT NULL,
        columns TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (device, start)
    );
    """,
    # A cylinder's traceability (issue 21): the record of its value assignment against the
    # station's references (`station-agent cylinders assign`), with their own chains; '{}' when
    # its values were entered by hand.
    """
    ALTER TABLE cylinder ADD COLUMN traceability TEXT NOT NULL DEFAULT '{}';
    """,
    # Raw readings archived at central (station_agent/forwarding/raw_upload.py): per device, every
    # raw row before `until` is held by central (advanced only on central's ack of a chunk).
    """
    CREATE TABLE raw_upload_cursor (
        device TEXT PRIMARY KEY,
        until TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

RECORD_KINDS = ("minute", "event", "calibration", "target", "emission", "flux")
"""The records a station sends to central, each kind in its own table keyed by seq."""
_IDENTITY: dict[str, tuple[str, tuple[str, ...]]] = {
    "minute": ("minute", ("device", "time", "stream")),
    "event": ("event", ("kind", "time")),
    "calibration": ("calibration", ("id", "time_start", "time_end")),
    "target": ("target", ("id", "time", "cylinder")),
    "emission": ("emission", ("unit", "period", "time")),
    "flux": ("flux", ("time",)),
}
"""Each kind's table and the columns that identify one of its records (`record_identities`)."""


class StoreError(Exception):
    pass


_PAYLOAD = {False: "payload", True: "CAST(payload AS BLOB)"}
"""An outbox payload as text, or as its UTF-8 bytes (a cast, no copy into Python text)."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _finite(d: dict[str, float]) -> dict[str, float | None]:
    # JSON has no NaN: a missing value is stored as null.
    return {k: (None if v != v else v) for k, v in d.items()}


class StationStore:
    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            if not self.path.exists():
                raise StoreError(f"no station database at {self.path}")
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self.conn = conn
        self._outbox_delta = 0
        """Outbox rows added minus removed in the open transaction (`_Transaction` books them)."""
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Deleted rows are not overwritten with zeros (Debian's SQLite does that by default):
            # what goes is acknowledged outbox copies and data past its retention, nothing secret,
            # and zeroing doubled the pages written per acknowledged record.
            conn.execute("PRAGMA secure_delete=OFF")
            self._migrate()
            # the count is the writer's own bookkeeping: start from the truth, whatever came before
            with self._tx():
                conn.execute("UPDATE outbox_count SET n = (SELECT COUNT(*) FROM outbox)")
        else:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}; this ghgnet knows up to {SCHEMA_VERSION}"
                )

    # -- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this ghgnet ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            script = MIGRATIONS[target - 1]
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {target}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.conn.close()

    def _tx(self):
        return _Transaction(self)

    # -- writes (the writer thread only) ----------------------------------------------------
    def insert_raw(self, readings: Sequence[Reading]) -> int:
        rows = [
            (
                r.device,
                iso_utc(r.time),
                r.stream,
                int(r.flushing),
                r.status,
                int(r.status_ok),
                _json(list(r.status_flags)),
                _json(_finite(r.values)),
                _json(list(r.conditions)),
            )
            for r in readings
        ]
        with self._tx():
            self.conn.executemany(
                'INSERT INTO raw (device, time, stream, flushing, status, status_ok, status_flags, "values",'
                " conditions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def _outbox(self, kind: str, payload: dict, created: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO outbox (kind, created, payload) VALUES (?, ?, ?)",
            (kind, created, _json(payload)),
        )
        self._outbox_delta += 1
        return int(cur.lastrowid)

    def insert_minutes(self, records: Sequence[MinuteRecord], created: datetime) -> list[int]:
        """Store minute records with their outbox entries, in one transaction; returns their seqs.

        A record whose (device, time, stream) is already stored is skipped (a restart that closes a
        minute again must not send it twice) and gets no seq.
        """
        seqs: list[int] = []
        stamp = iso_utc(created)
        with self._tx():
            for rec in records:
                row = minute_to_dict(rec)
                exists = self.conn.execute(
                    "SELECT 1 FROM minute WHERE device = ? AND time = ? AND stream = ?",
                    (row["device"], row["time"], row["stream"]),
                ).fetchone()
                if exists:
                    continue
                seq = self._outbox("minute", row, stamp)
                self.conn.execute(
                    "INSERT INTO minute (seq, device, time, stream, flag, reasons, species, h2o,"
                    " n_total, calibration_id, diagnostics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        row["device"],
                        row["time"],
                        row["stream"],
                        row["flag"],
                        _json(row["reasons"]),
                        _json(row["species"]),
                        row["h2o"],
                        row["n_total"],
                        row["calibration_id"],
                        _json(row["diagnostics"]),
                    ),
                )
                seqs.append(seq)
        return seqs

    def replace_minute(self, old_seq: int, rec: MinuteRecord, created: datetime) -> int:
        """A reprocessed minute: it gets a new seq (central keeps the latest seq of a minute), and
        the old outbox entry, if not yet acknowledged, is dropped since the new one supersedes it."""
        row = minute_to_dict(rec)
        with self._tx():
            seq = self._outbox("minute", row, iso_utc(created))
            self.conn.execute(
                "UPDATE minute SET seq = ?, flag = ?, reasons = ?, species = ?, calibration_id = ? WHERE seq = ?",
                (seq, row["flag"], _json(row["reasons"]), _json(row["species"]), row["calibration_id"], old_seq),
            )
            self._outbox_delta -= self.conn.execute("DELETE FROM outbox WHERE seq = ?", (old_seq,)).rowcount
        return seq

    def insert_event(self, event: Event) -> int:
        with self._tx():
            return self._event(event)

    def _event(self, event: Event) -> int:
        row = event_to_dict(event)
        seq = self._outbox("event", row, row["time"])
        self.conn.execute(
            "INSERT INTO event (seq, time, kind, severity, device, message, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, row["time"], row["kind"], row["severity"], row["device"], row["message"], _json(row["data"])),
        )
        return seq

    def set_aside(self, reasons: dict[int, str], now: datetime,
                  alarm: Callable[[list[dict]], Event | None]) -> list[dict]:
        """Move outbox records (seq -> why) to the set-aside table and store `alarm(moved)`, an
        event naming them, in the same transaction. Seqs no longer in the outbox (acknowledged
        meanwhile) are left alone. Returns the moved records (seq, kind, bytes, reason)."""
        moved: list[dict] = []
        stamp = iso_utc(now)
        with self._tx():
            for seq, reason in sorted(reasons.items()):
                row = self.conn.execute("SELECT kind, created, payload FROM outbox WHERE seq = ?", (seq,)).fetchone()
                if row is None:
                    continue
                self.conn.execute(
                    "INSERT INTO set_aside (seq, kind, created, payload, set_aside, reason) VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, row[0], row[1], row[2], stamp, reason))
                self._outbox_delta -= self.conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
                moved.append({"seq": seq, "kind": row[0], "bytes": len(row[2].encode()), "reason": reason})
            event = alarm(moved) if moved else None
            if event is not None:
                self._event(event)
        return moved

    def retry_set_aside(self, seqs: Iterable[int] | None, event: Callable[[list[int]], Event]) -> list[int]:
        """Put set-aside records back into the outbox under their own seq (all of them when `seqs`
        is None), with `event(seqs)` saying so, in one transaction; returns the seqs put back."""
        with self._tx():
            if seqs is None:
                back = [r[0] for r in self.conn.execute("SELECT seq FROM set_aside ORDER BY seq")]
            else:
                wanted = sorted({int(s) for s in seqs})
                back = [s for s in wanted
                        if self.conn.execute("SELECT 1 FROM set_aside WHERE seq = ?", (s,)).fetchone()]
            for seq in back:
                self.conn.execute("INSERT INTO outbox (seq, kind, created, payload)"
                                  " SELECT seq, kind, created, payload FROM set_aside WHERE seq = ?", (seq,))
                self.conn.execute("DELETE FROM set_aside WHERE seq = ?", (seq,))
            self._outbox_delta += len(back)
            if back:
                self._event(event(back))
        return back

    def acknowledge(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Forget outbox entries central holds (inclusive seq ranges); returns how many went."""
        deleted = 0
        with self._tx():
            for lo, hi in ranges:
                deleted += self.conn.execute(
                    "DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (int(lo), int(hi))
                ).rowcount
            self._outbox_delta -= deleted
        return deleted

    def insert_calibration(self, device: str, payload: dict, created: datetime) -> int | None:
        """Store a calibration result (wire form, record_type "calibration") with its outbox entry.
        A result whose id is already stored is skipped (None)."""
        with self._tx():
            if self.conn.execute("SELECT 1 FROM calibration WHERE id = ?", (payload["id"],)).fetchone():
                return None
            seq = self._outbox("calibration", payload, iso_utc(created))
            self.conn.execute(
                "INSERT INTO calibration (seq, id, device, time_start, time_end, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (seq, payload["id"], device, payload["time_start"], payload["time_end"], _json(payload)),
            )
        return seq

    def insert_target(self, device: str, payload: dict, created: datetime) -> int | None:
        """Store a target result (wire form, record_type "target") with its outbox entry."""
        with self._tx():
            if self.conn.execute("SELECT 1 FROM target WHERE id = ?", (payload["id"],)).fetchone():
                return None
            seq = self._outbox("calibration", payload, iso_utc(created))
            self.conn.execute(
                "INSERT INTO target (seq, id, device, time, cylinder, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (seq, payload["id"], device, payload["time"], payload["cylinder"], _json(payload)),
            )
        return seq

    def insert_emissions(self, records: Sequence[dict], created: datetime) -> list[int]:
        """Store emission records (wire form without seq: period, unit, time, ...) with their outbox
        entries, in one transaction; one already stored for its (unit, period, time) is skipped."""
        seqs: list[int] = []
        stamp = iso_utc(created)
        with self._tx():
            for rec in records:
                key = (rec["unit"], rec["period"], rec["time"])
                if self.conn.execute("SELECT 1 FROM emission WHERE unit = ? AND period = ? AND time = ?",
                                     key).fetchone():
                    continue
                seq = self._outbox("emission", rec, stamp)
                self.conn.execute("INSERT INTO emission (seq, unit, period, time, payload) VALUES (?, ?, ?, ?, ?)",
                                  (seq, *key, _json(rec)))
                seqs.append(seq)
        return seqs

    def emission_rows(self, period: str, start: str = "", end: str = "9999", unit: str | None = None) -> list[dict]:
        """Emission records of `period` (minute, hour) with start <= time < end (ISO text), in time order."""
        sql = "SELECT seq, payload FROM emission WHERE period = ? AND time >= ? AND time < ?"
        args: list[Any] = [period, start, end]
        if unit is not None:
            sql += " AND unit = ?"
            args.append(unit)
        return [{"seq": r[0], **json.loads(r[1])} for r in self.conn.execute(sql + " ORDER BY time, unit", args)]

    def last_emission_time(self, unit: str, period: str, first: bool = False) -> str | None:
        """The time of the unit's newest (`first`: oldest) emission record of `period`, or None."""
        agg = "min" if first else "max"
        row = self.conn.execute(f"SELECT {agg}(time) FROM emission WHERE unit = ? AND period = ?",
                                (unit, period)).fetchone()
        return row[0] if row else None

    def newest_emission_time(self, period: str) -> str | None:
        """The time of the newest emission record of `period` (minute, hour) of any unit, or None."""
        return self.conn.execute("SELECT max(time) FROM emission WHERE period = ?", (period,)).fetchone()[0]

    def first_raw_time(self, devices: Iterable[str], after: datetime) -> str | None:
        """The time of the first raw reading of any of `devices` at or after `after`."""
        times = [self.conn.execute("SELECT min(time) FROM raw WHERE device = ? AND time >= ?",
                                   (d, iso_utc(after))).fetchone()[0] for d in devices]
        times = [t for t in times if t]
        return min(times) if times else None

    def insert_flux(self, payload: dict, created: datetime) -> int | None:
        """Store a half hour's flux record (wire form: HalfHourFlux.wire_dict()) with its outbox entry.
        A period already stored is skipped (None): a restart that processes it again sends it once."""
        with self._tx():
            if self.conn.execute("SELECT 1 FROM flux WHERE time = ?", (payload["start"],)).fetchone():
                return None
            seq = self._outbox("flux", payload, iso_utc(created))
            self.conn.execute("INSERT INTO flux (seq, time, payload) VALUES (?, ?, ?)",
                              (seq, payload["start"], _json(payload)))
        return seq

    def put_highrate_block(self, block: HighRateBlock) -> HighRateBlock:
        """Store one device's block of a period; when the period has one already (stored at a stop,
        the agent restarted within the period) the two are merged in time order, nothing replaced.
        Returns the block as stored."""
        with self._tx():
            row = self.conn.execute("SELECT fs_hz, n, columns, data FROM highrate_block WHERE device = ? AND start = ?",
                                    (block.device, iso_utc(block.start))).fetchone()
            if row is not None:
                block = merge_blocks(decode_block(block.device, block.start, row[0], row[1], row[2], row[3]), block)
            names, data = encode_block(block)
            self.conn.execute(
                "INSERT OR REPLACE INTO highrate_block (device, start, fs_hz, n, columns, data) VALUES (?, ?, ?, ?, ?, ?)",
                (block.device, iso_utc(block.start), block.fs_hz, block.n, names, data))
        return block

    def highrate_blocks(self, start: datetime, end: datetime, device: str | None = None) -> Iterator[HighRateBlock]:
        """The blocks whose period starts in [start, end), by start then device."""
        sql = "SELECT device, start, fs_hz, n, columns, data FROM highrate_block WHERE start >= ? AND start < ?"
        params: tuple = (iso_utc(start), iso_utc(end))
        if device is not None:
            sql += " AND device = ?"
            params += (device,)
        for dev, st, fs, n, names, data in self.conn.execute(sql + " ORDER BY start, device", params):
            yield decode_block(dev, datetime.fromisoformat(st.replace("Z", "+00:00")), fs, n, names, data)

    def purge_highrate(self, before: datetime) -> int:
        """Delete the blocks of periods that start before `before` (retention; never forwarded)."""
        with self._tx():
            return self.conn.execute("DELETE FROM highrate_block WHERE start < ?", (iso_utc(before),)).rowcount

    def flux_rows(self, start: str = "", end: str = "9999") -> list[dict]:
        """Stored flux records (wire form) whose period starts in [start, end), in time order."""
        return [json.loads(r[0]) for r in self.conn.execute(
            "SELECT payload FROM flux WHERE time >= ? AND time < ? ORDER BY time", (start, end))]

    def upsert_cylinder(self, cyl: dict, now: datetime, keep_assignment: bool = False) -> None:
        """Add or update a cylinder (fields of station_agent.sequencing.sampling_config.CylinderConfig).

        keep_assignment: a cylinder whose values came from a value assignment (a stored
        traceability) keeps those values, uncertainties, scales and chain; the rest of `cyl` (role,
        serial, pressure ...) is written. For the config's declarations at start-up: an assignment
        is newer than the file; `cylinders add` replaces it on purpose."""
        if keep_assignment and not cyl.get("traceability"):
            row = self.conn.execute("SELECT assigned, uncertainty, scale, traceability FROM cylinder WHERE id = ?",
                                    (cyl["id"],)).fetchone()
            if row and json.loads(row[3]):
                cyl = cyl | {"assigned": json.loads(row[0]), "uncertainty": json.loads(row[1]),
                             "scale": json.loads(row[2]), "traceability": json.loads(row[3])}
        with self._tx():
            self.conn.execute(
                "INSERT INTO cylinder (id, role, serial, assigned, uncertainty, scale, fill_date, pressure_bar,"
                " low_pressure_bar, added, traceability) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET role = excluded.role, serial = excluded.serial,"
                " assigned = excluded.assigned, uncertainty = excluded.uncertainty, scale = excluded.scale,"
                " fill_date = excluded.fill_date, pressure_bar = excluded.pressure_bar,"
                " low_pressure_bar = excluded.low_pressure_bar, retired = NULL,"
                " traceability = excluded.traceability",
                (cyl["id"], cyl["role"], cyl.get("serial", ""), _json(cyl["assigned"]),
                 _json(cyl.get("uncertainty", {})), _json(cyl.get("scale", {})),
                 str(cyl["fill_date"]) if cyl.get("fill_date") else None, cyl.get("pressure_bar"),
                 cyl.get("low_pressure_bar", 20.0), iso_utc(now), _json(cyl.get("traceability") or {})),
            )

    def retire_cylinder(self, cylinder_id: str, now: datetime) -> bool:
        with self._tx():
            return self.conn.execute(
                "UPDATE cylinder SET retired = ? WHERE id = ? AND retired IS NULL", (iso_utc(now), cylinder_id)
            ).rowcount == 1

    def size_bytes(self) -> int:
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(page_size * (pages - free))

    def free_space(self, raw_before: datetime, rows: int = 10_000) -> dict[str, int]:
        """Make room, in the order of the disk policy: the oldest raw readings before `raw_before`,
        then the oldest minute records and events that central has acknowledged (in neither the
        outbox nor the set-aside records). Never an outbox row. At most `rows` rows per call;
        returns what went."""
        out = {"raw": 0, "minute": 0, "event": 0}
        with self._tx():
            out["raw"] = self.conn.execute(
                "DELETE FROM raw WHERE id IN (SELECT id FROM raw WHERE time < ? ORDER BY time LIMIT ?)",
                (iso_utc(raw_before), rows)).rowcount
            if out["raw"] == 0:
                for table in ("minute", "event"):
                    out[table] = self.conn.execute(
                        f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE seq NOT IN"
                        f" (SELECT seq FROM outbox) AND seq NOT IN (SELECT seq FROM set_aside)"
                        f" ORDER BY seq LIMIT ?)", (rows,)).rowcount
        return out

    def purge_raw(self, before: datetime, keep_unarchived: bool = False) -> int:
        """Delete raw readings older than `before`; with `keep_unarchived` (the raw upload is on)
        only those central already holds (before their device's upload cursor)."""
        with self._tx():
            if not keep_unarchived:
                return self.conn.execute("DELETE FROM raw WHERE time < ?", (iso_utc(before),)).rowcount
            return self.conn.execute(
                "DELETE FROM raw WHERE time < ? AND time < COALESCE((SELECT until FROM raw_upload_cursor c"
                " WHERE c.device = raw.device), '')", (iso_utc(before),)).rowcount

    def raw_upload_cursors(self) -> dict[str, str]:
        """Per device, the time (ISO text) before which central holds every raw row ({} before
        the first upload, or on a database the writer has not migrated yet)."""
        try:
            return dict(self.conn.execute("SELECT device, until FROM raw_upload_cursor").fetchall())
        except sqlite3.OperationalError:
            return {}

    def advance_raw_cursor(self, device: str, until: str, now: datetime) -> str:
        """Central holds `device`'s raw rows before `until` (ISO text): the cursor moves there,
        never back. Returns the cursor as it stands."""
        with self._tx():
            self.conn.execute(
                "INSERT INTO raw_upload_cursor (device, until, updated) VALUES (?, ?, ?)"
                " ON CONFLICT (device) DO UPDATE SET until = max(until, excluded.until), updated = excluded.updated",
                (device, until, iso_utc(now)))
            return self.conn.execute("SELECT until FROM raw_upload_cursor WHERE device = ?", (device,)).fetchone()[0]

    def unarchived_raw(self, before: datetime, rows: int) -> list[dict]:
        """Of the oldest `rows` raw readings before `before` (what `free_space` deletes next), those
        central does not hold yet, per device: count, first and last time."""
        return [{"device": r[0], "rows": r[1], "first": r[2], "last": r[3]} for r in self.conn.execute(
            "SELECT device, count(*), min(time), max(time) FROM (SELECT device, time FROM raw WHERE time < ?"
            " ORDER BY time LIMIT ?) AS doomed WHERE time >= COALESCE((SELECT until FROM raw_upload_cursor c"
            " WHERE c.device = doomed.device), '') GROUP BY device ORDER BY device", (iso_utc(before), rows))]

    def put_state(self, key: str, value: Any, now: datetime) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT INTO state (key, value, updated) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                (key, _json(value), iso_utc(now)),
            )

    # -- reads ------------------------------------------------------------------------------
    def get_state(self, key: str) -> tuple[Any, str] | None:
        row = self.conn.execute("SELECT value, updated FROM state WHERE key = ?", (key,)).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def newest_raw_time(self, device: str) -> str | None:
        """Time (ISO 8601 UTC) of `device`'s newest stored raw reading, or None: where a driver whose
        records outlive the instrument (a file drop) resumes after a restart."""
        row = self.conn.execute("SELECT MAX(time) FROM raw WHERE device = ?", (device,)).fetchone()
        return row[0] if row else None

    def raw_rows(self, start: datetime, end: datetime, device: str | None = None) -> Iterator[dict]:
        sql = 'SELECT device, time, stream, flushing, status, status_ok, status_flags, "values", conditions' \
            " FROM raw WHERE time >= ? AND time < ?"
        args: list[Any] = [iso_utc(start), iso_utc(end)]
        if device:
            sql += " AND device = ?"
            args.append(device)
        for row in self.conn.execute(sql + " ORDER BY time, id", args):
            yield {
                "device": row[0],
                "time": row[1],
                "stream": row[2],
                "flushing": bool(row[3]),
                "status": row[4],
                "status_ok": bool(row[5]),
                "status_flags": json.loads(row[6]),
                "values": json.loads(row[7]),
                "conditions": json.loads(row[8]),
            }

    def raw_quantities(self, start: datetime, end: datetime, device: str | None = None) -> list[str]:
        """The quantity names present in raw readings of the interval, sorted."""
        sql = 'SELECT DISTINCT j.key FROM raw, json_each(raw."values") AS j WHERE raw.time >= ? AND raw.time < ?'
        args: list[Any] = [iso_utc(start), iso_utc(end)]
        if device:
            sql += " AND raw.device = ?"
            args.append(device)
        return sorted(r[0] for r in self.conn.execute(sql, args))

    def minute_rows(self, start: datetime, end: datetime, device: str | None = None) -> Iterator[dict]:
        sql = (
            "SELECT seq, device, time, stream, flag, reasons, species, h2o, n_total, calibration_id,"
            " diagnostics FROM minute WHERE time >= ? AND time < ?"
        )
        args: list[Any] = [iso_utc(start), iso_utc(end)]
        if device:
            sql += " AND device = ?"
            args.append(device)
        for row in self.conn.execute(sql + " ORDER BY time, device, stream", args):
            yield {
                "seq": row[0],
                "device": row[1],
                "time": row[2],
                "stream": row[3],
                "flag": row[4],
                "reasons": json.loads(row[5]),
                "species": json.loads(row[6]),
                "h2o": row[7],
                "n_total": row[8],
                "calibration_id": row[9],
                "diagnostics": json.loads(row[10]),
            }

    def cylinders(self, include_retired: bool = False) -> list[dict]:
        sql = ("SELECT id, role, serial, assigned, uncertainty, scale, fill_date, pressure_bar, low_pressure_bar,"
               " added, retired, traceability FROM cylinder")
        if not include_retired:
            sql += " WHERE retired IS NULL"
        return [
            {"id": r[0], "role": r[1], "serial": r[2], "assigned": json.loads(r[3]),
             "uncertainty": json.loads(r[4]), "scale": json.loads(r[5]), "fill_date": r[6],
             "pressure_bar": r[7], "low_pressure_bar": r[8], "added": r[9], "retired": r[10],
             "traceability": json.loads(r[11])}
            for r in self.conn.execute(sql + " ORDER BY id")
        ]

    def calibrations(self, device: str | None = None, start: str = "", end: str = "9999") -> list[dict]:
        """Calibration results (wire form) whose run ended in [start, end), oldest first."""
        sql = "SELECT device, payload FROM calibration WHERE time_end >= ? AND time_end < ?"
        args: list[Any] = [start, end]
        if device:
            sql += " AND device = ?"
            args.append(device)
        return [dict(json.loads(p), device=d) for d, p in self.conn.execute(sql + " ORDER BY time_end", args)]

    def targets(self, start: str = "", end: str = "9999") -> list[dict]:
        return [
            dict(json.loads(p), device=d)
            for d, p in self.conn.execute(
                "SELECT device, payload FROM target WHERE time >= ? AND time < ? ORDER BY time", (start, end)
            )
        ]

    def minutes_after(self, seq: int, limit: int = 200) -> list[dict]:
        """Minute records stored after `seq` (for `tail`), oldest first."""
        return [
            {"seq": r[0], "device": r[1], "time": r[2], "stream": r[3], "flag": r[4], "reasons": json.loads(r[5]),
             "species": json.loads(r[6])}
            for r in self.conn.execute(
                "SELECT seq, device, time, stream, flag, reasons, species FROM minute WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit))
        ]

    def event_rows(self, limit: int = 50) -> list[dict]:
        rows = self.conn.execute(
            "SELECT seq, time, kind, severity, device, message, data FROM event ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {"seq": r[0], "time": r[1], "kind": r[2], "severity": r[3], "device": r[4], "message": r[5],
             "data": json.loads(r[6])}
            for r in rows
        ]

    def store_id(self) -> str | None:
        """This database's identity (32 hex digits); None on a database not yet migrated to it."""
        try:
            row = self.conn.execute("SELECT store FROM identity WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
            return None
        return row[0] if row else None

    def outbox_after(self, seq: int, limit: int, as_bytes: bool = False) -> list[tuple[int, str, Any]]:
        """Outbox rows (seq, kind, payload JSON text) after `seq`, in seq order: the forwarder's
        reads, the payload left as stored so that batches splice it without decoding. With
        `as_bytes` the payload comes as its UTF-8 bytes, what a batch is made of (no decoding)."""
        return self.conn.execute(
            f"SELECT seq, kind, {_PAYLOAD[as_bytes]} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit)).fetchall()

    def outbox_between(self, after: int, upto: int, limit: int, as_bytes: bool = False) -> list[tuple[int, str, Any]]:
        """Outbox rows with after < seq <= upto, in seq order (as `outbox_after`)."""
        return self.conn.execute(
            f"SELECT seq, kind, {_PAYLOAD[as_bytes]} FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, upto, limit)).fetchall()

    def outbox_top_seq(self) -> int:
        """The highest seq in the outbox (0 when it is empty)."""
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])

    def outbox_empty(self) -> bool:
        return self.conn.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is None

    def last_seq(self) -> int:
        """The last seq ever given (records acknowledged or set aside since included)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def set_aside_rows(self, seqs: Iterable[int] | None = None, with_payload: bool = False) -> list[dict]:
        """Set-aside records, oldest seq first (only `seqs` when given): seq, kind, created,
        set_aside (when), reason, bytes, and with `with_payload` the record itself (`record`)."""
        try:
            rows = self.conn.execute(
                "SELECT seq, kind, created, set_aside, reason, length(CAST(payload AS BLOB)),"
                f" {'payload' if with_payload else 'NULL'} FROM set_aside ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
            return []
        wanted = None if seqs is None else {int(s) for s in seqs}
        return [
            {"seq": r[0], "kind": r[1], "created": r[2], "set_aside": r[3], "reason": r[4], "bytes": r[5]}
            | ({"record": json.loads(r[6])} if with_payload else {})
            for r in rows if wanted is None or r[0] in wanted
        ]

    def record_identities(self) -> dict[str, list[dict[str, Any]]]:
        """Every record this database holds, per kind (RECORD_KINDS), in seq order: its seq and the
        fields that identify it (`station-agent records`). A kind whose table the writer has not
        made yet is empty."""
        out: dict[str, list[dict[str, Any]]] = {}
        for kind, (table, fields) in _IDENTITY.items():
            try:
                rows = self.conn.execute(f"SELECT seq, {', '.join(fields)} FROM {table} ORDER BY seq").fetchall()
            except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
                rows = []
            out[kind] = [dict(zip(("seq", *fields), r)) for r in rows]
        return out

    def outbox_seqs(self) -> dict[str, list[int]]:
        """The outbox's seqs (records central has not acknowledged) per record kind, in seq order.
        Target results travel as kind "calibration": their record_type tells them apart."""
        out: dict[str, list[int]] = {kind: [] for kind in RECORD_KINDS}
        try:
            rows = self.conn.execute(
                "SELECT seq, CASE WHEN kind = 'calibration' AND json_extract(payload, '$.record_type') = 'target'"
                " THEN 'target' ELSE kind END FROM outbox ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
            rows = []
        for seq, kind in rows:
            out.setdefault(kind, []).append(seq)
        return out

    def minute_count(self, start: datetime, end: datetime) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM minute WHERE time >= ? AND time < ?",
                                     (iso_utc(start), iso_utc(end))).fetchone()[0])

    def last_minute_times(self) -> dict[str, str]:
        """Each device's latest stored minute (its start time)."""
        return dict(self.conn.execute("SELECT device, MAX(time) FROM minute GROUP BY device").fetchall())

    def raw_devices(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT device FROM raw")]

    def outbox_pending(self, after_seq: int = 0, limit: int = 1000) -> list[tuple[int, str, dict]]:
        rows = self.conn.execute(
            "SELECT seq, kind, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def outbox_stats(self) -> dict[str, Any]:
        """The backlog (outbox rows) and when the oldest of them was stored: the first in seq
        order, as seqs are given in the order records are stored. One statement, one snapshot;
        two lookups, no scan (`outbox_count`)."""
        try:
            count, oldest = self.conn.execute(
                "SELECT (SELECT n FROM outbox_count), (SELECT created FROM outbox ORDER BY seq LIMIT 1)"
            ).fetchone()
        except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
            count, oldest = self.conn.execute(
                "SELECT COUNT(*), (SELECT created FROM outbox ORDER BY seq LIMIT 1) FROM outbox").fetchone()
        return {"backlog": int(count), "oldest_unacked": oldest}

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("raw", "minute", "event", "outbox", "set_aside"):
            try:
                out[table] = int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            except sqlite3.OperationalError:  # set_aside, on a database not yet migrated to it
                out[table] = 0
        return out

    def last_minute(self) -> dict | None:
        row = self.conn.execute("SELECT MAX(time) FROM minute").fetchone()
        if not row or row[0] is None:
            return None
        start = row[0]
        rows = list(
            self.conn.execute(
                "SELECT device, stream, flag, species FROM minute WHERE time = ? ORDER BY device", (start,)
            )
        )
        return {
            "time": start,
            "records": [
                {"device": r[0], "stream": r[1], "flag": r[2], "species": json.loads(r[3])} for r in rows
            ],
        }


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (autocommit connection). The
    outbox rows the transaction added or removed are counted in `outbox_count` before it commits."""

    def __init__(self, store: StationStore) -> None:
        self.store = store
        self.conn = store.conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.store._outbox_delta = 0

    def __exit__(self, exc_type, exc, tb) -> None:
        delta, self.store._outbox_delta = self.store._outbox_delta, 0
        if exc_type is not None:
            self.conn.execute("ROLLBACK")
            return
        try:
            if delta:
                self.conn.execute("UPDATE outbox_count SET n = n + ?", (delta,))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
