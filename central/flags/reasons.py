"""Manual flag letters and reason codes.

Letters (ICOS practice, as the data levels use them): O valid after manual QC, K invalid after
manual QC; on the minutes under a flagged hour they show as R (under O) and H (under K)
(central/aggregation/hourly_stats.py, central/export.py).

Reason codes are ghgnet's own short list (ICOS keeps a manual flag with the reason it was set; the
codes are not a published standard): an operator picks one and writes the why in words.
"""

from __future__ import annotations

FLAG_LETTERS = {"K": "invalid after manual QC", "O": "valid after manual QC"}

REASON_CODES: dict[str, str] = {
    "contamination": "local contamination (a nearby source, exhaust, fire)",
    "instrument": "analyzer malfunction or out of specification",
    "calibration": "calibration problem (standards, drift, failed fit)",
    "inlet": "inlet or sampling line problem (leak, blocked filter, condensation)",
    "maintenance": "maintenance or a site visit disturbed the measurement",
    "validated": "checked by an operator and found valid",
    "other": "anything else (say what in the reason)",
}


def check_letter(flag: str) -> str:
    if flag not in FLAG_LETTERS:
        raise ValueError(f"a manual flag is K or O ({'; '.join(f'{k}: {v}' for k, v in FLAG_LETTERS.items())}), "
                         f"not {flag!r}")
    return flag


def check_reason_code(code: str) -> str:
    if code not in REASON_CODES:
        raise ValueError(f"unknown reason code {code!r}; known: {', '.join(REASON_CODES)}")
    return code
