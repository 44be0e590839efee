"""Normalisers: the registry of ways to map a raw metric value onto 0..1 for scoring."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bidhub.domain.text import N_, Text

NEUTRAL = 0.5
# A prepared normaliser: the round has been looked at once; value in, 0..1 out.
Scale = Callable[[float], float]


@dataclass(frozen=True)
class NormaliserParam:
    """A setting a normaliser takes in a [[factors]] entry; `default` None means required.

    `description` completes "the normaliser needs ..." (shown when the setting is missing).
    """

    name: str
    description: Text
    default: float | None = None
    must_be_positive: bool = False


@dataclass(frozen=True)
class Normaliser:
    """A named way to map a raw metric value onto 0..1 (1 is the most of the metric).

    `prepare(population, params)` receives the eligible bids' known values sorted ascending
    and the factor's params (defaults filled in) and returns the scale for one value.
    """

    name: str
    label: str
    description: str
    prepare: Callable[[Sequence[float], Mapping[str, float]], Scale]
    params: tuple[NormaliserParam, ...] = ()
    uses_population: bool = False

    def function(self, value: float, population: Sequence[float],
                 params: Mapping[str, float]) -> float:
        """One value normalised against `population` (any order); for tests and previews."""
        filled = {param.name: param.default for param in self.params
                  if param.default is not None} | dict(params)
        return self.prepare(sorted(population), filled)(value)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _minmax(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    if not population or population[0] == population[-1]:
        return lambda value: NEUTRAL
    low, high = population[0], population[-1]
    span = high - low
    if math.isfinite(span):
        return lambda value: _clip((value - low) / span)
    # Values further apart than the largest float (1e308 and -1e308): the spread would be
    # infinite and every result 0. Halved, no difference overflows, and halving values this
    # large loses nothing that shows in 6 decimals. Ordinary values never come here.
    half_low, half_span = low / 2, high / 2 - low / 2
    return lambda value: _clip((value / 2 - half_low) / half_span)


def _cap(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    cap = params["cap"]
    return lambda value: _clip(value / cap)


def _logistic(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    midpoint, steepness = params["midpoint"], params["steepness"]

    def scale(value: float) -> float:
        exponent = -steepness * (value - midpoint)
        if exponent > 700:  # math.exp would overflow; the curve is 0 to every printed digit
            return 0.0
        return 1.0 / (1.0 + math.exp(exponent))

    return scale


def _rank(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    if len(population) <= 1:
        return lambda value: NEUTRAL
    last_place = len(population) - 1

    def scale(value: float) -> float:
        below = bisect_left(population, value)
        equal = bisect_right(population, value) - below
        # Mid-rank: equal values share the average of their places; a value that is not in
        # the population (an ineligible bid) sits half a place above the values below it.
        return _clip((below + (equal - 1) / 2) / last_place)

    return scale


NORMALISERS: dict[str, Normaliser] = {
    normaliser.name: normaliser for normaliser in (
        Normaliser(
            "minmax", "Min-max over the round",
            "(value − lowest) / (highest − lowest) over the round's eligible bids, clipped to "
            "0..1; 0.5 for everyone when all values are equal",
            _minmax, uses_population=True),
        Normaliser(
            "cap", "Share of a cap",
            "value / `cap`, clipped to 0..1: reaching the cap counts fully",
            _cap, params=(NormaliserParam("cap", N_("cap, the value that counts fully (above 0)"),
                                          must_be_positive=True),)),
        Normaliser(
            "logistic", "S-curve",
            "1 / (1 + e^(−`steepness` × (value − `midpoint`))): 0.5 at the midpoint, "
            "diminishing returns far from it",
            _logistic,
            params=(NormaliserParam("midpoint", N_("a midpoint, the value that scores 0.5")),
                    NormaliserParam("steepness",
                                    N_("steepness, how sharply the curve rises (above 0)"),
                                    default=1.0, must_be_positive=True))),
        Normaliser(
            "rank", "Percentile rank in the round",
            "mid-rank percentile among the round's eligible bids: 0 lowest, 1 highest, equal "
            "values share the average of their places; 0.5 when there is a single value",
            _rank, uses_population=True),
    )
}
