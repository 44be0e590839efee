"""Rule files: strict parsing and validation of a scoring policy written in TOML."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

ALLOCATION_METHODS = ("greedy", "optimal")
TIE_BREAKS = {
    "fewest_accounts_held": "the bidder holding fewer accounts ranks first",
    "earliest_submission": "the bid submitted first ranks first",
    "lottery": "a seeded lottery; the seed is published with the results",
}
DEFAULT_TIE_BREAK = ("fewest_accounts_held", "earliest_submission")


@dataclass(frozen=True)
class RuleProblem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}{where}: {self.message}"


class RuleError(Exception):
    """A rule text that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class Eligibility:
    capacity_max: int = 40
    capacity_target: int = 30
    min_tenure_months: float = 0
    max_open_incidents: int | None = None
    same_branch_only: bool = False
    cooldown_months: float = 0
    exclude_on_leave: bool = True


@dataclass(frozen=True)
class Factor:
    metric: str
    weight: float
    normaliser: str
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Caps:
    max_awards_per_rep_per_round: int | None = None


@dataclass(frozen=True)
class RuleSet:
    name: str
    description: str
    eligibility: Eligibility
    factors: tuple[Factor, ...]
    caps: Caps
    tie_break: tuple[str, ...]
    allocation: str
    min_bids_per_listing: int
    text: str
    version_hash: str


def canonical_hash(text: str) -> str:
    """SHA-256 of the parsed rules in canonical JSON: comments and layout do not count."""
    data = tomllib.loads(text)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Checker:
    """Reads values out of the parsed TOML, noting every problem instead of stopping."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.problems: list[RuleProblem] = []

    def line_of(self, path: str) -> int | None:
        """Where `path` (eligibility.capacity_max, factors[2].weight, tie_break) is written."""
        match = re.fullmatch(r"(\w+)(?:\[(\d+)\])?(?:\.(\w+))?", path)
        if match is None:
            return None
        section, index, key = match.group(1), match.group(2), match.group(3)
        header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?$")
        if key is None:
            assignment = re.compile(rf"^\s*{re.escape(section)}\s*=")
            for number, line in enumerate(self.lines, start=1):
                if header.match(line) or assignment.match(line):
                    return number
            return None
        wanted, seen, inside, found_header = int(index or 0), -1, False, None
        assignment = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number, line in enumerate(self.lines, start=1):
            if header.match(line):
                seen += 1
                inside = seen == wanted
                found_header = number if inside else found_header
            elif line.lstrip().startswith("["):
                inside = False
            elif inside and assignment.match(line):
                return number
        return found_header

    def problem(self, path: str, message: str) -> None:
        self.problems.append(RuleProblem(path, self.line_of(path), message))

    def table(self, data: dict, name: str) -> dict:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(name, f"expected a table [{name}], got {type_name(value)}")
            return {}
        return value

    def unknown_keys(self, table: dict, known: set[str], prefix: str) -> None:
        for key in table:
            if key not in known:
                path = f"{prefix}.{key}" if prefix else key
                self.problem(path, f"unknown key '{key}' (known: {', '.join(sorted(known))})")

    def number(self, table: dict, key: str, prefix: str, default: float | None, *,
               minimum: float | None = None, whole: bool = False) -> float | None:
        if key not in table:
            return default
        value = table[key]
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, f"expected a number, got {type_name(value)}")
            return default
        if whole and not isinstance(value, int):
            self.problem(path, f"expected a whole number, got {value}")
            return default
        if minimum is not None and value < minimum:
            self.problem(path, f"must be at least {minimum:g}, got {value}")
            return default
        return value

    def boolean(self, table: dict, key: str, prefix: str, default: bool) -> bool:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, bool):
            self.problem(f"{prefix}.{key}", f"expected true or false, got {type_name(value)}")
            return default
        return value

    def string(self, table: dict, key: str, prefix: str, default: str) -> str:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, str):
            path = f"{prefix}.{key}" if prefix else key
            self.problem(path, f"expected a string, got {type_name(value)}")
            return default
        return value


def type_name(value: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


TOP_LEVEL_KEYS = {"name", "description", "eligibility", "factors", "caps", "tie_break",
                  "allocation"}
ELIGIBILITY_KEYS = {"capacity_max", "capacity_target", "min_tenure_months", "max_open_incidents",
                    "same_branch_only", "cooldown_months", "exclude_on_leave"}
FACTOR_KEYS = {"metric", "weight", "normaliser", "cap", "midpoint", "steepness"}
CAPS_KEYS = {"max_awards_per_rep_per_round"}
ALLOCATION_KEYS = {"method", "min_bids_per_listing"}


def parse_rules(text: str) -> RuleSet:
    """The rule set in `text`, or RuleError listing every problem (key path, line, reason)."""
    from bidhub.domain.metrics import METRICS
    from bidhub.domain.scoring import NORMALISERS

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        raise RuleError([RuleProblem("(file)", int(match.group(1)) if match else None,
                                     f"not valid TOML: {error}")]) from error
    check = _Checker(text)
    check.unknown_keys(data, TOP_LEVEL_KEYS, "")
    name = check.string(data, "name", "", "unnamed rules")
    description = check.string(data, "description", "", "")

    section = check.table(data, "eligibility")
    check.unknown_keys(section, ELIGIBILITY_KEYS, "eligibility")
    capacity_max = check.number(section, "capacity_max", "eligibility", 40, minimum=1, whole=True)
    capacity_target = check.number(section, "capacity_target", "eligibility", 30, minimum=0,
                                   whole=True)
    if capacity_max < capacity_target:
        check.problem("eligibility.capacity_max",
                      f"capacity_max ({capacity_max}) is below capacity_target "
                      f"({capacity_target})")
    eligibility = Eligibility(
        capacity_max=capacity_max, capacity_target=capacity_target,
        min_tenure_months=check.number(section, "min_tenure_months", "eligibility", 0, minimum=0),
        max_open_incidents=check.number(section, "max_open_incidents", "eligibility", None,
                                        minimum=0, whole=True),
        same_branch_only=check.boolean(section, "same_branch_only", "eligibility", False),
        cooldown_months=check.number(section, "cooldown_months", "eligibility", 0, minimum=0),
        exclude_on_leave=check.boolean(section, "exclude_on_leave", "eligibility", True),
    )

    factors = []
    raw_factors = data.get("factors", [])
    if not isinstance(raw_factors, list) or not all(isinstance(f, dict) for f in raw_factors):
        check.problem("factors", "expected [[factors]] tables")
        raw_factors = []
    if not raw_factors:
        check.problem("factors", "at least one [[factors]] entry is needed to rank bids")
    for index, raw in enumerate(raw_factors):
        prefix = f"factors[{index}]"
        check.unknown_keys(raw, FACTOR_KEYS, prefix)
        metric = check.string(raw, "metric", prefix, "")
        if "metric" not in raw:
            check.problem(f"{prefix}.metric", "missing: name the metric this factor scores")
        elif metric not in METRICS:
            check.problem(f"{prefix}.metric", f"unknown metric '{metric}' (known: "
                          f"{', '.join(sorted(METRICS))})")
        if "weight" not in raw:
            check.problem(f"{prefix}.weight", "missing: give the factor a weight")
        weight = check.number(raw, "weight", prefix, 0.0)
        normaliser = check.string(raw, "normaliser", prefix, "minmax")
        if normaliser not in NORMALISERS:
            check.problem(f"{prefix}.normaliser", f"unknown normaliser '{normaliser}' (known: "
                          f"{', '.join(sorted(NORMALISERS))})")
        params = {}
        for key in ("cap", "midpoint", "steepness"):
            if key in raw:
                value = check.number(raw, key, prefix, None)
                if value is not None:
                    params[key] = float(value)
        if normaliser == "cap" and params.get("cap", 0) <= 0:
            check.problem(f"{prefix}.cap", "the cap normaliser needs cap, a number above 0")
        if normaliser == "logistic" and "midpoint" not in params:
            check.problem(f"{prefix}.midpoint", "the logistic normaliser needs a midpoint")
        if normaliser == "logistic" and params.get("steepness", 1.0) <= 0:
            check.problem(f"{prefix}.steepness", "steepness must be above 0")
        factors.append(Factor(metric, float(weight), normaliser, params))
    metrics_seen = [factor.metric for factor in factors]
    for index, factor in enumerate(factors):
        if metrics_seen.index(factor.metric) != index:
            check.problem(f"factors[{index}].metric",
                          f"metric '{factor.metric}' appears in more than one factor")
    if factors and all(factor.weight == 0 for factor in factors):
        check.problem("factors", "all weights are zero, so every bid would score the same")

    section = check.table(data, "caps")
    check.unknown_keys(section, CAPS_KEYS, "caps")
    caps = Caps(check.number(section, "max_awards_per_rep_per_round", "caps", None, minimum=1,
                             whole=True))

    tie_break = data.get("tie_break", list(DEFAULT_TIE_BREAK))
    if not isinstance(tie_break, list) or not all(isinstance(item, str) for item in tie_break):
        check.problem("tie_break", "expected a list of names, e.g. [\"fewest_accounts_held\"]")
        tie_break = list(DEFAULT_TIE_BREAK)
    for item in tie_break:
        if item not in TIE_BREAKS:
            check.problem("tie_break", f"unknown tie-break '{item}' (known: "
                          f"{', '.join(TIE_BREAKS)})")
    if len(set(tie_break)) != len(tie_break):
        check.problem("tie_break", "a tie-break is listed twice")

    section = check.table(data, "allocation")
    check.unknown_keys(section, ALLOCATION_KEYS, "allocation")
    method = check.string(section, "method", "allocation", "greedy")
    if method not in ALLOCATION_METHODS:
        check.problem("allocation.method", f"must be one of {', '.join(ALLOCATION_METHODS)}, "
                      f"got '{method}'")
    min_bids = check.number(section, "min_bids_per_listing", "allocation", 1, minimum=0,
                            whole=True)

    if check.problems:
        raise RuleError(check.problems)
    return RuleSet(name=name, description=description, eligibility=eligibility,
                   factors=tuple(factors), caps=caps, tie_break=tuple(tie_break),
                   allocation=method, min_bids_per_listing=int(min_bids), text=text,
                   version_hash=canonical_hash(text))
