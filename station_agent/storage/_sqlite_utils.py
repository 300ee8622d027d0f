"""sqlite-utils without pandas.

sqlite-utils imports pandas, when it is installed, only to recognise pandas types in inserted rows,
which the station never inserts. pandas is installed beside ghgnet (xarray needs it for central's
inversion), and importing it costs the daemon about 60 MB of RSS, most of its memory budget. So
sqlite-utils is imported here with pandas hidden: it then takes the same path as on a machine
without pandas. Other code in the process can still import pandas afterwards.
"""

import sys

_hidden = "pandas" not in sys.modules
if _hidden:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` raise ImportError
try:
    import sqlite_utils  # noqa: E402
finally:
    if _hidden:
        del sys.modules["pandas"]

__all__ = ["sqlite_utils"]
