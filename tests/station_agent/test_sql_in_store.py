"""Every SQL statement of the station lives in station_agent/storage/ (DESIGN.md section 2): read
from the source with ast, the rest of station_agent/ holds no SQL text, runs no statement on a
connection, and does not import sqlite3."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "station_agent"
STORAGE = STATION / "storage"

# (module path, why) for a module outside storage/ that still holds SQL. Empty: a new one fails.
KNOWN_EXCEPTIONS: dict[str, str] = {}

SQL = re.compile(
    r"\b(SELECT\b[\s\S]*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX|VIEW|TRIGGER)|ALTER\s+TABLE|DROP\s+(TABLE|INDEX)|PRAGMA\s+\w+"
    r"|BEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)|VACUUM\b)",
)
STATEMENT_CALLS = {"execute", "executemany", "executescript"}


def _outside_storage() -> list[Path]:
    return [p for p in sorted(STATION.rglob("*.py")) if STORAGE not in p.parents]


def _sql_in(path: Path) -> list[str]:
    """What in this module looks like SQL: text, a statement call, or sqlite3 itself (line: what)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{node.lineno}: SQL text {node.value.strip()[:60]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in STATEMENT_CALLS:
            found.append(f"{node.lineno}: .{node.func.attr}(...)")
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlite3" for a in node.names):
            found.append(f"{node.lineno}: import sqlite3")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            found.append(f"{node.lineno}: from sqlite3 import ...")
    return found


def test_the_pattern_finds_sql_and_leaves_prose_alone():
    assert SQL.search("SELECT seq, kind FROM outbox WHERE seq > ?")
    assert SQL.search('INSERT INTO raw (device) VALUES (?)')
    assert SQL.search("UPDATE minute SET flag = ? WHERE seq = ?")
    assert SQL.search("PRAGMA user_version")
    assert not SQL.search("select the inlet from the sequence and update the state")
    assert not SQL.search("the writer deletes from its queue")


def test_no_sql_outside_storage():
    breaches = {}
    for path in _outside_storage():
        module = str(path.relative_to(ROOT))
        found = _sql_in(path)
        if found and module not in KNOWN_EXCEPTIONS:
            breaches[module] = found
    assert breaches == {}, f"SQL belongs in station_agent/storage/ (a named store method): {breaches}"


def test_known_exceptions_still_hold_sql():
    # an exception that no longer holds SQL leaves the list, so the list never hides a new one
    stale = [m for m in KNOWN_EXCEPTIONS if not _sql_in(ROOT / m)]
    assert stale == []


def test_the_store_holds_sql():
    # the check above reads the right tree: the store's own statements are found
    assert any("SQL text" in line for line in _sql_in(STORAGE / "store.py"))
