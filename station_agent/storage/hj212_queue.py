"""The HJ 212 uplinks' packets in the station database, kept until the platform acknowledges them.

The same discipline as the outbox: the writer thread makes packets and advances the uplink's
cursor (how far its periods are packed) in one transaction, so a crash leaves either both or
neither: no period is lost and none is packed twice. A packet is deleted only when the platform's
9014 with its QN arrives (handed to the writer). Each packet keeps its QN from the start, so a
resend, also after a restart, is the same packet to the platform. The frame is built at send time
from the stored CP and the uplink's current MN, PW, ST and edition.

The uplink's thread reads through a read-only StationStore (`pending`, `link_settings`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ghgnet.timeutil import iso_utc
from station_agent.storage.store import StationStore


@dataclass(frozen=True, slots=True)
class QueuedPacket:
    """One packet as stored: its QN, CN, the data's time (UTC ISO), split numbers and CP text."""

    qn: str
    cn: str
    data_time: str
    pnum: int
    pno: int
    cp: str
    id: int = 0


class Hj212Queue:
    def __init__(self, store: StationStore) -> None:
        self.store = store
        self.conn = store.conn

    # -- the writer thread ------------------------------------------------------------------
    def enqueue(self, uplink: str, cn: str, until: datetime, packets: Sequence[QueuedPacket], now: datetime) -> None:
        """Store `packets` and move the uplink's `cn` cursor to `until`, in one transaction; the
        last packet's QN becomes the uplink's last QN (QNs only grow)."""
        stamp = iso_utc(now)
        with self.store._tx():
            self.conn.executemany(
                "INSERT INTO hj212_packet (uplink, qn, cn, data_time, pnum, pno, cp, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(uplink, p.qn, p.cn, p.data_time, p.pnum, p.pno, p.cp, stamp) for p in packets])
            self.conn.execute(
                "INSERT INTO hj212_cursor (uplink, cn, until) VALUES (?, ?, ?)"
                " ON CONFLICT (uplink, cn) DO UPDATE SET until = excluded.until",
                (uplink, cn, iso_utc(until)))
            if packets:
                self.conn.execute(
                    "INSERT INTO hj212_link (uplink, last_qn) VALUES (?, ?)"
                    " ON CONFLICT (uplink) DO UPDATE SET last_qn = max(last_qn, excluded.last_qn)",
                    (uplink, max(p.qn for p in packets)))

    def acknowledge(self, uplink: str, qns: Iterable[str]) -> int:
        """The platform holds these packets: forget them. Returns how many were deleted."""
        qns = list(qns)
        with self.store._tx():
            return sum(self.conn.execute("DELETE FROM hj212_packet WHERE uplink = ? AND qn = ?", (uplink, qn)).rowcount
                       for qn in qns)

    def put_link_settings(self, uplink: str, overtime_s: float, recount: int) -> None:
        """OverTime and ReCount as the platform set them (CN 1000): they outlive a restart."""
        with self.store._tx():
            self.conn.execute(
                "INSERT INTO hj212_link (uplink, last_qn, overtime_s, recount) VALUES (?, '', ?, ?)"
                " ON CONFLICT (uplink) DO UPDATE SET overtime_s = excluded.overtime_s, recount = excluded.recount",
                (uplink, overtime_s, recount))

    # -- reads (any connection) -------------------------------------------------------------
    def cursor(self, uplink: str, cn: str) -> str | None:
        row = self.conn.execute("SELECT until FROM hj212_cursor WHERE uplink = ? AND cn = ?", (uplink, cn)).fetchone()
        return row[0] if row else None

    def last_qn(self, uplink: str) -> str:
        row = self.conn.execute("SELECT last_qn FROM hj212_link WHERE uplink = ?", (uplink,)).fetchone()
        return row[0] if row else ""

    def link_settings(self, uplink: str) -> tuple[float, int] | None:
        """(OverTime s, ReCount) a platform set, or None."""
        try:
            row = self.conn.execute("SELECT overtime_s, recount FROM hj212_link WHERE uplink = ?", (uplink,)).fetchone()
        except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
            return None
        return (float(row[0]), int(row[1])) if row and row[0] is not None else None

    def pending(self, uplink: str, after_id: int = 0, limit: int = 100) -> list[QueuedPacket]:
        """Packets not yet acknowledged, oldest first, after `after_id`."""
        try:
            rows = self.conn.execute(
                "SELECT id, qn, cn, data_time, pnum, pno, cp FROM hj212_packet WHERE uplink = ? AND id > ?"
                " ORDER BY id LIMIT ?", (uplink, after_id, limit)).fetchall()
        except sqlite3.OperationalError:  # read-only, on a database the writer has not migrated yet
            return []
        return [QueuedPacket(id=r[0], qn=r[1], cn=r[2], data_time=r[3], pnum=r[4], pno=r[5], cp=r[6]) for r in rows]

    def backlog(self, uplink: str) -> int:
        try:
            return int(self.conn.execute("SELECT COUNT(*) FROM hj212_packet WHERE uplink = ?", (uplink,)).fetchone()[0])
        except sqlite3.OperationalError:
            return 0
