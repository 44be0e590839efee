"""The filing register (备案登记): every transfer of an account, append-only and hash-chained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bidhub.db import begin_write
from bidhub.domain.errors import InvalidRequest, NotFound, TransferRefused
from bidhub.domain.ledger import GENESIS_HASH, HASHED_FIELDS, LedgerBreak, filing_hash, verify_chain
from bidhub.models import Account, AccountReview, Filing, FilingKind, Role, User
from bidhub.services.audit import record_audit
from bidhub.services.rule_sets import active_rule_set, parsed
from bidhub.services.track_records import accounts_held_by

MIN_REASON_LENGTH = 10


def append_filing(session: Session, *, now: datetime, **fields) -> Filing:
    """Write the next filing of the chain; the caller commits it with the transfer it records."""
    last = session.execute(select(Filing.seq, Filing.hash).order_by(Filing.seq.desc()).limit(1)).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
    values = {"override_reason": "", "winner_score": None, "runner_up_score": None,
              "round_id": None, "listing_id": None, "rule_set_sha256": None,
              **fields, "seq": seq, "prev_hash": prev_hash, "decided_at": now.astimezone(UTC)}
    values = {name: round(value, 6) if isinstance(value, float) else value
              for name, value in values.items()}
    filing = Filing(**values, hash=filing_hash(values))
    session.add(filing)
    session.flush()
    return filing


def capacity_max(session: Session) -> int:
    version = active_rule_set(session)
    return parsed(version).eligibility.capacity_max if version else 40


def transfer_account(
    session: Session, actor: User, *, account_id: int, to_rep_id: int, reason: str,
    review_text: str, now: datetime,
) -> Filing:
    """Move an account to another rep outside any round, within capacity, and file it."""
    begin_write(session)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("No such account.")
    to_rep = session.get(User, to_rep_id)
    if to_rep is None or to_rep.role != Role.REP or not to_rep.is_active:
        raise TransferRefused("Choose an active rep to receive the account.", field="to_rep")
    if to_rep.id == account.owner_id:
        raise TransferRefused(f"{to_rep.display_name} already holds {account.name}.",
                              field="to_rep")
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise TransferRefused(f"Give the reason for the transfer (at least {MIN_REASON_LENGTH} "
                              "characters).", field="reason")
    limit = capacity_max(session)
    held = accounts_held_by(session, [to_rep.id])[to_rep.id]
    if held + 1 > limit:
        raise TransferRefused(f"{to_rep.display_name} holds {held} accounts; the transfer would "
                              f"exceed the maximum of {limit}.", field="to_rep")
    from_rep_id = account.owner_id
    if from_rep_id is not None:
        if len(review_text.strip()) < MIN_REASON_LENGTH:
            raise TransferRefused("Write a review of why the account leaves its rep.",
                                  field="review_text")
        session.add(AccountReview(account_id=account.id, rep_id=from_rep_id,
                                  written_by_id=actor.id, reason="direct_transfer",
                                  review_text=review_text.strip(), created_at=now))
    account.owner_id = to_rep.id
    filing = append_filing(session, now=now, kind=FilingKind.DIRECT_TRANSFER,
                           account_id=account.id, from_rep_id=from_rep_id, to_rep_id=to_rep.id,
                           branch_id=account.branch_id, reason=reason.strip(),
                           decided_by_id=actor.id)
    record_audit(session, actor, "account.transferred", f"account:{account.id}", now,
                 before={"owner": from_rep_id}, after={"owner": to_rep.id, "filing": filing.seq})
    session.commit()
    return filing


@dataclass(frozen=True)
class FilingFilter:
    branch_id: int | None = None
    rep_id: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None


def filings_query(criteria: FilingFilter):
    query = select(Filing).order_by(Filing.seq.desc())
    if criteria.branch_id:
        query = query.where(Filing.branch_id == criteria.branch_id)
    if criteria.rep_id:
        query = query.where((Filing.to_rep_id == criteria.rep_id)
                            | (Filing.from_rep_id == criteria.rep_id))
    if criteria.date_from:
        query = query.where(Filing.decided_at >= criteria.date_from)
    if criteria.date_to:
        query = query.where(Filing.decided_at < criteria.date_to)
    return query


def find_filings(session: Session, criteria: FilingFilter, limit: int | None = None,
                 offset: int = 0) -> list[Filing]:
    query = filings_query(criteria)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return list(session.scalars(query))


def count_filings(session: Session, criteria: FilingFilter) -> int:
    return session.scalar(select(func.count()).select_from(filings_query(criteria).subquery()))


def verify_ledger(session: Session) -> LedgerBreak | None:
    """The first filing whose chain link is broken, or None when all filings are intact."""
    columns = [getattr(Filing, name) for name in HASHED_FIELDS] + [Filing.hash]
    rows = session.execute(select(*columns).order_by(Filing.seq)).mappings()
    return verify_chain(rows)


def check_reason(reason: str) -> str:
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise InvalidRequest(f"Write the reason (at least {MIN_REASON_LENGTH} characters).",
                             field="reason")
    return reason.strip()
