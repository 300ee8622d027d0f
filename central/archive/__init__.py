"""The stations' raw readings (L0) at central: taken from `ghg/v1/<station>/raw`, kept compressed as
the station sent them (table raw_chunk, central/store/raw_chunks.py) for `[archive]
raw_retention_days`, and read back as the rows the station's own raw table holds.

- `reader.raw_readings(store, station, start, end, device=None)`: the contract for reprocessing;
- `archiver.RawArchiver`: the receiver's thread that checks, stores and acknowledges chunks;
- `cli`: `central-receiver archive status [--json]`.
"""

from __future__ import annotations

from .reader import archive_status, raw_readings

__all__ = ["archive_status", "raw_readings"]
