"""Medians and spreads: every figure of the report is a median with the range around it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, interpolated between the two nearest samples."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class Figure:
    """A measured figure: its median and its spread.

    Over rounds (`of_rounds`) the spread is the lowest and highest round;
    over the samples of one loop (`of_samples`) it is the 10th and 90th
    percentiles.
    """

    median: float
    low: float
    high: float
    n: int
    spread: str  # "min-max of rounds" or "p10-p90"
    raw: tuple[float, ...] = ()

    @classmethod
    def of_rounds(cls, values: list[float]) -> Figure:
        return cls(statistics.median(values), min(values), max(values), len(values), "min-max of rounds", tuple(values))

    @classmethod
    def of_samples(cls, values: list[float]) -> Figure:
        return cls(statistics.median(values), quantile(values, 0.1), quantile(values, 0.9), len(values), "p10-p90")

    def scaled(self, factor: float) -> Figure:
        """The same figure in another unit (e.g. seconds to microseconds)."""
        return Figure(
            self.median * factor, self.low * factor, self.high * factor, self.n, self.spread,
            tuple(value * factor for value in self.raw),
        )

    def as_dict(self) -> dict:
        return {
            "median": self.median, "low": self.low, "high": self.high, "n": self.n, "spread": self.spread,
            "raw": list(self.raw),
        }


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Round-by-round ratios of two series measured side by side (same round, same noise)."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]
