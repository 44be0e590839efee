"""Bidding rounds: creating them, releasing accounts into them, publishing them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from bidhub.db import attached, columns_of, in_unit_of_work, unit_of_work, values_by_model
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, refuse_together
from bidhub.domain.text import COMMA, N_, Joined
from bidhub.domain.typed_text import short_writing, visible_text, writes_less_than
from bidhub.models import (
    Account,
    Branch,
    Listing,
    ListingStatus,
    ReleaseReason,
    Round,
    RoundStatus,
    RuleSetVersion,
    User,
)
from bidhub.prepared_reads import PreparedRead
from bidhub.services import sponsors
from bidhub.services.audit import record_audit
from bidhub.services.branches import require_open_branch
from bidhub.services.limits import MAX_ROUND_TITLE_LENGTH, MIN_REVIEW_LENGTH, SUBMISSION_KEY
from bidhub.services.loss_reviews import (
    open_release_review,
    withdraw_release_review,
    withdraw_unlost_review,
)
from bidhub.services.notifications import notify, round_published
from bidhub.services.ownership import (
    is_postgresql,
    lock_accounts,
    lock_round,
    unfinished_listing_of,
)
from bidhub.services.rule_sets import active_rule_set


def load_round(session: Session, round_id: int, *, expected_version: int | None = None,
               lock: bool = False) -> Round:
    """The round; with `expected_version`, only if nobody changed it since the form was loaded.

    `lock`: read afresh and locked for the rest of the write transaction (`lock_round`), for
    a use case that changes the round's list or its status: releasing, removing and
    publishing then happen one after the other, each seeing what the one before did.
    """
    round_ = lock_round(session, round_id) if lock else session.get(Round, round_id)
    if round_ is None:
        raise NotFound(N_("No such round."))
    if expected_version is not None and round_.version != expected_version:
        raise Conflict(N_("Someone else changed this round; reload it and try again."))
    return round_


# Built once: the round with the branch and the rule set it is always shown with, as plain
# columns (the relationships load_round's query joins).
_ROUND_TO_SHOW = PreparedRead(
    select(*columns_of(Round, Branch, RuleSetVersion))
    .outerjoin(Branch, Branch.id == Round.branch_id)
    .join(RuleSetVersion, RuleSetVersion.id == Round.rule_set_id)
    .where(Round.id == bindparam("round_id")))


def round_to_show(session: Session, round_id: int) -> Round:
    """load_round for a page: the same objects in the session, with their branch and rule set,
    made from one row of plain columns. The ORM's loading machinery cost the manager's round
    page more than the statement did."""
    if session.identity_map.get(identity_key(Round, round_id)) is not None:
        return load_round(session, round_id)
    if session.autoflush:
        session.flush()
    row = _ROUND_TO_SHOW.first(session.connection(), {"round_id": round_id})
    if row is None:
        raise NotFound(N_("No such round."))
    round_values, branch_values, rule_set_values = values_by_model(row, Round, Branch,
                                                                   RuleSetVersion)
    round_ = attached(session, Round, round_values)
    branch = None if branch_values is None else attached(session, Branch, branch_values)
    rule_set = attached(session, RuleSetVersion, rule_set_values)
    set_committed_value(round_, "branch", branch)
    set_committed_value(round_, "rule_set", rule_set)
    return round_


class ListedRuleSet(NamedTuple):
    """The rule set a round scores with, as the rep's list reads it (parsed() takes it)."""

    sha256: str
    text: str


class ListedBranch(NamedTuple):
    """A round's branch, with what branch_name reads of one."""

    id: int
    name: str
    name_zh: str | None


class ListedRound(NamedTuple):
    """What the rep's list of a round reads of it, as plain values; its openness and
    visibility answered by Round's own rules."""

    id: int
    title: str
    status: str
    opens_at: datetime
    closes_at: datetime
    branch: ListedBranch | None
    rule_set: ListedRuleSet

    is_open_at = Round.is_open_at
    is_visible_to_reps_at = Round.__dict__["is_visible_to_reps_at"].func


# What the rep's list reads of a round, as plain columns (browse.rep_list reads it beside the
# rep's standing in the round's accounts and the listings, in one statement).
LISTED_ROUND = (
    select(Round.id, Round.title, Round.status, Round.opens_at, Round.closes_at, Branch.id,
           Branch.name, Branch.name_zh, RuleSetVersion.sha256, RuleSetVersion.text)
    .select_from(Round).join(RuleSetVersion, RuleSetVersion.id == Round.rule_set_id)
    .outerjoin(Branch, Branch.id == Round.branch_id).where(Round.id == bindparam("round_id"))
    .subquery("listed_round"))


def listed_round(id_: int, title: str, status: str, opens_at: datetime, closes_at: datetime,
                 branch_id: int | None, branch_name: str | None, branch_name_zh: str | None,
                 sha256: str, text: str) -> ListedRound:
    """The ListedRound of LISTED_ROUND's columns."""
    return ListedRound(
        id_, title, status, opens_at, closes_at,
        None if branch_id is None else ListedBranch(branch_id, branch_name, branch_name_zh),
        ListedRuleSet(sha256, text))


def on_the_minute(moment: datetime) -> datetime:
    """A round's time as it is set and shown: to the minute. A deadline typed with seconds
    (18:00:59) would be shown as 18:00 and yet take bids until 18:00:59."""
    return moment.replace(second=0, microsecond=0)


def check_round_times(opens_at: datetime, closes_at: datetime, now: datetime) -> None:
    if closes_at <= opens_at:
        raise InvalidRequest(N_("The deadline must be after the opening time."), field="closes_at")
    if closes_at <= now:
        raise InvalidRequest(N_("The deadline must be in the future."), field="closes_at")


def checked_title(title: str) -> str:
    """A round's title as stored: what can be seen of it, which must not be empty."""
    title = visible_text(title)
    if not title:
        raise InvalidRequest(N_("Give the round a title."), field="title")
    if len(title) > MAX_ROUND_TITLE_LENGTH:
        raise InvalidRequest(N_("Use at most %(n)d characters.", n=MAX_ROUND_TITLE_LENGTH),
                             field="title")
    return title


class RoundCreatedAlready(Conflict):
    """The manager has a draft round with the same title, branch and deadline: the New round
    form filled in again after the browser's Back. `round_id` is that round."""

    def __init__(self, round_id: int) -> None:
        super().__init__(N_("You created this round already (the same title, branch and "
                            "deadline); nothing new was created."))
        self.round_id = round_id


def create_round(
    session: Session, actor: User, *, title: str, branch_id: int | None, opens_at: datetime,
    closes_at: datetime, now: datetime, submission_key: str | None = None,
) -> Round:
    """A draft round. A form sent again (the same `submission_key`, by the same manager: a
    double click, the browser resending) gives the round it created before, even if its
    times have passed since, and creates nothing. The same form sent after the browser's Back
    comes with a new key (the page is drawn afresh) but with what the manager typed: a draft
    of theirs with the same title, branch and deadline is refused (RoundCreatedAlready)."""
    title = checked_title(title)
    opens_at, closes_at = on_the_minute(opens_at), on_the_minute(closes_at)
    submission_key = submission_key or None
    if submission_key is not None and not SUBMISSION_KEY.fullmatch(submission_key):
        # Not a key the form issued: stored, it would not fit its column on PostgreSQL.
        raise InvalidRequest(N_("The form expired. Reload the page and try again."))
    try:
        return _create_round(session, actor, title=title, branch_id=branch_id,
                             opens_at=opens_at, closes_at=closes_at, now=now,
                             submission_key=submission_key)
    except IntegrityError:
        # The same form sent twice at once: the other request created the round first.
        if submission_key is None or in_unit_of_work(session):
            raise
        created = _round_created_with(session, actor, submission_key)
        if created is None:
            raise
        return created


def _round_created_with(session: Session, actor: User, submission_key: str) -> Round | None:
    """The round a form with this key created, or None; a key another manager's form
    created a round with is refused (keys are random: only a forged form reuses one)."""
    round_ = session.scalars(select(Round).where(Round.submission_key == submission_key)).first()
    if round_ is not None and round_.created_by_id != actor.id:
        raise InvalidRequest(N_("The form expired. Reload the page and try again."))
    return round_


def _same_draft(session: Session, actor: User, *, title: str, branch_id: int | None,
                closes_at: datetime) -> int | None:
    """The id of the actor's draft round with this title, branch and deadline, if any."""
    branch = Round.branch_id.is_(None) if branch_id is None else Round.branch_id == branch_id
    return session.scalar(select(Round.id).where(
        Round.created_by_id == actor.id, Round.status == RoundStatus.DRAFT,
        Round.title == title, branch, Round.closes_at == closes_at).limit(1))


def _create_round(
    session: Session, actor: User, *, title: str, branch_id: int | None, opens_at: datetime,
    closes_at: datetime, now: datetime, submission_key: str | None,
) -> Round:
    with unit_of_work(session):
        if is_postgresql(session):
            # Two forms of one manager sent at once look for each other's round one after the
            # other (SQLite's write transaction does that already).
            session.execute(select(User.id).where(User.id == actor.id)
                            .with_for_update(key_share=True))
        if submission_key is not None:
            created = _round_created_with(session, actor, submission_key)
            if created is not None:
                return created
        check_round_times(opens_at, closes_at, now)
        if branch_id is not None:
            require_open_branch(session, branch_id)
        same = _same_draft(session, actor, title=title, branch_id=branch_id, closes_at=closes_at)
        if same is not None:
            raise RoundCreatedAlready(same)
        rule_set = active_rule_set(session)
        if rule_set is None:
            raise InvalidRequest(N_("There are no active rules; an admin must adopt a rule set first."))
        round_ = Round(title=title, branch_id=branch_id, opens_at=opens_at,
                       closes_at=closes_at, rule_set_id=rule_set.id, status=RoundStatus.DRAFT,
                       created_by_id=actor.id, created_at=now, submission_key=submission_key)
        session.add(round_)
        session.flush()
        record_audit(session, actor, "round.created", f"round:{round_.id}", now,
                     after={"title": round_.title, "rule_set": rule_set.sha256})
        return round_


def update_round_times(
    session: Session, actor: User, round_id: int, *, expected_version: int, title: str,
    opens_at: datetime, closes_at: datetime, now: datetime,
) -> Round:
    title = checked_title(title)
    opens_at, closes_at = on_the_minute(opens_at), on_the_minute(closes_at)
    with unit_of_work(session):
        round_ = load_round(session, round_id, expected_version=expected_version)
        if round_.status != RoundStatus.DRAFT:
            raise InvalidRequest(N_("Only a draft round can be changed; this one is published."))
        check_round_times(opens_at, closes_at, now)
        before = {"title": round_.title, "opens_at": round_.opens_at.isoformat(),
                  "closes_at": round_.closes_at.isoformat()}
        round_.title, round_.opens_at, round_.closes_at = title, opens_at, closes_at
        record_audit(session, actor, "round.updated", f"round:{round_.id}", now, before=before,
                     after={"title": title, "opens_at": opens_at.isoformat(),
                            "closes_at": closes_at.isoformat()})
        return round_


def owner_changed(account: Account) -> Conflict:
    """The refusal of a release drawn before `account` changed owner: nothing was released."""
    if account.owner is None:
        return Conflict(N_("%(account)s changed owner after this page was drawn: it has no "
                           "owner now. Nothing was released; check the page and release it "
                           "again.", account=account.name))
    return Conflict(N_("%(account)s changed owner after this page was drawn: it is now held by "
                       "%(owner)s. Nothing was released; check the page and release it again.",
                       account=account.name, owner=account.owner.display_name))


def check_release(session: Session, round_: Round, account: Account, *, reason: str,
                  note: str, review_text: str) -> None:
    """Refuse (InvalidRequest, on its field) what would stop `account`'s release into
    `round_` (a draft); writes nothing. Every field's problem is refused at once
    (InvalidFields), so that the form shows them all in one answer."""
    refusals: list[InvalidRequest] = []
    if reason not in set(ReleaseReason):
        refusals.append(InvalidRequest(N_("Choose a release reason."), field="reason"))
    elif reason == ReleaseReason.OTHER and not note.strip():
        refusals.append(InvalidRequest(N_("Say what the other reason is."), field="note"))
    elif account.owner_id is not None:
        refusals.extend(untrue_reason(account, reason))
    if round_.branch_id is not None and account.branch_id != round_.branch_id:
        refusals.append(InvalidRequest(N_(
            "This round is for %(round_branch)s; the account belongs to %(account_branch)s.",
            round_branch=round_.branch.name, account_branch=account.branch.name),
            field="account"))
    else:
        already = unfinished_listing_of(session, account.id)
        if already is not None:
            refusals.append(InvalidRequest(N_(
                "%(account)s is already listed in round “%(title)s”.", account=account.name,
                title=already.round.title), field="account"))
    if account.owner_id is not None and writes_less_than(review_text, MIN_REVIEW_LENGTH):
        refusals.append(InvalidRequest(short_writing(N_(
            "Write a review of why the account leaves %(rep)s (at least %(count)d "
            "characters).", rep=account.owner.display_name, count=MIN_REVIEW_LENGTH),
            review_text, MIN_REVIEW_LENGTH), field="review_text"))
    refuse_together(refusals)


def untrue_reason(account: Account, reason: str) -> list[InvalidRequest]:
    """The refusal of a reason that the facts about the account's rep contradict, as the rep's
    loss review and the filing would carry it: "rep left" for a rep who has not left the
    company and whose user is active."""
    owner = account.owner
    if reason == ReleaseReason.REP_LEFT and not owner.has_departed:
        return [InvalidRequest(N_("%(rep)s has not left the company: choose the reason that "
                                  "holds.", rep=owner.display_name), field="reason")]
    return []


def preview_release(session: Session, round_id: int, *, account_id: int, reason: str,
                    note: str, review_text: str) -> Account:
    """The account as a release into the round would find it now, after every check the
    release makes (`check_release`); writes nothing. The page shows its owner and asks for
    confirmation, which `release_account` compares with `expected_owner_id`."""
    round_ = load_round(session, round_id)
    if round_.status != RoundStatus.DRAFT:
        raise InvalidRequest(N_("Accounts can only be released into a round that is not published yet."))
    account = session.get(Account, account_id)
    if account is None:
        raise InvalidRequest(N_("No such account."), field="account")
    check_release(session, round_, account, reason=reason, note=note, review_text=review_text)
    return account


# `release_account`'s expected owner when the caller showed none (the bulk release checks the
# rep itself; the demo and imports release what they just read).
ANY_OWNER: Any = object()


def release_account(
    session: Session, actor: User, round_id: int, *, account_id: int, reason: str,
    note: str, review_text: str, now: datetime, expected_owner_id: int | None = ANY_OWNER,
) -> Listing:
    """Put an account on a draft round's list, with the review of why its rep loses it.

    `expected_owner_id`: the owner the page showed (None: nobody), whom the review is written
    about. Compared once the account is locked: if it changed hands since, nothing is
    released (`owner_changed`, a Conflict).
    """
    with unit_of_work(session):
        # Locked before the account (the order every use case keeps), so that the round
        # cannot be published between this check and the listing.
        round_ = load_round(session, round_id, lock=True)
        if round_.status != RoundStatus.DRAFT:
            raise InvalidRequest(N_("Accounts can only be released into a round that is not published yet."))
        # Locked like every ownership change, so a transfer cannot slip in while it is listed.
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise InvalidRequest(N_("No such account."), field="account")
        if expected_owner_id is not ANY_OWNER and account.owner_id != expected_owner_id:
            raise owner_changed(account)
        check_release(session, round_, account, reason=reason, note=note,
                      review_text=review_text)
        review = None
        if account.owner_id is not None:
            # The release is the loss: the rep's review is due from now, with this note.
            review = open_release_review(session, account_id=account.id,
                                         rep_id=account.owner_id, reason=reason,
                                         written_by_id=actor.id,
                                         review_text=review_text.strip(), now=now)
        listing = Listing(
            round_id=round_.id, account_id=account.id, released_from_id=account.owner_id,
            release_reason=reason, release_note=note.strip(), review_id=review.id if review else None,
            status=(ListingStatus.AWAITING_CONFIRMATION if account.executive_sponsor
                    else ListingStatus.LISTED),
            released_by_id=actor.id, created_at=now)
        session.add(listing)
        session.flush()
        record_audit(session, actor, "listing.released", f"listing:{listing.id}", now,
                     after={"round": round_.id, "account": account.id, "reason": reason,
                            "from_rep": account.owner_id})
        if listing.status == ListingStatus.AWAITING_CONFIRMATION:
            notify(session, "sponsored_release", listing, now)
        return listing


def remove_listing(session: Session, actor: User, listing_id: int, now: datetime) -> None:
    with unit_of_work(session):
        listing = session.get(Listing, listing_id)
        if listing is None:
            raise NotFound(N_("No such listing."))
        # The round locked, then the listing read again: it cannot be published meanwhile,
        # and a concurrent removal has either removed the listing already or waits.
        load_round(session, listing.round_id, lock=True)
        listing = session.get(Listing, listing_id, populate_existing=True)
        if listing is None:
            raise NotFound(N_("No such listing."))
        if listing.round.status != RoundStatus.DRAFT:
            raise InvalidRequest(N_("A published round's list cannot change."))
        record_audit(session, actor, "listing.removed", f"listing:{listing.id}", now,
                     before={"round": listing.round_id, "account": listing.account_id})
        review_id = listing.review_id
        session.delete(listing)
        session.flush()
        withdraw_release_review(session, review_id, now)


def load_awaiting_listing(session: Session, listing_id: int, *, lock: bool = False) -> Listing:
    """The listing while it waits for its sponsor's answer. With `lock`, its round is locked
    first and the listing read afresh: a concurrent answer, removal or publication finishes
    first, and exactly one answer is taken (at PostgreSQL's READ COMMITTED two answers read
    it waiting, and the later write won)."""
    listing = session.get(Listing, listing_id)
    if listing is not None and lock:
        load_round(session, listing.round_id, lock=True)
        listing = session.get(Listing, listing_id, populate_existing=True)
    if listing is None:
        raise NotFound(N_("No such listing."))
    if listing.status != ListingStatus.AWAITING_CONFIRMATION:
        raise Conflict(N_("This listing does not wait for confirmation any more."))
    return listing


def confirm_sponsored_listing(session: Session, actor: User, listing_id: int, now: datetime,
                              note: str = "") -> Listing:
    """The account's executive sponsor (or an admin standing in) agrees to its release."""
    listing = load_awaiting_listing(session, listing_id)
    stood_in = sponsors.answering_as(session, actor, listing.account.sponsor_id,
                                     f"listing:{listing.id}", now)
    note = sponsors.check_answer_note(note, required=False)
    with unit_of_work(session):
        listing = load_awaiting_listing(session, listing_id, lock=True)
        listing.status = ListingStatus.LISTED
        listing.confirmed_by_id = actor.id
        listing.confirmation_note, listing.confirmation_stood_in = note, stood_in
        record_audit(session, actor, "listing.sponsor_confirmed", f"listing:{listing.id}", now,
                     after={"account": listing.account_id, "sponsor": listing.account.sponsor_id,
                            "title": listing.account.executive_sponsor, "stood_in": stood_in,
                            "note": note})
        notify(session, "sponsor_answered_release", listing, now)
        return listing


def refuse_sponsored_listing(session: Session, actor: User, listing_id: int, note: str,
                             now: datetime) -> Listing:
    """The sponsor (or an admin standing in) refuses the release: the account is not offered."""
    listing = load_awaiting_listing(session, listing_id)
    stood_in = sponsors.answering_as(session, actor, listing.account.sponsor_id,
                                     f"listing:{listing.id}", now)
    note = sponsors.check_answer_note(note, required=True)
    with unit_of_work(session):
        listing = load_awaiting_listing(session, listing_id, lock=True)
        listing.status = ListingStatus.REFUSED
        withdraw_unlost_review(listing, now)
        listing.confirmed_by_id = actor.id
        listing.confirmation_note, listing.confirmation_stood_in = note, stood_in
        record_audit(session, actor, "listing.sponsor_refused", f"listing:{listing.id}", now,
                     after={"account": listing.account_id, "sponsor": listing.account.sponsor_id,
                            "stood_in": stood_in, "note": note})
        notify(session, "sponsor_answered_release", listing, now)
        return listing


def publish_round(session: Session, actor: User, round_id: int, *, expected_version: int,
                  now: datetime) -> Round:
    with unit_of_work(session):
        # Locked before its list is read: a release or removal in progress finishes first.
        round_ = load_round(session, round_id, expected_version=expected_version, lock=True)
        if round_.status != RoundStatus.DRAFT:
            raise Conflict(N_("This round is already published."))
        if round_.closes_at <= now:
            raise InvalidRequest(N_("The deadline has passed; set a new one before publishing."))
        if not round_.listings:
            raise InvalidRequest(N_("Release at least one account into the round first."))
        waiting = [listing.account.name for listing in round_.listings
                   if listing.status == ListingStatus.AWAITING_CONFIRMATION]
        if waiting:
            raise InvalidRequest(N_("The executive sponsor must first confirm (or refuse) the "
                                    "release of these accounts: %(accounts)s",
                                    accounts=Joined(waiting, separator=COMMA)))
        round_.status = RoundStatus.PUBLISHED
        round_.published_at = now
        record_audit(session, actor, "round.published", f"round:{round_.id}", now,
                     after={"listings": len(round_.listings), "closes_at": round_.closes_at.isoformat()})
        round_published(session, round_, now)
        return round_


def release_accounts(
    session: Session, actor: User, round_id: int, *, account_ids: list[int], reason: str,
    note: str, review_text: str, now: datetime, from_rep_id: int | None = None,
) -> list[Listing]:
    """Release several accounts into a draft round with one reason and review: all or none.

    With `from_rep_id` (a page listing one rep's accounts), every account must still be that
    rep's: the review was written about them, not about whoever holds the account now. One
    that changed hands since the page was drawn refuses the lot (Conflict).
    """
    with unit_of_work(session):
        if not account_ids:
            raise InvalidRequest(N_("Choose at least one account to release."),
                                 field="account_ids")
        load_round(session, round_id, lock=True)  # the round before its accounts
        if from_rep_id is not None:
            accounts = lock_accounts(session, account_ids)
            moved = [accounts[account_id].name if account_id in accounts
                     else N_("account %(id)d", id=account_id)
                     for account_id in sorted(set(account_ids))
                     if account_id not in accounts
                     or accounts[account_id].owner_id != from_rep_id]
            if moved:
                # The capacity board draws the rep's list again under this message, so it
                # points at that list rather than asking for a reload.
                raise Conflict(N_("No longer held by this rep: %(accounts)s. Nothing was "
                                  "released. The list below shows the rep's accounts as they "
                                  "are now: check the selection and release again.",
                                  accounts=Joined(moved, separator=COMMA)))
        listings = []
        # In id order, the order every use case locks accounts in.
        for account_id in sorted(set(account_ids)):
            try:
                listings.append(release_account(
                    session, actor, round_id, account_id=account_id, reason=reason, note=note,
                    review_text=review_text, now=now))
            except InvalidRequest as error:
                # The account's own problem says which account, on the field that lists
                # them; the form's problems stay on their fields. Nothing is released.
                refusals = error.refusals
                if all(refusal.field != "account" for refusal in refusals):
                    raise
                account = session.get(Account, account_id)
                named = account.name if account else N_("account %(id)d", id=account_id)
                refuse_together([
                    InvalidRequest(N_("%(account)s: %(problem)s Nothing was released.",
                                      account=named, problem=refusal.message),
                                   field="account_ids")
                    if refusal.field == "account" else refusal for refusal in refusals])
        return listings
