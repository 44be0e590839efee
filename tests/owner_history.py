"""The accounts' owners against the filing register, read from the database alone.

Used by the tests of every way an account can change hands: `Watch` notes the owners and the
register's end before a use case and, after it, checks that the use case filed exactly the
changes of owner it made; `history_problems` checks the whole register against today's owners.
"""

from __future__ import annotations

import json

from sqlalchemy import text

from bidhub.services.ledger import verify_ledger
from tests.conftest import reload

REGISTER = text("SELECT seq, kind, account_id, from_rep_id, to_rep_id, round_id, listing_id, "
                "reason, winner_score, runner_up_score, rule_set_sha256, override_reason, "
                "decided_by_id, requested_by_id, decided_at, appeals FROM filings ORDER BY seq")
OWNERS = text("SELECT id, owner_id FROM accounts")


def register_rows(session) -> list:
    return list(session.execute(REGISTER))


def appeals_of(row) -> list[dict] | None:
    """The appeals a register row records (SQLite hands raw JSON back as text)."""
    return json.loads(row.appeals) if isinstance(row.appeals, str) else row.appeals


def owners(session) -> dict[int, int | None]:
    return dict(session.execute(OWNERS).all())


def history_problems(session) -> list[str]:
    """Where the register and the owners disagree: each filing must move its account from
    the owner the filings before it left it with (nobody, before its first) to someone else,
    say why and who decided, and each account's last filing must name its owner today (an
    account without filings has none)."""
    held: dict[int, int | None] = {}
    problems = []
    for row in register_rows(session):
        before = held.get(row.account_id)
        if row.from_rep_id != before:
            problems.append(f"filing {row.seq} moves account {row.account_id} from rep "
                            f"{row.from_rep_id}, but the filings before it leave it with rep "
                            f"{before}")
        if row.to_rep_id == row.from_rep_id:
            problems.append(f"filing {row.seq} records no change of owner")
        if not (row.reason or "").strip() or row.decided_by_id is None:
            problems.append(f"filing {row.seq} does not say why or who decided")
        held[row.account_id] = row.to_rep_id
    for account_id, owner_id in sorted(owners(session).items()):
        if held.get(account_id) != owner_id:
            problems.append(f"account {account_id} is held by rep {owner_id}, its filings give "
                            f"rep {held.get(account_id)}")
    return problems


class Watch:
    """The owners and the end of the register before a use case."""

    def __init__(self, session) -> None:
        reload(session)
        self.session = session
        self.owners = owners(session)
        self.last_seq = session.scalar(text("SELECT coalesce(max(seq), 0) FROM filings"))
        session.rollback()

    def filed(self) -> list:
        """The filings written since, once checked to be exactly the changes of owner made
        since: for each account that changed hands, one filing per move, from its owner before,
        each from where the one before left it, to its owner now; none for an account that
        kept its owner; the whole register still agreeing with every owner and verifying."""
        reload(self.session)
        new = [row for row in register_rows(self.session) if row.seq > self.last_seq]
        now = owners(self.session)
        moved = {account_id for account_id, owner_id in now.items()
                 if self.owners.get(account_id) != owner_id}
        filed: dict[int, list] = {}
        for row in new:
            filed.setdefault(row.account_id, []).append(row)
        # An account moved and moved back is filed twice with no change in the end.
        assert moved <= set(filed), (sorted(filed), sorted(moved))
        for account_id, rows in filed.items():
            steps = [self.owners.get(account_id)] + [row.to_rep_id for row in rows]
            assert [row.from_rep_id for row in rows] == steps[:-1], account_id
            assert steps[-1] == now[account_id], account_id
        assert history_problems(self.session) == []
        report = verify_ledger(self.session)
        assert report.is_intact, report.problems
        return new

    def nothing_filed(self) -> None:
        assert self.filed() == []
