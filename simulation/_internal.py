"""Private helpers shared inside :mod:`simulation`: array types and UTC day boundaries."""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_MS: Final = 86_400_000


def day_ms(day: dt.date) -> int:
    """Milliseconds since the epoch at 00:00 UTC of ``day``."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
