"""The station's record of pushed configs, in a folder beside its config file: each accepted
version's text (`v<version>.toml`), one JSON line per step (`history.jsonl`), the active version
(`active.json`) and the technician's pin (`pinned.json`). Files, not the database: the config is
read before the store opens, and a technician reads them without the daemon."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ghgnet.timeutil import iso_utc

HISTORY = "history.jsonl"
ACTIVE = "active.json"
PINNED = "pinned.json"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a power cut leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ConfigHistory:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def version_path(self, version: int) -> Path:
        return self.folder / f"v{version}.toml"

    def keep(self, version: int, text: str) -> None:
        self._ensure()
        write_atomically(self.version_path(version), text.encode())

    def text_of(self, version: int) -> str:
        return self.version_path(version).read_text()

    def note(self, now: datetime, version: int, step: str, detail: str = "", **extra: Any) -> dict[str, Any]:
        """Append one step (verified, refused_*, applied, healthy, failed_health, rolled_back, pinned, ...)."""
        self._ensure()
        line = {"time": iso_utc(now), "version": version, "step": step, "detail": detail, **extra}
        with open(self.folder / HISTORY, "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return line

    def steps(self) -> list[dict[str, Any]]:
        path = self.folder / HISTORY
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def highest_seen(self) -> int:
        """The highest version whose signature checked out (step `verified`), whatever became of
        it after: anything at or below it is a replay."""
        return max((s["version"] for s in self.steps() if s["step"] == "verified"), default=0)

    def unchecked(self) -> tuple[int, int] | None:
        """(version, previous) when the active version was applied and its health check never
        ended (the daemon stopped or died during it): the check starts again."""
        active = self.active()
        ends = {"applied", "healthy", "failed_health", "failed_start", "rolled_back", "pinned"}
        last = [s for s in self.steps() if s["version"] == active and s["step"] in ends]
        if last and last[-1]["step"] == "applied" and "previous" in last[-1]:
            return active, last[-1]["previous"]
        return None

    def active(self) -> int:
        """The version the config file holds (0: the one installed locally, never pushed)."""
        path = self.folder / ACTIVE
        return json.loads(path.read_text())["version"] if path.exists() else 0

    def set_active(self, version: int) -> None:
        self._ensure()
        write_atomically(self.folder / ACTIVE, json.dumps({"version": version}).encode())

    def pinned(self) -> int | None:
        path = self.folder / PINNED
        return json.loads(path.read_text())["version"] if path.exists() else None

    def pin(self, version: int | None) -> None:
        """Pin `version` (pushes are refused while pinned), or unpin with None."""
        self._ensure()
        path = self.folder / PINNED
        if version is None:
            path.unlink(missing_ok=True)
        else:
            write_atomically(path, json.dumps({"version": version}).encode())
