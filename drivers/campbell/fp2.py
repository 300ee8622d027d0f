"""Campbell Scientific FP2: the loggers' 2-byte final-storage float.

Layout (Campbell Scientific, "Campbell Scientific Data File Formats" (J. Trauntvein), FP2; as
implemented by csi_fs2.pro of the Campbell IDL readers and by TOB1 readers that map FP2 to a
big-endian unsigned 16-bit word): stored most significant byte first; bit 15 the sign, bits 14-13
the negative decimal exponent E (0..3), bits 12-0 the mantissa M (0..8191); value = (-1)^s M 10^-E.
With E = 0, M = 8191 is +/-infinity and M = 8190 is NaN. The loggers store |value| <= 7999, with
the most decimals that fit (7.999, 79.99, 799.9, 7999).
Note: the example in csi_fs2.pro's header (bytes 37, 107 -> 13.87) disagrees with its own code
(-> 138.7: exponent bits 01, mantissa 0x56B = 1387); we follow the bit layout, which gives 138.7.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def decode_fp2(raw: NDArray[np.uint16]) -> NDArray[np.float64]:
    """Values of FP2 words (already read as big-endian unsigned 16-bit integers)."""
    raw = np.asarray(raw, dtype=np.uint16)
    sign = np.where(raw & 0x8000, -1.0, 1.0)
    exponent = (raw >> 13) & 0x3
    mantissa = (raw & 0x1FFF).astype(np.float64)
    out = sign * mantissa / 10.0 ** exponent
    special = exponent == 0
    out = np.where(special & (mantissa == 8191), sign * np.inf, out)
    return np.where(special & (mantissa == 8190), np.nan, out)


def encode_fp2(values: NDArray[np.float64]) -> NDArray[np.uint16]:
    """FP2 words for values (the most decimals that keep |M| <= 7999; beyond: +/-infinity;
    NaN: the NaN word)."""
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    exponent = np.select([a < 7.9995, a < 79.995, a < 799.95], [3, 2, 1], 0)
    mantissa = np.rint(a * 10.0 ** exponent)
    over = ~np.isfinite(a) | (mantissa > 7999)
    mantissa = np.where(over, 8191, mantissa)
    exponent = np.where(over, 0, exponent)
    nan = np.isnan(v)
    mantissa = np.where(nan, 8190, mantissa)
    exponent = np.where(nan, 0, exponent)
    sign = np.where(np.signbit(v) & ~nan, 0x8000, 0)
    return (sign | (exponent.astype(np.int64) << 13) | mantissa.astype(np.int64)).astype(np.uint16)
