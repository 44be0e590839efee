"""The filing register (备案登记): every transfer of an account, append-only and hash-chained."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from bidhub.db import unit_of_work
from bidhub.domain.collation import branch_order, name_key
from bidhub.domain.eligibility import ELIGIBILITY_SETTINGS
from bidhub.domain.errors import InvalidRequest, NotFound, OwnerChangeRefused, TransferRefused
from bidhub.domain.ledger import Checkpoint
from bidhub.domain.text import N_, Text
from bidhub.domain.typed_text import short_writing, visible_text, writes_less_than
from bidhub.models import (
    Account,
    Branch,
    Filing,
    FilingKind,
    InstanceMarker,
    Listing,
    RepStatus,
    Role,
    Round,
    TransferRequest,
    TransferRequestStatus,
    User,
)
from bidhub.prepared_reads import PreparedRead
from bidhub.services.audit import record_audit
from bidhub.services.ledger import (
    REGISTER_MARKER,
    LedgerHead,
    checkpoint_store,
    register_checkpoint,
)
from bidhub.services.limits import MIN_REASON_LENGTH, MIN_REVIEW_LENGTH
from bidhub.services.loss_reviews import note_management_review
from bidhub.services.notifications import notify
from bidhub.services.ownership import (
    OwnerChange,
    change_owners,
    lock_accounts,
    may_receive_accounts,
    unfinished_listing_of,
)
from bidhub.services.rule_sets import active_rule_set, parsed

# Before any rule set is adopted, the capacity a rule file gets when it does not set one.
DEFAULT_CAPACITY_MAX: int = ELIGIBILITY_SETTINGS["capacity_max"].default


class RulesInForce(NamedTuple):
    """What a move outside any round is checked against: the maximum of the rule set in force,
    and that rule set's hash, which its filing records (None before any rule set is adopted,
    when the default maximum applies)."""

    capacity_max: int
    sha256: str | None



def listed_refusal(listing: Listing) -> Text:
    """Why an account listed in a round that is not finished may not be moved outside it:
    the round named by its title, as management knows it (never by its database id)."""
    return N_("%(account)s is listed in round “%(title)s”; decide it there or withdraw the "
              "listing first.", account=listing.account.name, title=listing.round.title)

def rules_in_force(session: Session) -> RulesInForce:
    version = active_rule_set(session)
    if version is None:
        return RulesInForce(DEFAULT_CAPACITY_MAX, None)
    return RulesInForce(parsed(version).eligibility.capacity_max, version.sha256)


def capacity_max(session: Session) -> int:
    return rules_in_force(session).capacity_max


def transfer_account(
    session: Session, actor: User, *, account_id: int, to_rep_id: int, reason: str,
    review_text: str, now: datetime,
) -> Filing | TransferRequest:
    """Move an account to another rep outside any round, within capacity, and file it.

    An account on the market (listed in a round that is not finished) is decided there, not
    here. An executive-sponsored account moves only with its sponsor's confirmation, as its
    release does: the transfer is asked for (a TransferRequest, returned instead of a filing)
    and filed when the sponsor, or an admin standing in, accepts it. An account whose sponsor
    is only a title (no person designated yet) moves only when an admin makes the transfer,
    standing in for the sponsor.
    """
    # The filing register is append-only: nothing invisible goes into it.
    reason, review_text = visible_text(reason), visible_text(review_text)
    with unit_of_work(session):
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise NotFound(N_("No such account."))
        to_rep = session.get(User, to_rep_id)
        if to_rep is None or not may_receive_accounts(to_rep):
            raise TransferRefused(N_("Choose an active rep to receive the account."), field="to_rep")
        if to_rep.id == account.owner_id:
            raise TransferRefused(N_("%(rep)s already holds %(account)s.",
                                     rep=to_rep.display_name, account=account.name),
                                  field="to_rep")
        listing = unfinished_listing_of(session, account.id)
        if listing is not None:
            raise TransferRefused(listed_refusal(listing), field="account")
        if account.sponsor_id is None and account.executive_sponsor and actor.role != Role.ADMIN:
            raise TransferRefused(N_("%(account)s has an executive sponsor but no sponsor person "
                                     "is designated; designate the sponsor first, or ask an "
                                     "admin to make the transfer.", account=account.name),
                                  field="account")
        if writes_less_than(reason, MIN_REASON_LENGTH):
            raise TransferRefused(short_writing(N_(
                "Give the reason for the transfer (at least %(count)d characters).",
                count=MIN_REASON_LENGTH), reason, MIN_REASON_LENGTH), field="reason")
        from_rep_id = account.owner_id
        if from_rep_id is not None and writes_less_than(review_text, MIN_REVIEW_LENGTH):
            raise TransferRefused(short_writing(N_(
                "Write a review of why the account leaves its rep (at least %(count)d "
                "characters).", count=MIN_REVIEW_LENGTH), review_text, MIN_REVIEW_LENGTH),
                field="review_text")
        if account.sponsor_id is not None:
            return request_sponsored_transfer(session, actor, account, to_rep, reason=reason,
                                              review_text=review_text, now=now)
        rules = rules_in_force(session)
        try:
            [filing] = change_owners(
                session, [OwnerChange(account.id, to_rep.id, filing={
                    "kind": FilingKind.DIRECT_TRANSFER, "reason": reason.strip(),
                    "decided_by_id": actor.id, "rule_set_sha256": rules.sha256})],
                limit=rules.capacity_max, now=now, accounts={account.id: account})
        except OwnerChangeRefused as error:
            raise type(error)(error.message, field="to_rep") from error
        # change_owners made the loss review due from the rep; it carries management's note.
        note_management_review(session, filing, written_by_id=actor.id, review_text=review_text)
        after = {"owner": to_rep.id, "filing": filing.seq}
        if account.executive_sponsor:
            after["sponsor_confirmed_by"] = actor.id
            after["stood_in"] = True
        record_audit(session, actor, "account.transferred", f"account:{account.id}", now,
                     before={"owner": from_rep_id}, after=after)
        return filing


def transfer_waiting_for_sponsor(session: Session, account_id: int) -> bool:
    """A transfer of the account is asked for and its sponsor has not answered yet."""
    return session.scalar(select(TransferRequest.id).where(
        TransferRequest.account_id == account_id,
        TransferRequest.status == TransferRequestStatus.WAITING).limit(1)) is not None


def already_waiting_message(account: Account) -> Text:
    return N_("A transfer of %(account)s already waits for its sponsor's answer.",
              account=account.name)


def request_sponsored_transfer(session: Session, actor: User, account: Account, to_rep: User, *,
                               reason: str, review_text: str, now: datetime) -> TransferRequest:
    """Ask the account's sponsor to confirm the transfer; nothing moves until they accept."""
    if transfer_waiting_for_sponsor(session, account.id):
        raise TransferRefused(already_waiting_message(account), field="account")
    request = TransferRequest(account_id=account.id, from_rep_id=account.owner_id,
                              to_rep_id=to_rep.id, sponsor_id=account.sponsor_id,
                              reason=reason.strip(), review_text=review_text.strip(),
                              requested_by_id=actor.id, requested_at=now,
                              status=TransferRequestStatus.WAITING)
    session.add(request)
    session.flush()
    record_audit(session, actor, "transfer_request.created", f"transfer_request:{request.id}",
                 now, after={"account": account.id, "from_rep": account.owner_id,
                             "to_rep": to_rep.id, "sponsor": account.sponsor_id})
    notify(session, "sponsored_transfer", request, now)
    return request


@dataclass(frozen=True)
class FilingFilter:
    branch_id: int | None = None
    rep_id: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None


def count_filings(session: Session, criteria: FilingFilter) -> int:
    filters = set_filters(criteria)
    return session.connection().execute(
        register_statement(False, tuple(filters), paged=False), filters).scalar_one()


def set_filters(criteria: FilingFilter) -> dict[str, Any]:
    """The filters that are set, by name (a filter of 0 or an empty value is not set)."""
    return {name: value for name in FILTER_NAMES if (value := getattr(criteria, name))}


FILTER_NAMES = ("branch_id", "rep_id", "date_from", "date_to")


# Each combination of filters is one statement with bound parameters, built once per process:
# building a fresh select of twenty columns and computing its cache key cost more than SQLite
# took to run it.
@cache
def register_statement(lines: bool, filters: tuple[str, ...], *,
                       paged: bool, limit: int | None = None) -> Select:
    """The register's lines (or their count when not `lines`), narrowed by `filters`, newest
    first; `paged` takes `limit` lines from the parameter offset."""
    if not lines:
        return filing_count(filters)
    if not paged:
        return narrowed(lines_from(Filing.__table__), filters)
    size = literal_column(str(int(limit or 0)), Integer)
    if not filters:
        # The whole register's page is a run of numbers below its newest, since filings are
        # numbered without a gap and never deleted (filing_count): read by a range of the key,
        # whatever the register's length. Joined back from the page's numbers, as a narrowed
        # page is, the lines made PostgreSQL read every filing into a hash on every view. The
        # newest number rides along as the count.
        newest = filing_count(filters).correlate(None).scalar_subquery()
        top = newest - bindparam("offset", type_=Integer)
        return (lines_from(Filing.__table__).where(Filing.seq <= top, Filing.seq > top - size)
                .add_columns(newest))
    # The page's numbers first: otherwise SQLite looks up the names of every filing an offset
    # skips. The page size is written into the statement rather than bound: PostgreSQL then
    # keeps one plan for it per connection, where a bound limit made it plan afresh on every
    # page (1-3 ms of its time, more than running it). The number of filings the filters keep
    # rides along as an uncorrelated subquery (run once, not per line), which saves the page
    # a statement of its own; a window's count(*) OVER () made SQLite sort the whole register.
    page = (narrowed(select(Filing.seq), filters).order_by(Filing.seq.desc())
            .limit(size).offset(bindparam("offset")).subquery("page"))
    total = filing_count(filters).correlate(None)
    return (lines_from(page.join(Filing, Filing.seq == page.c.seq))
            .add_columns(total.scalar_subquery()))


@cache
def register_read(filters: tuple[str, ...], *, paged: bool,
                  limit: int | None = None) -> PreparedRead:
    """register_statement's lines as a read run on the driver's cursor: every view of the
    register and every change of its filters runs it."""
    return PreparedRead(register_statement(True, filters, paged=paged, limit=limit))


def filing_count(filters: tuple[str, ...]) -> Select:
    """How many filings `filters` keep. The whole register's count is its newest number:
    filings are numbered from 1 without a gap (change_owners numbers each after the last,
    under the ledger's lock; verify-ledger reports a missing one) and none is ever deleted (a
    trigger refuses it), so the key's last entry is read instead of counting every filing."""
    if not filters:
        return select(func.coalesce(func.max(Filing.seq), 0))
    return narrowed(select(func.count()).select_from(Filing), filters)


def lines_from(filings) -> Select:
    """A line per filing of `filings` (a FROM clause that has them), newest first: the
    account, branch, round and the four people joined by their keys. As subqueries, the
    people's names made PostgreSQL scan the users table once per person and line."""
    from_rep, to_rep, decided_by, requested_by = (
        aliased(User, name=name) for name in ("from_rep", "to_rep", "decided_by", "requested_by"))
    return (select(Filing.seq, Filing.kind, Filing.decided_at, Filing.account_id, Account.name,
                   Account.external_id, Filing.branch_id, Branch.name, Branch.name_zh,
                   from_rep.display_name, to_rep.display_name, Round.title, Filing.reason,
                   Filing.winner_score, Filing.runner_up_score, Filing.rule_set_sha256,
                   decided_by.display_name, requested_by.display_name, Filing.override_reason,
                   Filing.appeals, Filing.hash)
            .select_from(filings)
            .outerjoin(Account, Account.id == Filing.account_id)
            .outerjoin(Branch, Branch.id == Filing.branch_id)
            .outerjoin(Round, Round.id == Filing.round_id)
            .outerjoin(from_rep, from_rep.id == Filing.from_rep_id)
            .outerjoin(to_rep, to_rep.id == Filing.to_rep_id)
            .outerjoin(decided_by, decided_by.id == Filing.decided_by_id)
            .outerjoin(requested_by, requested_by.id == Filing.requested_by_id)
            .order_by(Filing.seq.desc()))


def narrowed(query: Select, filters: tuple[str, ...]) -> Select:
    """`query` narrowed to the filings the named filters keep (their values bound later)."""
    if "branch_id" in filters:
        query = query.where(Filing.branch_id == bindparam("branch_id"))
    if "rep_id" in filters:
        query = query.where((Filing.to_rep_id == bindparam("rep_id"))
                            | (Filing.from_rep_id == bindparam("rep_id")))
    if "date_from" in filters:
        query = query.where(Filing.decided_at >= bindparam("date_from"))
    if "date_to" in filters:
        query = query.where(Filing.decided_at < bindparam("date_to"))
    return query


class BranchNames(NamedTuple):
    """What a register line shows of its branch: its names in both languages (branch_label)."""

    id: int
    name: str
    name_zh: str | None


class RegisterLine(NamedTuple):
    """One filing as the register and its export show it: its own columns, with the names of
    the account, reps, round and decider it points to. (A tuple: the export builds one per
    filing in the register.)"""

    seq: int
    kind: str
    decided_at: datetime
    account_id: int
    account_name: str
    account_number: str
    branch: BranchNames | None
    from_rep_name: str | None
    to_rep_name: str
    round_title: str | None
    reason: str
    winner_score: float | None
    runner_up_score: float | None
    rule_set_sha256: str | None
    decided_by_name: str
    requested_by_name: str | None  # who asked, when someone else decided (a sponsor accepting)
    override_reason: str
    appeals: list[dict[str, Any]] | None
    hash: str


@dataclass(frozen=True)
class Register:
    """Lines of the register, the number of filings the filters keep, and the names of
    everyone the lines' appeals name."""

    lines: list[RegisterLine]
    people: dict[int, str]
    total: int


def filing_register(session: Session, criteria: FilingFilter, limit: int | None = None,
                    offset: int = 0) -> Register:
    """The filings the filters keep, newest first (`limit` of them from `offset` when given),
    and how many they are: one statement for the lines (a page's carries the count), one more
    for the names of appellants and answerers when the lines record appeals, and a count of
    its own only for a page past the last."""
    filters = set_filters(criteria)
    paged = limit is not None
    rows = register_read(tuple(filters), paged=paged, limit=limit).all(
        session.connection(), {**filters, "offset": offset} if paged else filters)
    lines = [RegisterLine(
        seq, kind, decided_at, account_id, account_name, account_number,
        BranchNames(branch_id, branch, branch_zh) if branch is not None else None, from_rep,
        to_rep if to_rep is not None else "", round_title, reason, winner_score,
        runner_up_score, rule_set_sha256, decided_by if decided_by is not None else "",
        requested_by, override_reason, appeals, hash_)
        for (seq, kind, decided_at, account_id, account_name, account_number, branch_id, branch,
             branch_zh, from_rep, to_rep, round_title, reason, winner_score, runner_up_score,
             rule_set_sha256, decided_by, requested_by, override_reason, appeals, hash_,
             *_total) in rows]
    if not paged:
        total = len(lines)
    elif rows:
        total = rows[0][-1]
    else:
        total = count_filings(session, criteria) if offset else 0
    named = {entry.get(key) for line in lines for entry in (line.appeals or [])
             for key in ("appellant_id", "answered_by_id")}
    people = dict(rows_with_ids(session, User.id, User.display_name, ids={
        user_id for user_id in named if isinstance(user_id, int)}))
    return Register(lines, people, total)


class RepChoice(NamedTuple):
    """A choice of the register's rep menu: the rep's id and name, and whether they are gone
    (GONE_LEFT: left the company; GONE_INACTIVE: deactivated; None: neither)."""

    id: int
    name: str
    gone: str | None


GONE_LEFT, GONE_INACTIVE = "left", "inactive"


class Surroundings(NamedTuple):
    """What the register's full page shows around its lines: the choices of its branch menu
    (every branch) and rep menu (the active reps and everyone the register names as giver or
    receiver, those gone after the others), in a menu's order (domain.collation), and the
    register's head (services.ledger.ledger_head). With no filing in the database, `lost`
    is the newest checkpoint kept outside it for this register, if any: its filings were
    deleted."""

    branches: tuple[BranchNames, ...]
    reps: tuple[RepChoice, ...]
    head: LedgerHead | None
    lost: Checkpoint | None = None


def register_surroundings(session: Session) -> Surroundings:
    """The register page's menus and head, read in one statement."""
    branches, reps, newest, register = [], [], None, None
    for part, row_id, name, name_zh in SURROUNDINGS.all(session.connection(), {}):
        if part == BRANCH_PART:
            branches.append(BranchNames(row_id, name, name_zh))
        elif part in REP_PARTS:
            reps.append(RepChoice(row_id, name, REP_PARTS[part]))
        elif part == HEAD_PART:
            newest = (row_id, name)
        else:
            register = name
    store = checkpoint_store(session)
    head = None if newest is None else LedgerHead(
        *newest, register_checkpoint(session, store, register, newest) if store else None)
    lost = None if newest is not None or store is None else register_checkpoint(
        session, store, register, (0, ""))
    return Surroundings(tuple(sorted(branches, key=branch_order)),
                        tuple(sorted(reps, key=rep_menu_order)), head, lost)


def offered_in_menus(session: Session, criteria: FilingFilter,
                     surroundings: Surroundings | None = None) -> FilingFilter:
    """`criteria` with a branch or rep that the register's menus do not offer (no such branch;
    nobody the register names, nor an active rep) taken out: filtering by it would show an
    empty register that looks like an answer. Checked against the menus of `surroundings`
    when the page has read them, else in the database."""
    branch_id, rep_id = criteria.branch_id, criteria.rep_id
    if surroundings is not None:
        if branch_id not in {branch.id for branch in surroundings.branches}:
            branch_id = None
        if rep_id not in {rep.id for rep in surroundings.reps}:
            rep_id = None
        return replace(criteria, branch_id=branch_id, rep_id=rep_id)
    if branch_id is not None and session.get(Branch, branch_id) is None:
        branch_id = None
    if rep_id is not None and session.scalar(
            select(User.id).where(User.id == rep_id,
                                  or_(and_(User.role == Role.REP, User.is_active), _NAMED))) is None:
        rep_id = None
    return replace(criteria, branch_id=branch_id, rep_id=rep_id)


def rep_menu_order(rep: RepChoice) -> tuple:
    """The current reps by name, then those gone (left or deactivated) by name."""
    return (rep.gone is not None, name_key(rep.name), rep.id)


# The menus, the head and the register's id as parts of one statement, built once and run on
# the driver's cursor (see register_read): three statements cost three round trips and three
# passes through SQLAlchemy for some seventy rows. The menus are put in order after reading
# (register_surroundings).
BRANCH_PART, REP_PART, HEAD_PART, REGISTER_PART, LEFT_REP_PART, INACTIVE_REP_PART = range(6)
REP_PARTS = {REP_PART: None, LEFT_REP_PART: GONE_LEFT, INACTIVE_REP_PART: GONE_INACTIVE}
# A rep who has left stays in the menu while the register names them: an auditor looks for
# their filings. Someone the register names who holds another role now is offered too. Asked
# as a correlated IN, not EXISTS: under OR, PostgreSQL runs an EXISTS as a hashed subplan
# that reads every filing on every page view, where this probes the rep's index for each user
# not an active rep (the register only grows).
_NAMED = or_(User.id.in_(select(Filing.to_rep_id).where(Filing.to_rep_id == User.id)),
             User.id.in_(select(Filing.from_rep_id).where(Filing.from_rep_id == User.id)))
SURROUNDINGS = PreparedRead(union_all(
    select(literal_column(str(BRANCH_PART)).label("part"), Branch.id.label("id"),
           Branch.name.label("name"), Branch.name_zh.label("name_zh")),
    select(case((User.status == RepStatus.LEFT, LEFT_REP_PART),
                (User.is_active.is_(False), INACTIVE_REP_PART), else_=REP_PART),
           User.id, User.display_name, null())
    .where(or_(and_(User.role == Role.REP, User.is_active), _NAMED)),
    # The newest filing's number and hash, as ledger_head reads them.
    select(literal_column(str(HEAD_PART)), Filing.seq, Filing.hash, null())
    .where(Filing.seq == select(func.max(Filing.seq)).scalar_subquery()),
    select(literal_column(str(REGISTER_PART)), null(), InstanceMarker.value, null())
    .where(InstanceMarker.name == REGISTER_MARKER),
))


# Bound parameters per lookup statement: the whole register's export names many thousands of
# ids, and PostgreSQL's protocol takes at most 65,535 parameters in one statement.
LOOKUP_CHUNK = 10_000


def rows_with_ids(session: Session, id_column, *columns, ids: set[int]) -> list[tuple]:
    """(id, columns...) of the rows with these ids, a chunk of ids per statement; none when
    there are no ids."""
    ordered = sorted(ids)
    found = []
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        found += session.execute(select(id_column, *columns).where(
            id_column.in_(ordered[start:start + LOOKUP_CHUNK]))).all()
    return found


def check_reason(reason: str) -> str:
    reason = visible_text(reason)
    if writes_less_than(reason, MIN_REASON_LENGTH):
        raise InvalidRequest(short_writing(N_(
            "Write the reason (at least %(count)d characters).", count=MIN_REASON_LENGTH),
            reason, MIN_REASON_LENGTH), field="reason")
    return reason
