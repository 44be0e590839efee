"""Eligibility checks: the registry of who may win at all, each check with its rule keys.

Every entry of ELIGIBILITY_CHECKS names the [eligibility] keys it reads (type, range and
default), says when it is switched on and, as a small pure function, whether a bid passes
and why. The rule parser reads [eligibility] from these settings, the `Eligibility` policy
is built from them, and rules/README.md documents the same entries (a test compares them).
Checks run in registry order, which is the order stored breakdowns list them in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any, NamedTuple

from bidhub.domain.facts import (
    HANDBOOK_CAPACITY_MAX,
    HANDBOOK_CAPACITY_TARGET,
    INACTIVE,
    LEFT,
    BidFacts,
)
from bidhub.domain.text import N_, Text

MAX_COUNT = 1000  # accounts, incidents, awards, bids: any whole-number setting
MAX_MONTHS = 1200  # tenure and cooldown: a hundred years
MONTH_PLACES = 4  # decimals of the months the facts carry (tenure, since a release)


@dataclass(frozen=True)
class Setting:
    """One [eligibility] key: `kind` is "whole", "number" or "boolean".

    A `default` of None means "off" and is only allowed for numbers.
    """

    key: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class EligibilityCheck:
    """One check applied to one bid, as stored in its breakdown.

    `reason` is a `Text`; breakdowns stored before reasons were translatable give plain English.
    """

    name: str
    passed: bool
    reason: Text | str


@dataclass(frozen=True)
class EligibilityRule:
    """A registered check: `check(policy, bid)` gives (passed, reason) when `is_on(policy)`.

    `description` completes "a bid fails when ..."; `conflict(values)` is a problem with the
    settings together (None when they agree), reported on the first of them written.
    """

    name: str
    description: str
    settings: tuple[Setting, ...]
    is_on: Callable[[Any], bool]
    check: Callable[[Any, BidFacts], tuple[bool, Text]]
    conflict: Callable[[Mapping[str, Any]], Text | None] | None = None
    # For a check that is off: whether it still applies to this bid (None: never).
    is_on_for: Callable[[Any, BidFacts], bool] | None = None

    def applies(self, policy: Any, bid: BidFacts) -> bool:
        """Whether the check is applied to `bid` under `policy`."""
        return self.is_on(policy) or (self.is_on_for is not None
                                      and self.is_on_for(policy, bid))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(setting.key for setting in self.settings)


def _months(value: float, limit: float) -> str:
    """`value` months as a reason shows it: one decimal, or more (up to 4, the precision the
    facts are read with) where one would put it on the other side of `limit` than the check
    did, so that a refusal never reads "6 months ...; at least 6 required"."""
    below = value < limit
    for places in range(1, MONTH_PLACES + 1):
        shown = f"{value:.{places}f}"
        if (float(shown) < limit) == below:
            return _trimmed(shown)
    scale = 10**MONTH_PLACES
    cut = (math.floor if below else math.ceil)(value * scale) / scale
    return _trimmed(f"{cut:.{MONTH_PLACES}f}")


def _trimmed(shown: str) -> str:
    return shown.rstrip("0").removesuffix(".") if "." in shown else shown


def legacy_months(shown: str) -> str:
    """The one-decimal form reasons gave months in before they kept to the check's side of
    its limit (`_months`), from what `_months` gives now: how breakdowns stored then read."""
    return f"{float(shown):.1f}".removesuffix(".0")


# The English of every reason is what breakdowns stored before reasons were translatable
# say; `rescore --verify` compares the two, so a rewording here is a new msgid and a
# mismatch for old rounds.
def _capacity(policy: Eligibility, bid: BidFacts) -> tuple[bool, Text]:
    return (bid.accounts_held < policy.capacity_max,
            N_("holds %(held)d accounts; the maximum is %(maximum)d", held=bid.accounts_held,
               maximum=policy.capacity_max))


def _capacity_band(values: Mapping[str, Any]) -> Text | None:
    if values["capacity_max"] < values["capacity_target"]:
        return N_("capacity_max (%(maximum)s) is below capacity_target (%(target)s)",
                  maximum=values["capacity_max"], target=values["capacity_target"])
    return None


def _tenure(policy: Eligibility, bid: BidFacts) -> tuple[bool, Text]:
    return (bid.tenure_months >= policy.min_tenure_months,
            N_("%(months)s months with the company; at least %(minimum)g required",
               months=_months(bid.tenure_months, policy.min_tenure_months),
               minimum=policy.min_tenure_months))


def _accountability(policy: Eligibility, bid: BidFacts) -> tuple[bool, Text]:
    return (bid.open_incidents <= policy.max_open_incidents,
            N_("%(count)d open accountability incidents; at most %(maximum)d allowed",
               count=bid.open_incidents, maximum=policy.max_open_incidents))


def _branch(policy: Eligibility, bid: BidFacts) -> tuple[bool, Text]:
    same = bool(bid.rep_branch) and bid.rep_branch == bid.listing_branch
    if same:
        return True, N_("the account and the rep are both in branch %(branch)s",
                        branch=bid.listing_branch)
    if not bid.rep_branch:
        return False, N_("the account is in branch %(branch)s, the rep in no branch; only "
                         "accounts of one's own branch may be won", branch=bid.listing_branch)
    return False, N_("the account is in branch %(branch)s, the rep in %(rep_branch)s; only "
                     "accounts of one's own branch may be won", branch=bid.listing_branch,
                     rep_branch=bid.rep_branch)


def _cooldown(policy: Eligibility, bid: BidFacts) -> tuple[bool, Text]:
    since = bid.months_since_rep_released_account
    if since is None:
        return True, N_("has not released or lost this account before")
    return (since >= policy.cooldown_months,
            N_("released or lost this account %(months)s months ago; the cooldown is "
               "%(cooldown)g months", months=_months(since, policy.cooldown_months),
               cooldown=policy.cooldown_months))


def _on_duty(policy: Eligibility, bid: BidFacts) -> tuple[bool, Text]:
    # A rep who may no longer hold accounts is named for what they are: a deactivated user
    # keeps the status they had ("active", often), and would otherwise pass as on duty.
    if bid.unavailable == LEFT:
        return False, N_("has left the company and cannot receive accounts")
    if bid.unavailable == INACTIVE:
        return False, N_("deactivated and cannot receive accounts")
    if bid.unavailable:
        return False, N_("no longer a rep and cannot receive accounts")
    if bid.is_on_leave:
        return False, N_("on leave or no longer with the company")
    return True, N_("on duty")


ELIGIBILITY_CHECKS: dict[str, EligibilityRule] = {
    rule.name: rule for rule in (
        EligibilityRule(
            "capacity", "the rep holds `capacity_max` accounts or more (always on; awards "
            "never take a rep past it either)",
            # New rule text may not go past the handbook's 40 (rules._beyond_the_handbook).
            (Setting("capacity_max", "whole", HANDBOOK_CAPACITY_MAX, 1, MAX_COUNT),
             Setting("capacity_target", "whole", HANDBOOK_CAPACITY_TARGET, 0, MAX_COUNT)),
            lambda policy: True, _capacity, _capacity_band),
        EligibilityRule(
            "tenure", "the rep has fewer than `min_tenure_months` months with the company",
            (Setting("min_tenure_months", "number", 0, 0, MAX_MONTHS),),
            lambda policy: bool(policy.min_tenure_months), _tenure),
        EligibilityRule(
            "accountability", "the rep has more open or upheld accountability incidents than "
            "`max_open_incidents`",
            (Setting("max_open_incidents", "whole", None, 0, MAX_COUNT),),
            lambda policy: policy.max_open_incidents is not None, _accountability),
        EligibilityRule(
            "branch", "`same_branch_only` is on and the account's branch is not the rep's (a "
            "rep without a branch fails)",
            (Setting("same_branch_only", "boolean", False),),
            lambda policy: policy.same_branch_only, _branch),
        EligibilityRule(
            "cooldown", "the rep released or lost this account less than `cooldown_months` "
            "months ago",
            (Setting("cooldown_months", "number", 0, 0, MAX_MONTHS),),
            lambda policy: bool(policy.cooldown_months), _cooldown),
        EligibilityRule(
            "on_duty", "the rep has left, was deactivated or is no rep any more (always on), "
            "or `exclude_on_leave` is on and the rep is on leave",
            (Setting("exclude_on_leave", "boolean", True),),
            lambda policy: policy.exclude_on_leave, _on_duty,
            # Leave is not departure: with leave not counted, a rep who may no longer hold
            # accounts still fails (scored bids only; see BidFacts.is_departure_checked).
            is_on_for=lambda policy, bid: bid.is_departure_checked and bool(bid.unavailable)),
    )
}

ELIGIBILITY_SETTINGS: dict[str, Setting] = {
    setting.key: setting for rule in ELIGIBILITY_CHECKS.values() for setting in rule.settings}

_TYPES = {"whole": int, "number": float, "boolean": bool}

# The [eligibility] policy of a rule set: one field per registered setting, with its default.
# Built from the registry so that a new check's keys need no second declaration.
Eligibility = make_dataclass(
    "Eligibility",
    [(setting.key, _TYPES[setting.kind] if setting.default is not None
      else int | None, field(default=setting.default))
     for setting in ELIGIBILITY_SETTINGS.values()],
    frozen=True)
Eligibility.__module__ = __name__


def check_bid(policy: Eligibility, bid: BidFacts) -> tuple[EligibilityCheck, ...]:
    """The checks switched on in `policy` (an Eligibility), applied to one bid, in order."""
    return tuple(EligibilityCheck(rule.name, *rule.check(policy, bid))
                 for rule in checks_applied(policy, bid))


def checks_applied(policy: Eligibility, bid: BidFacts | CheckedFacts
                   ) -> tuple[EligibilityRule, ...]:
    """The registered checks applied to `bid` under `policy`, in order: those switched on,
    and `on_duty` for a rep who may no longer hold accounts whatever the rules say."""
    return tuple(rule for rule in ELIGIBILITY_CHECKS.values() if rule.applies(policy, bid))


class CheckedFacts(NamedTuple):
    """The facts of a bid that the checks, and what would lift a failed one, read: all they
    may read. A page checking many listings for one rep checks each distinct CheckedFacts once
    (most listings share them); a check reading any other BidFacts field fails there at once
    instead of being answered for the wrong listing."""

    accounts_held: int
    tenure_months: float
    open_incidents: int
    rep_branch: str
    listing_branch: str
    is_on_leave: bool
    months_since_rep_released_account: float | None
    unavailable: str
    is_departure_checked: bool


def checks_on(policy: Eligibility) -> tuple[EligibilityRule, ...]:
    """The registered checks switched on in `policy`, in the order check_bid applies them."""
    return tuple(rule for rule in ELIGIBILITY_CHECKS.values() if rule.is_on(policy))
