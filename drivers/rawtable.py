"""A table of raw high-rate records read from a data file (Campbell TOA5/TOB1, LI-COR .ghg): column
names, units and values as numpy arrays, and UTC timestamps. What the flux processing is fed from
a site's history, and what the TOA5 writer exports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class RawTable:
    """Columns by name (float arrays; text columns as str arrays), their units (same order as
    `names`), timestamps as numpy datetime64[ns] in UTC, and the file's header fields."""

    names: list[str]
    units: list[str]
    columns: dict[str, NDArray]
    time: NDArray[np.datetime64]
    header: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.units):
            raise ValueError(f"raw table: {len(self.names)} names but {len(self.units)} units")
        missing = [n for n in self.names if n not in self.columns]
        if missing:
            raise ValueError(f"raw table: no values for column(s) {', '.join(missing)}")
        for name in self.names:
            if len(self.columns[name]) != len(self.time):
                raise ValueError(f"raw table: column {name} has {len(self.columns[name])} values, "
                                 f"the table {len(self.time)} timestamps")

    def __len__(self) -> int:
        return len(self.time)

    def column(self, name: str) -> NDArray:
        """The values of one column; an error that lists the columns when it is not there."""
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; the table has: {', '.join(self.names)}") from None
