"""Random sequences of releases, bids, decisions, overrides, publishing, the end of standstill
windows, cancellations, transfers, imports and reps leaving keep the invariants after every
step: nobody past capacity, one award per listing, filings that replay to today's owners, each
from the owner the filings before it give, and a register that verifies."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from bidhub import create_app
from bidhub.clock import FrozenClock
from bidhub.domain.errors import BidhubError
from bidhub.models import (
    Account,
    Branch,
    Decision,
    Filing,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import adjudication, appeals, bidding, imports, ownership, rounds, users
from bidhub.services.filings import transfer_account
from bidhub.services.ledger import verify_ledger
from bidhub.services.ownership import OwnerChange, change_owners
from bidhub.services.rule_sets import adopt_rule_set, default_rules_path
from bidhub.services.users import new_session_token
from tests.conftest import PASSWORD_HASH, START

CAPACITY = 3
REPS = 4
ACCOUNTS = 10
REVIEW = "Handover agreed with the client; see the account review."


def small_capacity_rules(default_text: str) -> str:
    """The default policy with room for three accounts per rep, so the limit is reached often."""
    return (default_text.replace("capacity_max = 40", f"capacity_max = {CAPACITY}")
            .replace("capacity_target = 30", "capacity_target = 2")
            .replace("min_tenure_months = 3", "min_tenure_months = 0")
            .replace("cooldown_months = 6", "cooldown_months = 0"))


class OwnershipMachine(RuleBasedStateMachine):
    template: Path

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="bidhub-machine-"))
        database = self.folder / "bidhub.sqlite3"
        shutil.copy(self.template, database)
        self.clock = FrozenClock(START)
        self.app = create_app({
            "TESTING": True, "SECRET_KEY": "machine", "DATABASE_URL": f"sqlite:///{database}",
            "CLOCK": self.clock, "SCHEDULER_ENABLED": False, "LEDGER_KEY": "machine-key",
            "LEDGER_CHECKPOINT_FILE": str(self.folder / "checkpoints.jsonl")})
        self.session = self.app.extensions["bidhub_sessionmaker"]()
        self.refusals = 0
        self.rounds_made = 0

    @initialize()
    def world(self) -> None:
        session, now = self.session, self.clock()
        text = small_capacity_rules(default_rules_path(self.app.config).read_text("utf-8"))
        adopt_rule_set(session, None, text, "small", "three accounts per rep", now)
        branch = Branch(code="BJ", name="Beijing")
        session.add(branch)
        session.flush()

        def user(role: str, name: str) -> User:
            person = User(username=name, display_name=name, password_hash=PASSWORD_HASH,
                          role=role, branch_id=branch.id, is_active=True, status="active",
                          hired_on=(now - timedelta(days=900)).date(),
                          session_token=new_session_token(), failed_login_count=0,
                          created_at=now)
            session.add(person)
            return person

        self.manager = user(Role.KA_MANAGER, "manager")
        self.admin = user(Role.ADMIN, "admin")
        self.reps = [user(Role.REP, f"rep{n}") for n in range(REPS)]
        session.flush()
        self.accounts = []
        for n in range(ACCOUNTS):
            account = Account(external_id=f"KA-{n:03d}", name=f"Account {n}", industry="IT",
                              ownership_type="private", branch_id=branch.id,
                              annual_value_yuan=100_000 + n, owner_id=None, created_at=now)
            session.add(account)
            session.flush()
            self.accounts.append(account)
            owner = self.reps[n % REPS] if n < REPS * 2 else None
            if owner is not None:
                change_owners(session, [OwnerChange(account.id, owner.id, filing={
                    "kind": "crm_import", "reason": "CRM import",
                    "decided_by_id": self.admin.id})], limit=CAPACITY, now=now)
        session.commit()
        self.account_ids = [account.id for account in self.accounts]
        self.rep_ids = [rep.id for rep in self.reps]

    def teardown(self) -> None:
        self.session.close()
        self.app.extensions["bidhub_engine"].dispose()
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------

    def attempt(self, action) -> None:
        """Run a use case; a refusal is fine (and must leave nothing behind)."""
        try:
            action()
        except BidhubError:
            self.refusals += 1
        finally:
            self.session.rollback()
            self.session.expire_all()

    def user(self, user_id: int) -> User:
        return self.session.get(User, user_id)

    def rounds_in(self, *statuses: str) -> list[Round]:
        return list(self.session.scalars(select(Round).where(Round.status.in_(statuses))
                                         .order_by(Round.id)))

    # --- rules -----------------------------------------------------------------------------

    @rule(picks=st.lists(st.integers(0, ACCOUNTS - 1), min_size=1, max_size=3, unique=True),
          publish=st.booleans())
    def release(self, picks: list[int], publish: bool) -> None:
        """A manager opens a round with a few accounts, and publishes it now or later."""
        now = self.clock()
        manager = self.user(self.manager.id)
        round_ = None

        def create():
            nonlocal round_
            # Each its own title: a draft of the same title and deadline is the one made before.
            self.rounds_made += 1
            round_ = rounds.create_round(
                self.session, manager, title=f"Round {self.rounds_made}", branch_id=None,
                opens_at=now, closes_at=now + timedelta(days=1), now=now)

        self.attempt(create)
        for pick in picks:
            self.attempt(lambda pick=pick: rounds.release_account(
                self.session, self.user(self.manager.id), round_.id,
                account_id=self.account_ids[pick], reason="over_capacity", note="",
                review_text=REVIEW, now=now))
        if publish:
            self.publish_round()

    @rule(picks=st.lists(st.integers(0, ACCOUNTS - 1), min_size=1, max_size=4, unique=True),
          bidders=st.lists(st.integers(0, REPS - 1), min_size=1, max_size=REPS, unique=True))
    def run_round_to_its_deadline(self, picks: list[int], bidders: list[int]) -> None:
        """A whole round up to scoring: released, published, bid for, past its deadline."""
        self.release(picks, publish=True)
        for listing in self.session.scalars(
                select(Listing).join(Round).where(Round.status == RoundStatus.PUBLISHED,
                                                  Listing.status == ListingStatus.LISTED)):
            for rep in bidders:
                self.attempt(lambda listing_id=listing.id, rep=rep: bidding.submit_bid(
                    self.session, self.user(self.rep_ids[rep]), listing_id,
                    account_plan="Visit every decision maker in the first month.",
                    committed_revenue_yuan=200_000,
                    visit_plan="Weekly visits in the first quarter.", submission_key=None,
                    now=self.clock()))
        self.deadline_passes()

    @rule(pick=st.integers(0, 50))
    def accept_every_proposal(self, pick: int) -> None:
        scored = self.rounds_in(RoundStatus.SCORED)
        if not scored:
            return
        for listing in scored[pick % len(scored)].listings:
            self.attempt(lambda listing_id=listing.id: adjudication.decide_listing(
                self.session, self.user(self.manager.id), listing_id, kind="accepted",
                bid_id=None, reason="", now=self.clock()))
            self.attempt(lambda listing_id=listing.id: adjudication.decide_listing(
                self.session, self.user(self.manager.id), listing_id, kind="no_award",
                bid_id=None, reason="Nobody suitable bid for this account.",
                now=self.clock()))

    @rule()
    def publish_round(self) -> None:
        for round_ in self.rounds_in(RoundStatus.DRAFT):
            now = self.clock()
            if round_.closes_at <= now or not round_.listings:
                continue
            self.attempt(lambda round_=round_, now=now: rounds.publish_round(
                self.session, self.user(self.manager.id), round_.id,
                expected_version=round_.version, now=now))

    @rule(rep=st.integers(0, REPS - 1), pick=st.integers(0, 50))
    def bid(self, rep: int, pick: int) -> None:
        listings = list(self.session.scalars(
            select(Listing).join(Round).where(Round.status == RoundStatus.PUBLISHED,
                                              Listing.status == ListingStatus.LISTED)
            .order_by(Listing.id)))
        if not listings:
            return
        listing = listings[pick % len(listings)]
        self.attempt(lambda: bidding.submit_bid(
            self.session, self.user(self.rep_ids[rep]), listing.id,
            account_plan="Visit every decision maker in the first month.",
            committed_revenue_yuan=200_000, visit_plan="Weekly visits in the first quarter.",
            submission_key=None, now=self.clock()))

    @rule()
    def deadline_passes(self) -> None:
        self.clock.advance(days=1, seconds=1)
        self.attempt(lambda: adjudication.close_due_rounds(self.session, self.clock()))

    @rule(pick=st.integers(0, 50), kind=st.sampled_from(["accepted", "overridden", "no_award"]),
          choice=st.integers(0, 5))
    def decide(self, pick: int, kind: str, choice: int) -> None:
        listings = list(self.session.scalars(
            select(Listing).join(Round).where(Round.status == RoundStatus.SCORED)
            .order_by(Listing.id)))
        if not listings:
            return
        listing = listings[pick % len(listings)]
        ranking = adjudication.ranked_bids(self.session, listing.id)
        bid_id = ranking[choice % len(ranking)].id if ranking else None
        decision = self.session.scalars(select(Decision).where(
            Decision.listing_id == listing.id)).first()
        self.attempt(lambda: adjudication.decide_listing(
            self.session, self.user(self.manager.id), listing.id, kind=kind, bid_id=bid_id,
            reason="Decided for the branch's coverage plan.", now=self.clock(),
            expected_version=decision.version if decision else None))

    @rule()
    def publish_results(self) -> None:
        for round_ in self.rounds_in(RoundStatus.SCORED):
            self.attempt(lambda round_=round_: adjudication.publish_results(
                self.session, self.user(self.manager.id), round_.id,
                expected_version=round_.version, now=self.clock()))

    @rule(picks=st.lists(st.integers(0, ACCOUNTS - 1), min_size=1, max_size=4, unique=True),
          bidders=st.lists(st.integers(0, REPS - 1), min_size=1, max_size=REPS, unique=True))
    def run_round_to_the_end(self, picks: list[int], bidders: list[int]) -> None:
        """A whole round: to its deadline, the proposals accepted, the results announced and
        the standstill over (awards of earlier rounds waiting too take effect with it)."""
        self.run_round_to_its_deadline(picks, bidders)
        for pick in range(len(self.rounds_in(RoundStatus.SCORED))):
            self.accept_every_proposal(pick)
        self.publish_results()
        self.windows_end()

    @rule()
    def windows_end(self) -> None:
        """The standstill windows still open end, and the scheduler makes their awards take
        effect (or sends back those that no longer may)."""
        ends = [round_.standstill_ends_at for round_ in self.rounds_in(RoundStatus.STANDSTILL)]
        if not ends:
            return
        self.clock.set(max(self.clock(), *ends))
        self.attempt(lambda: appeals.apply_due_listings(self.session, self.clock()))

    @rule(pick=st.integers(0, 50))
    def cancel_a_listing(self, pick: int) -> None:
        """Management cancels an announced listing before it takes effect."""
        listings = list(self.session.scalars(
            select(Listing).join(Round).where(Round.status == RoundStatus.STANDSTILL,
                                              Listing.status == ListingStatus.DECIDED)
            .order_by(Listing.id)))
        if not listings:
            return
        listing_id = listings[pick % len(listings)].id
        self.attempt(lambda: appeals.cancel_listing(
            self.session, self.user(self.manager.id), listing_id,
            reason="The client is being merged into another group.", now=self.clock()))

    @rule(rep=st.integers(0, REPS - 1), status=st.sampled_from(["left", "active"]))
    def rep_leaves_or_returns(self, rep: int, status: str) -> None:
        """An admin marks a rep as left (their awards not in force go back to decision; the
        accounts they hold stay theirs) or back as active."""
        person = self.user(self.rep_ids[rep])
        self.attempt(lambda: users.update_user(
            self.session, self.user(self.admin.id), person.id,
            display_name=person.display_name, role=Role.REP, branch_id=person.branch_id,
            status=status, is_active=status == "active", now=self.clock()))

    @rule(rep=st.integers(0, REPS - 1), role=st.sampled_from([Role.KA_MANAGER, Role.REP]))
    def rep_changes_role(self, rep: int, role: str) -> None:
        """An admin makes a rep a KA manager (refused while they hold accounts) or a rep
        again."""
        person = self.user(self.rep_ids[rep])
        self.attempt(lambda: users.update_user(
            self.session, self.user(self.admin.id), person.id,
            display_name=person.display_name, role=role, branch_id=person.branch_id,
            status=person.status, is_active=person.is_active, now=self.clock()))

    @rule(account=st.integers(0, ACCOUNTS - 1), rep=st.integers(0, REPS - 1),
          by_admin=st.booleans())
    def transfer(self, account: int, rep: int, by_admin: bool) -> None:
        actor = self.admin if by_admin else self.manager
        self.attempt(lambda: transfer_account(
            self.session, self.user(actor.id), account_id=self.account_ids[account],
            to_rep_id=self.rep_ids[rep], reason="Coverage plan for the quarter.",
            review_text=REVIEW, now=self.clock()))

    @rule(account=st.integers(0, ACCOUNTS - 1), rep=st.integers(0, REPS - 1))
    def crm_import(self, account: int, rep: int) -> None:
        row = self.session.get(Account, self.account_ids[account])
        data = ("external_id,name,industry,ownership_type,branch,annual_value_yuan,owner\n"
                f"{row.external_id},{row.name},{row.industry},{row.ownership_type},BJ,"
                f"{row.annual_value_yuan},rep{rep}\n").encode()
        self.attempt(lambda: imports.import_file(
            self.session, self.user(self.admin.id), "accounts", "accounts.csv", data,
            valid_rows_only=False, now=self.clock()))

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def nobody_past_capacity(self) -> None:
        if not hasattr(self, "rep_ids"):
            return
        for rep_id, commitments in ownership.commitments_of(self.session, self.rep_ids).items():
            assert commitments.total <= CAPACITY, (rep_id, commitments)

    @invariant()
    def one_award_per_listing(self) -> None:
        per_listing = self.session.execute(
            select(Filing.listing_id, func.count()).where(Filing.listing_id.is_not(None))
            .group_by(Filing.listing_id)).all()
        assert all(count == 1 for _listing, count in per_listing)
        decisions = self.session.execute(
            select(Decision.listing_id, func.count()).group_by(Decision.listing_id)).all()
        assert all(count == 1 for _listing, count in decisions)

    @invariant()
    def only_reps_hold_accounts(self) -> None:
        holders = self.session.scalars(select(User.role).join(Account, Account.owner_id == User.id)
                                       .distinct()).all()
        assert set(holders) <= {Role.REP}, holders

    @invariant()
    def the_register_replays_to_todays_owners_and_verifies(self) -> None:
        report = verify_ledger(self.session)
        assert report.is_intact, report.problems


def test_ownership_invariants_hold_under_random_operations(migrated_template):
    OwnershipMachine.template = migrated_template
    run_state_machine_as_test(OwnershipMachine, settings=settings(
        max_examples=20, stateful_step_count=30, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))

