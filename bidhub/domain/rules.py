"""Rule files: strict parsing and validation of a scoring policy written in TOML.

`parse_rules(text)` returns a frozen RuleSet or raises RuleError listing every problem at
once (key path, line, plain reason). Nothing in a rule file is executed: metrics, normalisers
and tie-breaks are chosen by name from registries. Every key and default is documented in
rules/README.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from bidhub.domain.scoring import NORMALISERS

ALLOCATION_METHODS: dict[str, str] = {
    "greedy": "listings in ascending listing id order (the order they were released); each "
              "goes to its best-ranked eligible bid whose rep still has room and cap",
    "optimal": "as many listings as possible are awarded; among those allocations the total "
               "score is highest, then the tie-break chain is followed as far as possible",
}
TIE_BREAKS: dict[str, str] = {
    "fewest_accounts_held": "the bidder holding fewer accounts ranks first",
    "earliest_submission": "the bid submitted first ranks first",
    "lottery": "a seeded lottery; the seed is published with the results",
}
DEFAULT_TIE_BREAK = ("fewest_accounts_held", "earliest_submission")
DEFAULT_NORMALISER = "minmax"
# Far beyond any sensible policy; keeps exact integer arithmetic in the optimal allocation.
MAX_ABS_WEIGHT = 1000.0


@dataclass(frozen=True)
class RuleProblem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}{where}: {self.message}"


class RuleError(Exception):
    """A rule text that cannot be used, with every problem found in it (one per line)."""

    def __init__(self, problems: Iterable[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class Eligibility:
    capacity_max: int = 40
    capacity_target: int = 30
    min_tenure_months: float = 0
    max_open_incidents: int | None = None  # None: no limit
    same_branch_only: bool = False
    cooldown_months: float = 0
    exclude_on_leave: bool = True


@dataclass(frozen=True)
class Factor:
    """weight x normaliser(metric); `params` holds the normaliser's settings, defaults filled."""

    metric: str
    weight: float
    normaliser: str = DEFAULT_NORMALISER
    params: dict[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Caps:
    max_awards_per_rep_per_round: int | None = None  # None: no cap beyond capacity


@dataclass(frozen=True)
class RuleSet:
    name: str
    description: str
    eligibility: Eligibility
    factors: tuple[Factor, ...]
    caps: Caps
    tie_break: tuple[str, ...]
    allocation: str  # the allocation method: "greedy" or "optimal"
    min_bids_per_listing: int
    text: str
    version_hash: str
    # Valid but probably unintended settings (a reward for incidents, say); never block.
    warnings: tuple[RuleProblem, ...] = ()

    @property
    def allocation_method(self) -> str:
        return self.allocation


# --- canonical form ----------------------------------------------------------------------


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(data).encode("utf-8")).hexdigest()


def canonical_hash(text: str) -> str:
    """SHA-256 hex of the parsed TOML as sorted compact JSON: comments and layout do not count.

    Raises RuleError (with the line) when the text is not TOML.
    """
    return _hash(_load(text))


def _load(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(match.group(1)) if match else None
        reason = message[:match.start()].strip() if match else message
        where = f" at column {match.group(2)}" if match else ""
        raise RuleError([RuleProblem("(syntax)", line, f"not valid TOML: {reason}{where}")]
                        ) from error


# --- reading values while collecting problems -------------------------------------------

_ARRAY_HEADER = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_ASSIGNMENT = re.compile(r"""^((?:[\w-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[\w-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _line_index(text: str) -> dict[str, int]:
    """Key path -> the first line writing it: `eligibility`, `factors[1].weight`, `name`.

    A line-based scan, good for the way rule files are written (one key per line); keys
    inside multi-line strings could mislead it, which only costs a line number.
    """
    index: dict[str, int] = {}
    table = ""
    arrays: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if match := _ARRAY_HEADER.match(line):
            name = _dotted(match.group(1))
            position = arrays.get(name, 0)
            arrays[name] = position + 1
            table = f"{name}[{position}]"
            index.setdefault(name, number)
            index.setdefault(table, number)
        elif match := _TABLE_HEADER.match(line):
            table = _dotted(match.group(1))
            index.setdefault(table, number)
        elif match := _ASSIGNMENT.match(line):
            key = _dotted(match.group(1))
            index.setdefault(f"{table}.{key}" if table else key, number)
    return index


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date or time"
    return type(value).__name__


def _known(name: str, known: Iterable[str]) -> str:
    """ "(did you mean 'x'? known: a, b)" for an unknown name."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"({hint}known: {', '.join(known) if known else 'none'})"


class _Checker:
    """Reads values out of the parsed TOML, noting every problem instead of stopping."""

    def __init__(self, text: str) -> None:
        self.lines = _line_index(text)
        self.problems: list[RuleProblem] = []
        self.warnings: list[RuleProblem] = []

    def line_of(self, path: str) -> int | None:
        """The line of `path`, else of the nearest enclosing table or array entry."""
        while path:
            if path in self.lines:
                return self.lines[path]
            if path.endswith("]"):
                path = path[:path.rindex("[")]
            elif "." in path:
                path = path[:path.rindex(".")]
            else:
                return None
        return None

    def problem(self, path: str, message: str) -> None:
        self.problems.append(RuleProblem(path, self.line_of(path), message))

    def warning(self, path: str, message: str) -> None:
        self.warnings.append(RuleProblem(path, self.line_of(path), message))

    def table(self, data: dict[str, Any], name: str, known: Iterable[str]) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(name, f"expected a table [{name}], got {type_name(value)}")
            return {}
        self.unknown_keys(value, known, name)
        return value

    def unknown_keys(self, table: dict[str, Any], known: Iterable[str], prefix: str) -> None:
        known = sorted(known)
        for key in table:
            if key not in known:
                self.problem(f"{prefix}.{key}" if prefix else key,
                             f"unknown key '{key}' {_known(key, known)}")

    def number(self, table: dict[str, Any], key: str, prefix: str, default: Any, *,
               minimum: float | None = None, above: float | None = None,
               whole: bool = False) -> Any:
        """The number at `key`, `default` when absent or wrong (the problem is noted)."""
        if key not in table:
            return default
        value = table[key]
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "a whole number" if whole else "a number"
            self.problem(path, f"expected {kind}, got {type_name(value)}")
            return default
        if not math.isfinite(value):
            self.problem(path, f"expected a finite number, got {value}")
            return default
        if whole and not isinstance(value, int):
            self.problem(path, f"expected a whole number, got {value}")
            return default
        if minimum is not None and value < minimum:
            self.problem(path, f"must be at least {minimum:g}, got {value}")
            return default
        if above is not None and value <= above:
            self.problem(path, f"must be above {above:g}, got {value}")
            return default
        return value

    def boolean(self, table: dict[str, Any], key: str, prefix: str, default: bool) -> bool:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, bool):
            self.problem(f"{prefix}.{key}", f"expected true or false, got {type_name(value)}")
            return default
        return value

    def string(self, table: dict[str, Any], key: str, prefix: str,
               default: str | None) -> str | None:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, str):
            self.problem(f"{prefix}.{key}" if prefix else key,
                         f"expected a string, got {type_name(value)}")
            return None
        return value


# --- the sections -----------------------------------------------------------------------

TOP_LEVEL_KEYS = ("name", "description", "tie_break", "eligibility", "factors", "caps",
                  "allocation")
ELIGIBILITY_KEYS = ("capacity_max", "capacity_target", "min_tenure_months",
                    "max_open_incidents", "same_branch_only", "cooldown_months",
                    "exclude_on_leave")
CAPS_KEYS = ("max_awards_per_rep_per_round",)
ALLOCATION_KEYS = ("method", "min_bids_per_listing")
FACTOR_BASE_KEYS = ("metric", "weight", "normaliser")


def _factor_keys() -> list[str]:
    params = {param.name for normaliser in NORMALISERS.values() for param in normaliser.params}
    return [*FACTOR_BASE_KEYS, *sorted(params)]


def _eligibility(check: _Checker, data: dict[str, Any]) -> Eligibility:
    section = check.table(data, "eligibility", ELIGIBILITY_KEYS)
    prefix = "eligibility"
    defaults = Eligibility()
    capacity_max = check.number(section, "capacity_max", prefix, None, minimum=1, whole=True)
    capacity_target = check.number(section, "capacity_target", prefix, None, minimum=0,
                                   whole=True)
    written_ok = all(key not in section or value is not None for key, value in
                     (("capacity_max", capacity_max), ("capacity_target", capacity_target)))
    capacity_max = defaults.capacity_max if capacity_max is None else capacity_max
    capacity_target = defaults.capacity_target if capacity_target is None else capacity_target
    if written_ok and capacity_max < capacity_target:
        path = "capacity_max" if "capacity_max" in section else "capacity_target"
        check.problem(f"{prefix}.{path}", f"capacity_max ({capacity_max}) is below "
                                          f"capacity_target ({capacity_target})")
    return Eligibility(
        capacity_max=capacity_max,
        capacity_target=capacity_target,
        min_tenure_months=check.number(section, "min_tenure_months", prefix,
                                       defaults.min_tenure_months, minimum=0),
        max_open_incidents=check.number(section, "max_open_incidents", prefix,
                                        defaults.max_open_incidents, minimum=0, whole=True),
        same_branch_only=check.boolean(section, "same_branch_only", prefix,
                                       defaults.same_branch_only),
        cooldown_months=check.number(section, "cooldown_months", prefix,
                                     defaults.cooldown_months, minimum=0),
        exclude_on_leave=check.boolean(section, "exclude_on_leave", prefix,
                                       defaults.exclude_on_leave),
    )


def _factor(check: _Checker, raw: dict[str, Any], prefix: str,
            metrics: dict[str, Any]) -> Factor | None:
    """One [[factors]] entry; None when it is too broken to use (problems are noted)."""
    check.unknown_keys(raw, _factor_keys(), prefix)
    usable = True

    metric = check.string(raw, "metric", prefix, None)
    if "metric" not in raw:
        check.problem(f"{prefix}.metric", "missing: name the metric this factor scores")
        usable = False
    elif metric is None:
        usable = False
    elif metric not in metrics:
        check.problem(f"{prefix}.metric", f"unknown metric '{metric}' {_known(metric, metrics)}")
        usable = False

    if "weight" not in raw:
        check.problem(f"{prefix}.weight", "missing: give the factor a weight (negative for a "
                                          "penalty)")
    weight = check.number(raw, "weight", prefix, None)
    if weight is not None and abs(weight) > MAX_ABS_WEIGHT:
        check.problem(f"{prefix}.weight", f"must be between -{MAX_ABS_WEIGHT:g} and "
                                          f"{MAX_ABS_WEIGHT:g}, got {weight}")
        weight = None
    usable = usable and weight is not None

    name = check.string(raw, "normaliser", prefix, DEFAULT_NORMALISER)
    normaliser = NORMALISERS.get(name) if name is not None else None
    if name is not None and normaliser is None:
        check.problem(f"{prefix}.normaliser",
                      f"unknown normaliser '{name}' {_known(name, NORMALISERS)}")
    if normaliser is None:
        return None

    params: dict[str, float] = {}
    takes = {param.name for param in normaliser.params}
    for key in raw:
        if key not in FACTOR_BASE_KEYS and key not in takes and key in _factor_keys():
            check.problem(f"{prefix}.{key}", f"the {normaliser.name} normaliser does not use "
                          f"{key} (it takes: {', '.join(sorted(takes)) or 'nothing'})")
    for param in normaliser.params:
        if param.name not in raw:
            if param.default is None:
                check.problem(f"{prefix}.{param.name}", f"the {normaliser.name} normaliser "
                              f"needs {param.description}")
                usable = False
            else:
                params[param.name] = param.default
            continue
        value = check.number(raw, param.name, prefix, None,
                             above=0 if param.must_be_positive else None)
        if value is None:
            usable = False
        else:
            params[param.name] = float(value)
    if not usable:
        return None
    factor = Factor(metric, float(weight), normaliser.name, params)
    direction = getattr(metrics[metric], "higher_is_better", None)
    if direction is False and factor.weight > 0:
        check.warning(f"{prefix}.weight", f"{metric}: less is better, but the weight "
                      f"{weight:g} is positive, so more {metric} raises the score; use a "
                      "negative weight for a penalty")
    elif direction is True and factor.weight < 0:
        check.warning(f"{prefix}.weight", f"{metric}: more is better, but the weight "
                      f"{weight:g} is negative, so more {metric} lowers the score")
    return factor


def _factors(check: _Checker, data: dict[str, Any]) -> tuple[Factor, ...]:
    from bidhub.domain.metrics import METRICS  # at call time: the registry keeps growing

    raw_factors = data.get("factors", [])
    if not isinstance(raw_factors, list) or not all(isinstance(f, dict) for f in raw_factors):
        check.problem("factors", "expected [[factors]] tables (one per factor), got "
                                 f"{type_name(raw_factors)}")
        return ()
    if not raw_factors:
        check.problem("factors", "missing: at least one [[factors]] entry is needed to rank "
                                 "bids")
        return ()
    factors: list[Factor] = []
    first_use: dict[str, int] = {}
    for index, raw in enumerate(raw_factors):
        factor = _factor(check, raw, f"factors[{index}]", METRICS)
        if factor is None:
            continue
        if factor.metric in first_use:
            check.problem(f"factors[{index}].metric", f"metric '{factor.metric}' is already "
                          f"scored by factors[{first_use[factor.metric]}]; combine them")
        first_use.setdefault(factor.metric, index)
        factors.append(factor)
    if len(factors) == len(raw_factors) and all(factor.weight == 0 for factor in factors):
        check.problem("factors", "all weights are zero, so every bid would score the same")
    return tuple(factors)


def _tie_break(check: _Checker, data: dict[str, Any]) -> tuple[str, ...]:
    if "tie_break" not in data:
        return DEFAULT_TIE_BREAK
    value = data["tie_break"]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        check.problem("tie_break", 'expected a list of names, e.g. ["fewest_accounts_held", '
                                   '"earliest_submission", "lottery"]')
        return DEFAULT_TIE_BREAK
    if not value:
        check.problem("tie_break", f"list at least one tie-break {_known('', TIE_BREAKS)}")
    for item in value:
        if item not in TIE_BREAKS:
            check.problem("tie_break", f"unknown tie-break '{item}' {_known(item, TIE_BREAKS)}")
    for item in sorted({item for item in value if value.count(item) > 1}):
        check.problem("tie_break", f"'{item}' is listed twice; each tie-break may appear once")
    return tuple(value)


def parse_rules(text: str) -> RuleSet:
    """The rule set in `text`, or RuleError listing every problem (key path, line, reason)."""
    data = _load(text)
    check = _Checker(text)
    check.unknown_keys(data, TOP_LEVEL_KEYS, "")
    name = check.string(data, "name", "", "unnamed rules")
    description = check.string(data, "description", "", "")
    eligibility = _eligibility(check, data)
    factors = _factors(check, data)

    caps_section = check.table(data, "caps", CAPS_KEYS)
    caps = Caps(check.number(caps_section, "max_awards_per_rep_per_round", "caps", None,
                             minimum=1, whole=True))

    tie_break = _tie_break(check, data)

    section = check.table(data, "allocation", ALLOCATION_KEYS)
    method = check.string(section, "method", "allocation", "greedy")
    if method is not None and method not in ALLOCATION_METHODS:
        check.problem("allocation.method",
                      f"must be one of {', '.join(ALLOCATION_METHODS)}, got '{method}'")
    min_bids = check.number(section, "min_bids_per_listing", "allocation", 1, minimum=0,
                            whole=True)

    if check.problems:
        raise RuleError(sorted(check.problems, key=_file_order))
    return RuleSet(name=name, description=description, eligibility=eligibility,
                   factors=factors, caps=caps, tie_break=tie_break, allocation=method,
                   min_bids_per_listing=min_bids, text=text, version_hash=_hash(data),
                   warnings=tuple(sorted(check.warnings, key=_file_order)))


def _file_order(problem: RuleProblem) -> tuple[bool, int]:
    # Stable sort: problems without a line keep their order, after the located ones.
    return (problem.line is None, problem.line or 0)
