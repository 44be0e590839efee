"""The demo world: built once through the CLI's set-up, the right size, and reproducible."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Text, cast, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from bidhub import create_app
from bidhub import demo as demo_module
from bidhub.cli import init_database
from bidhub.clock import FrozenClock
from bidhub.db import engine_of, get_session
from bidhub.demo import (
    DEMO_MARKER,
    DEMO_PASSWORD,
    MARKER_BUILDING,
    MARKER_BUILT,
    CrmFile,
    DemoImportFailed,
    DemoRefused,
    build_demo,
    demo_logins,
    has_demo,
    plan_world,
)
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Appeal,
    AppealStatus,
    ApplicationReview,
    Bid,
    BidScore,
    Branch,
    Contact,
    Decision,
    DecisionKind,
    Filing,
    FilingKind,
    ImportRun,
    InstanceMarker,
    Listing,
    ListingStatus,
    LossReviewStatus,
    Opportunity,
    Role,
    Round,
    RoundStatus,
    TrackRecordSnapshot,
    TransferRequest,
    User,
)
from bidhub.services.adjudication import close_due_rounds
from bidhub.services.application_reviews import (
    review_progress,
    reviewers_of,
    reviews_for_bid,
    rounds_to_review,
)
from bidhub.services.fairness import fairness_report
from bidhub.services.filings import DEFAULT_CAPACITY_MAX
from bidhub.services.ledger import verify_ledger
from bidhub.services.track_records import readable_snapshot
from tests.conftest import csrf_token_from
from tests.owner_history import history_problems

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def demo_app(path, now):
    return create_app({"DATABASE_URL": "sqlite:///" + str(path), "TESTING": True,
                       "SECRET_KEY": "test", "CLOCK": FrozenClock(now),
                       "LEDGER_CHECKPOINT_FILE": str(path) + ".checkpoints.jsonl",
                       "LEDGER_KEY": "test-ledger-key"})


def accounts_and_owners(session) -> list[tuple[str, str, str | None]]:
    return list(session.execute(
        select(Account.external_id, Account.name, User.username)
        .outerjoin(User, Account.owner_id == User.id).order_by(Account.external_id)).all())


def run_demo_command(app):
    return app.test_cli_runner().invoke(args=["demo", "--no-serve"])


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    """One demo database for the module's tests, built by `bidhub demo` into an empty one."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    app = demo_app(path, NOW)
    result = run_demo_command(app)
    engine_of(app).dispose()
    assert result.exit_code == 0, result.output
    assert "Building the demo world" in result.output and "rep01" in result.output
    return path


@pytest.fixture(scope="module")
def demo(demo_path):
    # No app context stays pushed: a CLI command run later would take it for its own app's.
    app = demo_app(demo_path, NOW)
    session = app.extensions["bidhub_sessionmaker"]()
    yield session
    session.close()
    engine_of(app).dispose()


def test_the_demo_has_branches_staff_and_reps(demo):
    session = demo
    assert has_demo(session)
    assert sorted(session.scalars(select(Branch.code))) == ["BJ", "GZ", "SH"]
    roles = Counter(session.scalars(select(User.role)))
    assert roles == {Role.REP: 60, Role.KA_MANAGER: 2, Role.ADMIN: 1, Role.EXECUTIVE: 5}
    logins = demo_logins(session)
    assert [username for _, username, _ in logins] == ["admin", "manager", "manager2", "rep01",
                                                       "rep02", "rep03", "president", "kavp",
                                                       "gm_bj"]
    users = {user.username: user for user in session.scalars(select(User))}
    assert users["rep01"].branch.code == "BJ" and users["rep02"].branch.code == "BJ"
    assert users["rep03"].branch.code == "SH"
    assert users["rep01"].display_name == "王伟"
    assert all(user.password_hash == users["admin"].password_hash for user in users.values())
    assert check_password_hash(users["rep01"].password_hash, DEMO_PASSWORD)
    assert sum(user.status == "on_leave" for user in users.values()) == 2
    hired = [user.hired_on for user in users.values() if user.role == Role.REP]
    assert min(hired) >= (NOW - timedelta(days=8 * 366)).date()
    assert max(hired) <= (NOW - timedelta(days=89)).date()


def test_every_name_of_the_demo_carries_its_place_in_pinyin_order(demo):
    """Staff come in as a bulk insert of rows, reps and accounts through the CRM import: each
    way writes the key the pickers order by."""
    from bidhub.domain.collation import name_sort_bytes

    for model, name, key in ((User, User.display_name, User.display_name_sort_key),
                             (Account, Account.name, Account.name_sort_key)):
        rows = demo.execute(select(name, key)).all()
        assert rows and all(stored == name_sort_bytes(text) for text, stored in rows), model


def test_every_rep_holds_25_to_42_accounts_and_some_are_at_capacity(demo):
    session = demo
    held = dict(session.execute(
        select(User.username, func.count(Account.id)).join(Account, Account.owner_id == User.id)
        .group_by(User.username)).all())
    assert len(held) == 60
    assert all(25 <= count <= 42 for count in held.values()), held
    assert held["rep02"] == 40
    assert sum(count >= 40 for count in held.values()) >= 5
    total = session.scalar(select(func.count(Account.id)))
    assert 1900 <= total <= 2100
    assert session.scalar(select(func.count(Account.id)).where(Account.owner_id.is_(None))) > 0
    # An owned account belongs to its owner's branch.
    assert session.scalar(
        select(func.count(Account.id)).join(User, Account.owner_id == User.id)
        .where(User.branch_id != Account.branch_id)) == 0


def test_accounts_have_profiles_and_contacts(demo):
    session = demo
    accounts = session.scalars(select(Account)).all()
    assert len({account.name for account in accounts}) == len(accounts)
    assert all(account.external_id.startswith("KA-") for account in accounts)
    assert {account.ownership_type for account in accounts} == {
        "private", "state_owned", "joint_venture", "government", "listed"}
    assert len({account.industry for account in accounts}) >= 10
    assert {account.executive_sponsor for account in accounts} == {
        None, "president", "ka_vice_president", "branch_general_manager"}
    values = sorted(account.annual_value_yuan for account in accounts)
    assert values[len(values) // 2] < 200_000 and values[-1] >= 1_000_000
    per_account = Counter(session.scalars(select(Contact.account_id)))
    assert set(per_account.values()) <= {2, 3, 4} and len(per_account) == len(accounts)
    makers = session.scalar(select(func.count(func.distinct(Contact.account_id)))
                            .where(Contact.role == "decision_maker"))
    assert makers == len(accounts)


def test_track_records_differ_between_reps(demo):
    session = demo
    outcomes: dict[int, Counter] = {}
    for rep_id, stage in session.execute(select(Opportunity.rep_id, Opportunity.stage)):
        outcomes.setdefault(rep_id, Counter())[stage] += 1
    win_rates = [counts["won"] / (counts["won"] + counts["lost"])
                 for counts in outcomes.values() if counts["won"] + counts["lost"] >= 10]
    assert len(win_rates) >= 40
    assert max(win_rates) - min(win_rates) > 0.4
    statuses = set(session.scalars(select(AccountabilityIncident.status)))
    assert statuses == {"open", "explained", "accepted", "upheld"}
    report = verify_ledger(session)
    assert report.is_intact, report.problems[:5]
    assert report.checkpoints == report.filings


def test_the_demos_register_is_the_history_of_its_owners(demo):
    """Every filing in the demo records a change of owner that happened, from the owner the
    filings before it give; the past direct transfers went through the one change of owner,
    within capacity, with the loss review each one makes due."""
    session = demo
    assert history_problems(session) == []
    transfers = session.scalars(select(Filing).where(
        Filing.kind == FilingKind.DIRECT_TRANSFER).order_by(Filing.seq)).all()
    assert len(transfers) >= 30
    held = Counter()
    for filing in session.scalars(select(Filing).order_by(Filing.seq)):
        held[filing.from_rep_id] -= 1
        held[filing.to_rep_id] += 1
        if filing.kind == FilingKind.DIRECT_TRANSFER:
            assert held[filing.to_rep_id] <= DEFAULT_CAPACITY_MAX, filing.seq
    reviews = {review.filing_seq: review for review in session.scalars(select(AccountReview))}
    for filing in transfers:
        review = reviews[filing.seq]
        assert (review.rep_id, review.account_id) == (filing.from_rep_id, filing.account_id)


def test_an_open_round_a_scored_round_and_a_draft_waiting_for_an_admin(demo):
    session = demo
    rounds = {round_.status: round_ for round_ in session.scalars(select(Round))}
    assert set(rounds) == {RoundStatus.PUBLISHED, RoundStatus.SCORED, RoundStatus.DRAFT,
                           RoundStatus.STANDSTILL, RoundStatus.RESULTS_PUBLISHED,
                           RoundStatus.IN_REVIEW}

    open_round = rounds[RoundStatus.PUBLISHED]
    assert open_round.is_open_at(NOW)
    assert 20 <= len(open_round.listings) <= 40
    open_bids = session.scalar(select(func.count(Bid.id)).join(Listing)
                               .where(Listing.round_id == open_round.id))
    assert open_bids > 0

    scored = rounds[RoundStatus.SCORED]
    assert scored.closes_at < NOW and scored.opens_at == NOW - timedelta(days=14)
    assert 20 <= len(scored.listings) <= 30
    scores = session.scalars(select(BidScore).join(Bid).join(Listing)
                             .where(Listing.round_id == scored.id)).all()
    assert len(scores) >= 3 * 15
    assert any(score.is_proposed_winner for score in scores)
    bid_listings = Counter(session.scalars(select(Bid.listing_id).join(Listing)
                                           .where(Listing.round_id == scored.id)))
    assert len(bid_listings) >= len(scored.listings) * 2 // 3
    # Every release from a rep carries the written review of why it leaves them.
    for listing in scored.listings + open_round.listings:
        assert (listing.review is not None) == (listing.released_from_id is not None)

    draft = rounds[RoundStatus.DRAFT]
    assert any(listing.status == ListingStatus.AWAITING_CONFIRMATION for listing in draft.listings)


def test_sponsors_are_people_with_a_release_and_a_transfer_waiting_for_them(demo):
    session = demo
    executives = {user.username: user for user in session.scalars(
        select(User).where(User.role == Role.EXECUTIVE))}
    assert set(executives) == {"president", "kavp", "gm_bj", "gm_sh", "gm_gz"}
    assert executives["gm_sh"].branch.code == "SH"
    sponsored = session.scalars(select(Account).where(Account.executive_sponsor.is_not(None)))
    # The CRM file gives titles; each resolved to its one holder (a GM: of the account's branch).
    for account in sponsored:
        assert account.sponsor is not None, account.external_id
        assert account.sponsor.executive_title == account.executive_sponsor
        if account.executive_sponsor == "branch_general_manager":
            assert account.sponsor.branch_id == account.branch_id
    waiting_releases = session.scalars(select(Listing).where(
        Listing.status == ListingStatus.AWAITING_CONFIRMATION)).all()
    assert waiting_releases and all(listing.account.sponsor for listing in waiting_releases)
    # As the README's table of demo users says: the releases wait for the Beijing GM.
    assert {listing.account.sponsor.username for listing in waiting_releases} == {"gm_bj"}
    [request] = session.scalars(select(TransferRequest)).all()
    assert request.status == "waiting" and request.sponsor.username == "gm_bj"


def test_a_round_in_its_standstill_window_with_an_appeal_waiting(demo, demo_path):
    session = demo
    announced = session.scalars(select(Round).where(
        Round.status == RoundStatus.STANDSTILL)).one()
    assert announced.results_published_at == NOW - timedelta(days=1)
    assert announced.standstill_ends_at > NOW
    assert all(listing.applied_at is None for listing in announced.listings)
    pending = session.scalars(select(Appeal).where(Appeal.status == AppealStatus.PENDING)).all()
    assert len(pending) == 1 and pending[0].listing.round_id == announced.id
    # Management finds it on the appeals page; a rep reads the window on the announcement.
    app = demo_app(demo_path, NOW)

    def signed_in(username: str):
        client = app.test_client()
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        assert client.post("/login", data={"username": username, "password": DEMO_PASSWORD,
                                           "csrf_token": token}).status_code == 302
        return client

    page = signed_in("manager").get("/manage/appeals").get_data(as_text=True)
    assert pending[0].ground in page and f"/manage/appeals/{pending[0].id}/answer" in page
    rep01 = signed_in("rep01")
    results = rep01.get(f"/rounds/{announced.id}/results")
    assert results.status_code == 200
    assert announced.standstill_ends_at.isoformat() in results.get_data(as_text=True)
    # As the README says: rep01 bid in it without winning, and may appeal from the bid's page.
    [bid] = session.scalars(select(Bid).join(Bid.listing).join(Bid.rep).where(
        Listing.round_id == announced.id, User.username == "rep01")).all()
    assert not bid.score.is_proposed_winner
    page = rep01.get(f"/bids/{bid.id}").get_data(as_text=True)
    assert f'action="/listings/{bid.listing_id}/appeal"' in page
    engine_of(app).dispose()


def signed_in_client(app, username: str):
    client = app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": username, "password": DEMO_PASSWORD,
                                       "csrf_token": token}).status_code == 302
    return client


def test_eight_months_of_rounds_in_force_before_the_current_ones(demo):
    session = demo
    past = session.scalars(select(Round).where(Round.status == RoundStatus.RESULTS_PUBLISHED)
                           .order_by(Round.results_published_at)).all()
    assert len(past) >= 8
    assert [round_.title[:3] for round_ in past] == [f"第{n}期" for n in range(2, 10)]
    # About monthly, from eight months back up to the round in its window (第10期).
    assert past[0].closes_at < NOW - timedelta(days=7 * 30)
    gaps = [(later.closes_at - earlier.closes_at).days
            for earlier, later in zip(past, past[1:], strict=False)]
    assert all(25 <= gap <= 35 for gap in gaps), gaps
    assert past[-1].results_published_at < NOW - timedelta(days=30)
    for round_ in past:
        assert all(listing.applied_at is not None for listing in round_.listings)
    decisions = session.execute(
        select(Decision.kind, Decision.reason, User.username)
        .join(Listing, Decision.listing_id == Listing.id)
        .join(User, Decision.decided_by_id == User.id)
        .where(Listing.round_id.in_([round_.id for round_ in past]))).all()
    kinds = Counter(kind for kind, _, _ in decisions)
    assert kinds[DecisionKind.ACCEPTED] > 2 * (kinds[DecisionKind.OVERRIDDEN]
                                               + kinds[DecisionKind.NO_AWARD])
    overrides = [(reason, who) for kind, reason, who in decisions
                 if kind == DecisionKind.OVERRIDDEN]
    assert len(overrides) >= 3 and {who for _, who in overrides} == {"manager", "manager2"}
    assert all(len(reason) >= 20 for reason, _ in overrides)
    assert kinds[DecisionKind.NO_AWARD] >= 1
    # The reps whose accounts they released wrote their reviews; management closed them.
    released = session.scalars(select(AccountReview).join(
        Listing, Listing.review_id == AccountReview.id).where(
        Listing.round_id.in_([round_.id for round_ in past]))).all()
    assert released and all(review.status == LossReviewStatus.CLOSED for review in released)


def test_the_rules_were_adopted_in_the_order_their_dates_say(demo):
    """The initial rules are dated when the department's records begin, before the first round
    and the adoptions after it: the rules page lists the adoptions newest first, by date too."""
    from bidhub.models import Round
    from bidhub.services.rule_sets import rule_adoptions

    adoptions = rule_adoptions(demo)
    moments = [adoption.at for adoption in adoptions]
    assert moments == sorted(moments, reverse=True)
    initial = adoptions[-1]
    assert initial.actor is None and initial.note == "initial rules"
    assert initial.version.created_at == initial.at
    first_round = demo.scalars(select(Round).order_by(Round.created_at)).first()
    assert initial.at < first_round.created_at


def test_the_fairness_page_shows_every_past_round(demo, demo_path):
    session = demo
    report = fairness_report(session, NOW)
    past = [row for row in report.rounds if row.round.status == RoundStatus.RESULTS_PUBLISHED]
    assert len(past) >= 8 and len(report.rounds) == len(past) + 1  # and 第10期, in its window
    assert all(row.figures.after is not None for row in past)
    # Awards move reps into the band: the count below it falls over the history.
    assert past[-1].figures.after.below < past[0].figures.before.below
    assert sum(row.figures.overridden for row in past) >= 3
    assert {name for name, _ in report.managers} == {"周建国", "吴晓梅"}
    app = demo_app(demo_path, NOW)
    page = signed_in_client(app, "manager").get("/manage/fairness")
    engine_of(app).dispose()
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for row in report.rounds:
        assert f'id="fairness-round-{row.round.id}"' in html and row.round.title in html
    assert "<polyline" in html


def test_a_round_used_blind_review_and_its_reps_read_their_reviews(demo, demo_path):
    session = demo
    reviewed = session.scalars(select(Round).where(Round.title.startswith("第9期"))).one()
    assert reviewed.status == RoundStatus.RESULTS_PUBLISHED
    assert reviewed.rule_set.name == demo_module.REVIEW_PILOT_NAME
    assert "[review]" in reviewed.rule_set.text
    bids = session.scalars(select(Bid).join(Listing).where(Listing.round_id == reviewed.id)
                           ).all()
    assert len(bids) >= 8 and all(bid.review_code for bid in bids)
    reviewers = Counter()
    for bid in bids:
        reviews = session.scalars(select(ApplicationReview)
                                  .where(ApplicationReview.bid_id == bid.id)).all()
        assert len({review.reviewer_id for review in reviews}) >= 2
        assert all(review.note and review.scores for review in reviews)
        reviewers.update(review.reviewer.username for review in reviews)
        # Scored with the reviews: plan_review is one of the stored inputs.
        assert bid.score.inputs["metrics"]["plan_review"] is not None
    assert set(reviewers) == {"manager", "manager2"}
    # The rules after the pilot have no review step: later rounds went straight to scoring.
    later = session.scalars(select(Round).where(Round.title.startswith("第11期"))).one()
    assert "[review]" not in later.rule_set.text
    # rep03 bid in it; after publication she reads the scores and notes, not who wrote them.
    rep03 = session.scalars(select(User).where(User.username == "rep03")).one()
    [bid] = [bid for bid in bids if bid.rep_id == rep03.id]
    shown = reviews_for_bid(session, rep03, bid.id)
    assert len(shown) >= 2
    assert all(review.note and review.reviewer_name is None for review in shown)
    app = demo_app(demo_path, NOW)
    page = signed_in_client(app, "rep03").get(f"/bids/{bid.id}")
    # Management reads the same reviews with their reviewers on the listing page.
    listing_page = signed_in_client(app, "manager").get(f"/manage/listings/{bid.listing_id}")
    engine_of(app).dispose()
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert all(review.note in html for review in shown)
    assert "周建国" not in html and "吴晓梅" not in html
    html = listing_page.get_data(as_text=True)
    assert all(review.note in html for review in shown)
    assert "周建国" in html and "吴晓梅" in html


def test_a_round_waits_in_blind_review_reviewed_by_manager2_and_left_to_manager(demo,
                                                                               demo_path):
    session = demo
    [waiting] = session.scalars(select(Round).where(Round.status == RoundStatus.IN_REVIEW)).all()
    assert waiting.title == demo_module.IN_REVIEW_TITLE
    assert NOW - timedelta(days=2) < waiting.closes_at < NOW
    assert waiting.rule_set.name == demo_module.REVIEW_PILOT_NAME
    assert waiting.review_closed_at is None
    assert {user.username for user in reviewers_of(session, waiting.id)} == {"manager",
                                                                              "manager2"}
    bids = session.scalars(select(Bid).join(Listing).where(Listing.round_id == waiting.id)
                           ).all()
    assert 8 <= len(bids) <= 16 and all(bid.review_code and bid.score is None for bid in bids)
    assert all(count >= 2 for count in Counter(bid.listing_id for bid in bids).values())
    bidders = {bid.rep for bid in bids}
    assert "rep03" in {rep.username for rep in bidders}
    reviews = session.execute(
        select(ApplicationReview.bid_id, User.username)
        .join(User, ApplicationReview.reviewer_id == User.id)
        .where(ApplicationReview.bid_id.in_([bid.id for bid in bids]))).all()
    assert sorted(bid_id for bid_id, _ in reviews) == sorted(bid.id for bid in bids)
    assert {username for _, username in reviews} == {"manager2"}
    assert all(NOW - timedelta(days=1) < review.submitted_at < NOW for review in session.scalars(
        select(ApplicationReview).where(ApplicationReview.bid_id.in_([bid.id for bid in bids]))))
    # The scheduler (in `bidhub demo` too) leaves it in review: scoring waits for manager.
    assert close_due_rounds(session, NOW) == []
    assert session.get(Round, waiting.id).status == RoundStatus.IN_REVIEW

    progress = review_progress(session, waiting.id)
    assert (progress.bid_count, progress.complete_count, progress.min_reviews_per_bid) == (
        len(bids), 0, 2)
    assert sorted((user.username, count) for user, count in progress.by_reviewer) == [
        ("manager", 0), ("manager2", len(bids))]
    users = {user.username: user for user in session.scalars(
        select(User).where(User.username.in_(["manager", "manager2"])))}
    [entry] = rounds_to_review(session, users["manager"])
    assert entry.round.id == waiting.id and entry.reviewed_count == 0
    assert entry.application_count == len(bids)
    assert [entry.reviewed_count for entry in rounds_to_review(session, users["manager2"])] == [
        len(bids)]
    notes = {note for pair in demo_module.REVIEW_NOTES for note in pair}
    app = demo_app(demo_path, NOW)
    manager = signed_in_client(app, "manager")
    code = bids[0].review_code
    # rep03 finds her bid in it on My bids, in blind review and sealed.
    my_bids = signed_in_client(app, "rep03").get("/my/bids").get_data(as_text=True)
    assert waiting.title in my_bids and "匿名评审中" in my_bids
    pages = {path: manager.get(path) for path in (
        "/review/", f"/review/rounds/{waiting.id}", f"/review/rounds/{waiting.id}/{code}",
        f"/manage/rounds/{waiting.id}")}
    engine_of(app).dispose()
    htmls = {path: page.get_data(as_text=True) for path, page in pages.items()}
    assert {page.status_code for page in pages.values()} == {200}, {
        path: page.status_code for path, page in pages.items()}
    assert waiting.title in htmls["/review/"]
    assert f'<span class="badge badge-overridden">{len(bids)}</span>' in htmls["/review/"]
    queue = htmls[f"/review/rounds/{waiting.id}"]
    assert all(bid.review_code in queue for bid in bids)
    application = htmls[f"/review/rounds/{waiting.id}/{code}"]
    assert bids[0].account_plan in application and 'name="note"' in application
    # manager2's reviews stay hidden from manager until he has submitted his own.
    assert not [note for note in notes for html in htmls.values() if note in html]
    round_page = htmls[f"/manage/rounds/{waiting.id}"]
    for marker in ('id="blind-review"', 'id="review-progress"', 'id="review-reviewers"',
                   'id="close-review"', "吴晓梅", "周建国"):
        assert marker in round_page, marker
    # Nothing about the bidders shows on any of these pages.
    for rep in bidders:
        for html in htmls.values():
            assert rep.display_name not in html and rep.username not in html
            assert rep.external_id not in html


def test_past_winners_have_promises_to_keep_and_bids_are_not_flagged_for_stale_data(demo):
    from bidhub.domain.flags import STALE_CRM
    from bidhub.services.flags import second_look_flags

    session = demo
    won = session.execute(
        select(Bid.rep_id, Listing.account_id).join(Decision, Decision.bid_id == Bid.id)
        .join(Listing, Decision.listing_id == Listing.id)
        .where(Listing.applied_at.is_not(None))).all()
    assert len(won) >= 20
    with_deals = {(rep_id, account_id) for rep_id, account_id in session.execute(
        select(Opportunity.rep_id, Opportunity.account_id).where(Opportunity.stage == "won"))}
    assert sum(pair in with_deals for pair in won) >= len(won) * 3 // 4
    # A forecast export arrives every month, so no bid rests on CRM data a month old.
    for round_ in session.scalars(select(Round).where(Round.status.in_(
            [RoundStatus.SCORED, RoundStatus.STANDSTILL, RoundStatus.RESULTS_PUBLISHED]))):
        flags = second_look_flags(session, round_)
        assert not [flag for found in flags.values() for flag in found
                    if flag.kind == STALE_CRM], round_.title


def test_every_active_rep_has_a_stored_track_record_when_the_build_ends(demo):
    # The demo's last imports drop the snapshots of the reps they bring deals for; the first
    # pages and bids after the build read stored ones, as after the scheduler's refresh.
    session = demo
    stored = dict(session.execute(
        select(TrackRecordSnapshot.rep_id, cast(TrackRecordSnapshot.history, Text))).all())
    reps = session.scalars(select(User.id).where(User.role == Role.REP, User.is_active)).all()
    assert len(reps) >= 40
    assert [rep_id for rep_id in reps if not readable_snapshot(stored.get(rep_id))] == []


def test_building_again_changes_nothing(demo):
    session = demo
    before = session.scalar(select(func.count(Account.id)))
    build_demo(session, NOW)
    assert session.scalar(select(func.count(Account.id))) == before


def test_the_plan_depends_only_on_the_seed():
    first, second = plan_world(), plan_world()
    assert first == second
    assert plan_world(seed=7).accounts != first.accounts


def test_two_builds_give_the_same_accounts_and_owners(demo, tmp_path):
    later = NOW + timedelta(days=3)
    app = demo_app(tmp_path / "again.sqlite3", later)
    with app.app_context():
        init_database(app)
        session = get_session()
        build_demo(session, later)
        again = accounts_and_owners(session)
        session.rollback()
    engine_of(app).dispose()
    assert again == accounts_and_owners(demo)


def test_the_crm_data_arrives_through_the_imports(demo):
    session = demo
    runs = session.scalars(select(ImportRun).order_by(ImportRun.id)).all()
    # The roster that brought the hire dates the first load lacked comes next; the forecasts
    # month by month; the deals won on the past rounds' accounts last.
    assert [(run.kind, run.status) for run in runs] == [
        (kind, "imported") for kind in ("reps", "reps", "accounts", "opportunities",
                                        *["forecasts"] * 12, "incidents", "opportunities")]
    first_load, roster = runs[0], runs[1]
    assert (first_load.added, roster.added, roster.updated) == (60, 0, roster.rows_total)
    assert first_load.finished_at < roster.finished_at <= NOW
    # Every hire date came with a file of that day or later, as a reps import requires.
    hired = dict(session.execute(select(User.external_id, User.hired_on)
                                 .where(User.external_id.is_not(None))).all())
    assert None not in hired.values()
    latest = max(hired.values())
    assert latest <= roster.finished_at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    first_day = first_load.finished_at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert sum(day > first_day for day in hired.values()) == roster.rows_total > 0
    forecasts = [run.finished_at for run in runs if run.kind == "forecasts"]
    assert forecasts == sorted(forecasts) and forecasts[-1] <= NOW
    assert all(27 <= (later - earlier).days <= 31
               for earlier, later in zip(forecasts, forecasts[1:], strict=False))
    assert all(run.skipped == 0 and not run.report["problems"] for run in runs)
    admin_id = session.scalar(select(User.id).where(User.username == "admin"))
    assert {run.actor_id for run in runs} == {admin_id}
    # The initial load files every account that arrives with an owner.
    owned = sum(account.owner is not None for account in plan_world().accounts)
    crm_filings = session.scalar(select(func.count(Filing.seq))
                                 .where(Filing.kind == FilingKind.CRM_IMPORT))
    assert crm_filings == owned
    assert session.scalar(select(func.count(User.id)).where(User.external_id.is_not(None))) == 60


def test_a_refused_row_stops_the_build(tmp_path, monkeypatch):
    real = demo_module.crm_files

    def broken(world, now):
        files = real(world, now)
        reps = files["reps"]
        text = reps.data.decode("utf-8-sig").replace(",SH,", ",XX,", 1)
        files["reps"] = CrmFile(reps.name, text.encode("utf-8-sig"), reps.rows)
        return files

    monkeypatch.setattr(demo_module, "crm_files", broken)
    app = demo_app(tmp_path / "broken.sqlite3", NOW)
    with app.app_context():
        init_database(app)
        session = get_session()
        with pytest.raises(DemoImportFailed, match=r"(?s)reps import .* refused.*row \d+, branch 'XX'"):
            build_demo(session, NOW)
        session.rollback()
    engine_of(app).dispose()


# --- the demo never touches a database it did not build -----------------------------------


def dump(path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def test_the_demo_marks_the_database_it_built(demo):
    marker = demo.get(InstanceMarker, DEMO_MARKER)
    assert marker is not None and marker.value == MARKER_BUILT


def test_the_command_on_the_demos_own_database_builds_nothing_again(demo_path):
    before = dump(demo_path)
    app = demo_app(demo_path, NOW + timedelta(days=1))
    result = run_demo_command(app)
    engine_of(app).dispose()
    assert result.exit_code == 0, result.output
    assert "Demo data already present." in result.output
    assert dump(demo_path) == before


REAL_HASH = generate_password_hash("the real rep's own password", method="pbkdf2:sha256:1000")


def add_real_user(session, username: str, role: str) -> None:
    session.add(User(username=username, display_name="A real person", password_hash=REAL_HASH,
                     role=role, is_active=True, status="active", session_token="t" * 32,
                     failed_login_count=0, created_at=NOW))


def add_real_account(session) -> None:
    branch = Branch(code="HQ", name="Head office")
    session.add(branch)
    session.flush()
    session.add(Account(external_id="REAL-1", name="A real client", industry="Retail",
                        ownership_type="private", branch_id=branch.id, annual_value_yuan=1,
                        owner_id=None, created_at=NOW))


REAL_DATA = {
    "a rep with their own password": lambda session: add_real_user(session, "alice", Role.REP),
    "a user called admin": lambda session: add_real_user(session, "admin", Role.ADMIN),
    "an account": add_real_account,
    "an unfinished demo build": lambda session: session.add(InstanceMarker(
        name=DEMO_MARKER, value=MARKER_BUILDING, created_at=NOW)),
}


@pytest.fixture
def real_database(tmp_path, request):
    """A migrated database holding something the demo did not create."""
    path = tmp_path / "real.sqlite3"
    app = demo_app(path, NOW)
    with app.app_context():
        init_database(app)
        session = get_session()
        REAL_DATA[request.param](session)
        session.commit()
    engine_of(app).dispose()
    return path


@pytest.mark.parametrize("real_database", list(REAL_DATA), indirect=True)
def test_the_command_refuses_a_database_it_did_not_build_and_writes_nothing(real_database):
    before = dump(real_database)
    app = demo_app(real_database, NOW)
    result = run_demo_command(app)
    engine_of(app).dispose()
    assert result.exit_code != 0, result.output
    assert "Error:" in result.output and "nothing was written" in result.output
    assert "Demo logins" not in result.output
    assert dump(real_database) == before


@pytest.mark.parametrize("real_database", ["a rep with their own password"], indirect=True)
def test_building_into_a_real_database_is_refused_and_resets_no_password(real_database):
    app = demo_app(real_database, NOW)
    with app.app_context():
        session = get_session()
        with pytest.raises(DemoRefused, match="did not create"):
            build_demo(session, NOW)
        assert not has_demo(session)
        users = session.scalars(select(User)).all()
        assert [(user.username, user.password_hash) for user in users] == [("alice", REAL_HASH)]
        assert session.scalar(select(func.count(Filing.seq))) == 0
        session.rollback()
    engine_of(app).dispose()


def test_an_unmigrated_database_with_data_is_refused_before_migrating(tmp_path):
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT)")
    connection.execute("INSERT INTO users (username) VALUES ('alice')")
    connection.commit()
    connection.close()
    before = dump(path)
    app = demo_app(path, NOW)
    result = run_demo_command(app)
    engine_of(app).dispose()
    assert result.exit_code != 0 and "did not create" in result.output
    assert dump(path) == before
