"""Flags before adjudication: stale CRM data, a metric outlier and a password reset during the
round, on the manager's round page and listing page, configured by the rules' [flags]."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bidhub.domain.flags import FlagRules
from bidhub.domain.rules import RuleError, parse_rules
from bidhub.models import Bid, BidScore, ImportRun, Round
from bidhub.services import adjudication, users
from bidhub.services.flags import second_look_flags
from bidhub.services.rule_sets import active_rule_set, adopt_rule_set
from tests.conftest import reload

Flag = adjudication.Flag


def adopt_flags(session, clock, section: str) -> None:
    """Make the active rules the default ones plus a [flags] section (new rounds pin them)."""
    text = active_rule_set(session).text + "\n[flags]\n" + section
    adopt_rule_set(session, None, text, "with flags", "flags for the tests", clock())
    session.commit()


def import_run(session, finished_at, *, kind: str = "opportunities",
               status: str = "imported") -> None:
    session.add(ImportRun(kind=kind, filename=f"{kind}.csv", sha256="0" * 64, actor_id=None,
                          status=status, report={}, started_at=finished_at,
                          finished_at=finished_at))
    session.commit()


def score(session, clock, round_) -> dict:
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)
    return adjudication.review_round(session, session.get(Round, round_.id))


def kinds(flags, bid) -> list[str]:
    return [found.kind for found in flags.get(bid.id, ())]


def test_a_bid_on_crm_data_older_than_the_rules_allow_is_flagged_the_boundary_is_not(
        session, clock, make_rep, make_account, make_round, make_bid):
    adopt_flags(session, clock, "stale_crm_days = 10\n")
    on_the_day, a_second_late, fresh = make_rep(name="Ann"), make_rep(name="Bob"), make_rep()
    round_ = make_round(accounts=[make_account()])
    listing = round_.listings[0]
    import_run(session, clock() - timedelta(days=10))
    # Newer runs that fed no track record, or were refused, do not make the data fresh.
    import_run(session, clock() - timedelta(days=1), kind="accounts")
    import_run(session, clock() - timedelta(days=1), status="refused")
    exactly = make_bid(on_the_day, listing)  # exactly 10 days after the import
    clock.advance(seconds=1)
    late = make_bid(a_second_late, listing)
    clock.advance(minutes=1)
    import_run(session, clock(), kind="forecasts")  # forecasts feed the track record too
    clock.advance(hours=1)
    current = make_bid(fresh, listing)
    reviews = score(session, clock, round_)
    flags = second_look_flags(session, session.get(Round, round_.id))
    assert kinds(flags, exactly) == [] and kinds(flags, current) == []
    assert kinds(flags, late) == [Flag.STALE_CRM]
    note = str(flags[late.id][0].note)
    assert "10.0 days old" in note and "the rules allow 10" in note
    review = reviews[listing.id]
    assert Flag.STALE_CRM in review.flags and not review.accepts_unflagged
    assert [bid.rep.display_name for bid, _ in review.flagged_bids(Flag.STALE_CRM)] == ["Bob"]


def test_without_any_crm_import_nothing_is_stale_a_bid_before_the_first_import_is(
        session, clock, make_rep, make_account, make_round, make_bid):
    round_ = make_round(accounts=[make_account()])
    early = make_bid(make_rep(), round_.listings[0])
    score(session, clock, round_)
    round_ = session.get(Round, round_.id)
    # Track records loaded by other means have no import history to be judged by.
    assert second_look_flags(session, round_) == {}
    import_run(session, clock())  # the first CRM import, after the bid
    flags = second_look_flags(session, round_)
    assert kinds(flags, early) == [Flag.STALE_CRM]
    assert "had been imported when this bid was submitted" in str(flags[early.id][0].note)


WIN_RATES = [0.40, 0.42, 0.45, 0.47, 0.50, 0.52, 0.55, 0.58]


@pytest.fixture
def branch_round(session, clock, make_branch, make_rep, make_account, make_round, make_bid):
    """A round with one listing: nine Beijing reps (eight ordinary win rates and one of 0.99),
    and one Shanghai rep with 0.99 too. Every track record is written as frozen."""
    shanghai = make_branch("SH", "Shanghai")

    def bid(rep, listing, **metrics):
        made = make_bid(rep, listing)
        made.track_record = {**made.track_record, "open_incidents": 0.0, **metrics}
        session.commit()
        return made

    def build(extra_rules: str = ""):
        if extra_rules:
            adopt_flags(session, clock, extra_rules)
        round_ = make_round(accounts=[make_account()])
        listing = round_.listings[0]
        ordinary = [bid(make_rep(), listing, win_rate=rate) for rate in WIN_RATES]
        star = bid(make_rep(name="Star"), listing, win_rate=0.99, open_incidents=2.0)
        other_branch = bid(make_rep(branch=shanghai), listing, win_rate=0.99)
        score(session, clock, round_)
        return session.get(Round, round_.id), ordinary, star, other_branch

    return build


def test_a_metric_far_outside_the_branch_is_flagged_with_its_name_and_value(
        session, branch_round):
    round_, ordinary, star, other_branch = branch_round()
    flags = second_look_flags(session, round_)
    assert kinds(flags, star) == [Flag.METRIC_OUTLIER]  # not open_incidents: no spread there
    note = str(flags[star.id][0].note)
    assert note.startswith("Win rate is 0.990, far above the branch's median of 0.500")
    assert "among 9 reps' latest bids" in note
    assert all(kinds(flags, bid) == [] for bid in ordinary)
    assert kinds(flags, other_branch) == []  # one Shanghai rep: too small a sample
    review = adjudication.review_round(session, round_)[round_.listings[0].id]
    assert review.flags == (Flag.METRIC_OUTLIER,)


def test_only_each_reps_latest_bid_makes_the_branchs_spread(session, clock, make_rep,
                                                            make_account, make_round, make_bid):
    """Every ordinary rep first bid in another round with a record like the star's; had their
    earlier bids counted, the star would sit at the branch's median."""
    def bid(rep, listing, **metrics):
        made = make_bid(rep, listing)
        made.track_record = {**made.track_record, "open_incidents": 0.0, **metrics}
        session.commit()
        return made

    earlier = make_round(accounts=[make_account()])
    reps = [make_rep() for _ in WIN_RATES]
    for rep in reps:
        bid(rep, earlier.listings[0], win_rate=0.99)
    clock.advance(hours=1)
    round_ = make_round(accounts=[make_account()])
    listing = round_.listings[0]
    ordinary = [bid(rep, listing, win_rate=rate) for rep, rate in zip(reps, WIN_RATES, strict=True)]
    star = bid(make_rep(name="Star"), listing, win_rate=0.99)
    score(session, clock, round_)
    flags = second_look_flags(session, session.get(Round, round_.id))
    assert kinds(flags, star) == [Flag.METRIC_OUTLIER]
    assert all(kinds(flags, made) == [] for made in ordinary)


BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("earlier_bids_at", "counted"), [
    (datetime(2028, 2, 29, 23, 59, tzinfo=BEIJING), False),
    (datetime(2028, 3, 1, 0, 31, tzinfo=BEIJING), True),
])
def test_the_branchs_window_counts_months_on_the_departments_calendar(
        session, clock, login_as, make_manager, make_rep, make_account, make_round, make_bid,
        earlier_bids_at, counted):
    """A round closing at 00:30 on 1 March 2029 in Beijing (16:30 UTC on 28 February): its
    branch's distribution is the twelve months since 00:30 on 1 March 2028 there. Counted on
    UTC clocks the window began at 16:30 UTC on 28 February 2028, 00:30 on 29 February in
    Beijing, and a leap day's bids made the star an outlier among reps whose latest bid was
    more than twelve of Beijing's months old."""
    def bid(rep, listing, **metrics):
        made = make_bid(rep, listing)
        made.track_record = {**made.track_record, "open_incidents": 0.0, **metrics}
        session.commit()
        return made

    clock.set(earlier_bids_at.astimezone(UTC))
    earlier = make_round(accounts=[make_account()])
    for rate in WIN_RATES:
        bid(make_rep(), earlier.listings[0], win_rate=rate)
    manager = make_manager()
    clock.set(datetime(2029, 2, 28, 9, 0, tzinfo=BEIJING).astimezone(UTC))
    round_ = make_round(accounts=[make_account()], manager=manager,
                        closes_at=datetime(2029, 3, 1, 0, 30, tzinfo=BEIJING).astimezone(UTC))
    star = bid(make_rep(name="Star"), round_.listings[0], win_rate=0.99)
    review = score(session, clock, round_)[round_.listings[0].id]
    round_ = session.get(Round, round_.id)
    expected = [Flag.METRIC_OUTLIER] if counted else []
    assert kinds(second_look_flags(session, round_, zone="Asia/Shanghai"), star) == expected
    assert (Flag.METRIC_OUTLIER in review.flags) is counted
    # The round page reads them in the app's zone.
    html = login_as(manager).get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    assert ('data-flag="metric_outlier"' in html) is counted


def test_too_small_a_sample_for_the_rules_is_never_an_outlier(session, branch_round):
    round_, _, star, _ = branch_round("outlier_min_sample = 10\n")
    assert kinds(second_look_flags(session, round_), star) == []


def test_a_wider_threshold_lets_the_value_pass(session, branch_round):
    round_, _, star, _ = branch_round("outlier_mads = 20\n")
    assert kinds(second_look_flags(session, round_), star) == []


def test_flags_change_no_score_or_rank(session, clock, branch_round):
    round_, ordinary, star, other_branch = branch_round()
    bids = [*ordinary, star, other_branch]

    def scores():
        reload(session)
        return {row.bid_id: (row.total, row.rank, row.is_proposed_winner)
                for row in session.scalars(select(BidScore))}

    before = scores()
    import_run(session, clock())  # every bid of the round is now on stale data too
    assert all(Flag.STALE_CRM in kinds(second_look_flags(session, round_), bid) for bid in bids)
    adjudication.review_round(session, round_)
    assert scores() == before


def test_a_password_reset_during_the_round_is_still_flagged(
        session, clock, make_admin, make_rep, make_account, make_round, make_bid):
    round_ = make_round(accounts=[make_account()])
    reset, untouched = make_rep(name="Reset"), make_rep()
    reset_bid, other_bid = make_bid(reset, round_.listings[0]), make_bid(untouched,
                                                                         round_.listings[0])
    users.set_password(session, make_admin(), reset.id, "a temporary password 2026", clock())
    review = score(session, clock, round_)[round_.listings[0].id]
    assert Flag.RESET_BY_ADMIN in review.flags
    flags = second_look_flags(session, session.get(Round, round_.id))
    assert kinds(flags, reset_bid) == [Flag.RESET_BY_ADMIN] and kinds(flags, other_bid) == []
    assert "could have signed in as the rep" in str(flags[reset_bid.id][0].note)


@pytest.fixture
def flagged_round(session, clock, make_manager, make_admin, make_rep, make_account,
                  make_round, make_bid):
    """A scored round with a listing whose bids carry all three flags, and a clean listing."""
    manager = make_manager()
    round_ = make_round(accounts=[make_account(), make_account()], manager=manager,
                        closes_at=clock() + timedelta(days=41))
    flagged, clean = sorted(round_.listings, key=lambda listing: listing.id)
    import_run(session, clock() - timedelta(days=3))
    stale_rep, reset_rep = make_rep(name="Stale Sam"), make_rep(name="Reset Rita")
    make_bid(make_rep(name="Clean Carl"), clean)
    make_bid(reset_rep, flagged)
    clock.advance(days=40)  # the round is long; Sam bids on data 43 days old
    import_run(session, clock() - timedelta(days=2), kind="branches")
    make_bid(stale_rep, flagged)
    users.set_password(session, make_admin(), reset_rep.id, "a temporary password 2026", clock())
    score(session, clock, round_)
    return {"manager": manager, "round": round_, "flagged": flagged, "clean": clean}


def row_of(html: str, listing) -> str:
    return re.search(rf'<tr id="decision-{listing.id}".*?</tr>', html, re.S).group(0)


def test_the_round_page_shows_each_flag_as_a_badge_explaining_which_bid(
        login_as, flagged_round):
    client = login_as(flagged_round["manager"])
    html = client.get(f"/manage/rounds/{flagged_round['round'].id}").get_data(as_text=True)
    row = row_of(html, flagged_round["flagged"])
    stale = re.search(r'<span [^>]*data-flag="stale_crm"[^>]*>', row).group(0)
    assert "Stale Sam: The newest CRM import" in stale and "43.0 days old" in stale
    assert "Stale CRM data</span>" in row
    reset = re.search(r'<span [^>]*data-flag="reset_by_admin"[^>]*>', row).group(0)
    assert "Reset Rita: An admin set this rep&#39;s password" in reset
    assert "data-flag" not in row_of(html, flagged_round["clean"])


def test_the_listing_page_shows_the_flags_of_each_bid(login_as, flagged_round):
    client = login_as(flagged_round["manager"])
    html = client.get(f"/manage/listings/{flagged_round['flagged'].id}").get_data(as_text=True)
    rows = {name: next(row for row in html.split("<tr")[1:] if name in row)
            for name in ("Stale Sam", "Reset Rita")}
    assert 'data-flag="stale_crm"' in rows["Stale Sam"]
    assert 'data-flag="reset_by_admin"' not in rows["Stale Sam"]
    assert 'data-flag="reset_by_admin"' in rows["Reset Rita"]
    assert "Password reset by an admin during the round" in rows["Reset Rita"]
    assert "Worth a second look" in html and "43.0 days old" in html
    clean = client.get(f"/manage/listings/{flagged_round['clean'].id}").get_data(as_text=True)
    assert "data-flag" not in clean and "Worth a second look" not in clean


def test_the_flags_read_in_chinese(login_as, flagged_round):
    client = login_as(flagged_round["manager"])
    zh = {"Accept-Language": "zh-CN"}
    html = client.get(f"/manage/rounds/{flagged_round['round'].id}",
                      headers=zh).get_data(as_text=True)
    row = row_of(html, flagged_round["flagged"])
    assert "CRM数据过期" in row and "最新一次CRM导入" in row
    listing = client.get(f"/manage/listings/{flagged_round['flagged'].id}",
                         headers=zh).get_data(as_text=True)
    assert "CRM数据过期" in listing and "值得再看一眼" in listing


def test_no_flag_shows_while_bids_are_sealed(session, clock, login_as, make_manager, make_rep,
                                             make_account, make_round, make_bid):
    manager = make_manager()
    round_ = make_round(accounts=[make_account()], manager=manager)
    make_bid(make_rep(name="Early Eve"), round_.listings[0])
    import_run(session, clock())  # Eve's bid is on no CRM data at all
    client = login_as(manager)
    for url in (f"/manage/rounds/{round_.id}", f"/manage/listings/{round_.listings[0].id}"):
        html = client.get(url).get_data(as_text=True)
        assert "data-flag" not in html and "Early Eve" not in html


def test_the_rules_flags_section_defaults_and_keys():
    base = open_default_rules()
    assert parse_rules(base).flags == FlagRules(30, 3.5, 8)
    written = parse_rules(base + "\n[flags]\nstale_crm_days = 14\noutlier_mads = 2.5\n"
                                 "outlier_min_sample = 12\n")
    assert written.flags == FlagRules(14, 2.5, 12)
    # A file without the section keeps its version: the defaults are not part of the hash.
    assert parse_rules(base).version_hash != written.version_hash
    assert parse_rules(base).version_hash == parse_rules(base + "\n# a comment\n").version_hash


@pytest.mark.parametrize(("section", "key", "reason"), [
    ("stale_crm_days = 0", "flags.stale_crm_days", "must be at least 1, got 0"),
    ("stale_crm_days = 7.5", "flags.stale_crm_days", "expected a whole number"),
    ("stale_crm_days = 99999", "flags.stale_crm_days", "must be at most 3,650"),
    ("outlier_mads = 0", "flags.outlier_mads", "must be above 0"),
    ('outlier_mads = "far"', "flags.outlier_mads", "expected a number, got a string"),
    ("outlier_min_sample = 2", "flags.outlier_min_sample", "must be at least 3"),
    ("outlier_min_sample = true", "flags.outlier_min_sample", "expected a whole number"),
    ("stale_days = 3", "flags.stale_days", "unknown key 'stale_days' (did you mean"),
])
def test_a_wrong_flags_key_is_refused_with_its_name_and_reason(section, key, reason):
    with pytest.raises(RuleError) as refused:
        parse_rules(open_default_rules() + "\n[flags]\n" + section + "\n")
    assert key in str(refused.value) and reason in str(refused.value)
    with pytest.raises(RuleError) as refused:
        parse_rules("flags = 3\n" + open_default_rules())
    assert "expected a table [flags]" in str(refused.value)


def open_default_rules() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parent.parent / "rules" / "default.toml").read_text("utf-8")


def test_garbage_never_gives_a_server_error(session, login_as, make_admin, make_manager,
                                            flagged_round):
    admin = login_as(make_admin())
    for section in ("stale_crm_days = -1e400", "outlier_mads = nan", "outlier_mads = inf",
                    "outlier_min_sample = [1, 2]", "stale_crm_days = {a = 1}", "= ="):
        text = active_rule_set(session).text + "\n[flags]\n" + section + "\n"
        response = admin.post("/admin/rules/check", data={"text": text})
        assert response.status_code < 500
        assert "flags" in response.get_data(as_text=True) or "syntax" in response.get_data(
            as_text=True)
    manager = login_as(flagged_round["manager"])
    for url in ("/manage/listings/0", "/manage/listings/99999999999999999999",
                "/manage/rounds/-1", "/manage/listings/abc",
                f"/manage/rounds/{flagged_round['round'].id}?sort=%00&branch=x"):
        assert manager.get(url).status_code < 500
    # A frozen track record holding something other than numbers is no outlier and no error.
    reload(session)
    bid = session.scalars(select(Bid)).first()
    bid.track_record = {"win_rate": "high", "open_incidents": None, "retention": True}
    session.commit()
    assert manager.get(f"/manage/rounds/{flagged_round['round'].id}").status_code == 200
    assert manager.get(f"/manage/listings/{bid.listing_id}").status_code == 200


def test_a_stored_record_holding_a_number_beyond_the_float_range_is_no_data():
    """A frozen record whose metric is an integer too large for a float (written into the
    database by hand) makes no spread of its branch fail: it is no data, as in the scoring."""
    from pathlib import Path

    from bidhub.services.flags import FlagInputs, flags_from

    rules = parse_rules((Path(__file__).parent.parent / "rules" / "default.toml")
                        .read_text(encoding="utf-8"))
    reference = tuple((1, f'{{"win_rate": {n / 10}}}') for n in range(8))
    reference += ((1, '{"win_rate": 1' + "0" * 400 + "}"),)
    assert flags_from(rules, [], FlagInputs((), frozenset(), reference)) == {}
