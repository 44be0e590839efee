"""Every way an account changes hands is filed, once, and nothing else is: each use case that
can move an account is run through its page or service, and the database alone is then read
to see that the register holds exactly the changes of owner made (tests/owner_history.py)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from bidhub.models import (
    Account,
    Appeal,
    DecisionKind,
    FilingKind,
    ListingStatus,
    Round,
    TransferRequest,
    User,
)
from bidhub.services import adjudication, appeals, filings, imports, rounds, sponsors
from tests.conftest import client_of, release_on_round_page, reload, user_form_fingerprint
from tests.owner_history import Watch, appeals_of, history_problems
from tests.test_appeals import results_in_force, use_window

REASON = "The rep moves to the Shanghai team."
REVIEW = "Handover planned with the client's purchaser."
GROUND = "My plan covers the client's three plants; please read it again."
ANSWER = "We read the plan again; the ranking stands on the track record."
OVERRIDE = "Knows the group's buyers from an earlier project."


def transfer_data(account, to_rep, owner, **changes) -> dict:
    return {"account": str(account.id), "to_rep": str(to_rep.id),
            "owner": str(owner.id) if owner else "none", "reason": REASON,
            "review_text": REVIEW, **changes}


@pytest.fixture
def scored(session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    """A scored round: one listing per entry of `bidders`, bid for by those reps (none: nobody
    bid), owned by `owner`; the clock is an hour past its deadline."""

    def make(*bidders, owner=None):
        owner = owner or make_rep()
        round_ = make_round(accounts=[make_account(owner=owner) for _ in bidders],
                            closes_at=clock() + timedelta(hours=1),
                            opens_at=clock() - timedelta(hours=2))
        for listing, reps in zip(round_.listings, bidders, strict=True):
            for rep in reps:
                make_bid(rep, listing)
        clock.advance(hours=1)
        assert adjudication.score_closed_round(session, round_.id, clock())
        reload(session)
        return session.get(Round, round_.id)

    return make


# --- direct transfers ---------------------------------------------------------------------------

def test_a_direct_transfer_files_the_one_change_it_makes(app, session, make_rep, make_manager,
                                                         make_account):
    owner, receiver = make_rep(), make_rep()
    account, untouched = make_account(owner=owner), make_account(owner=owner)
    manager = make_manager()
    watch = Watch(session)
    response = client_of(app, manager).post("/manage/transfer",
                                            data=transfer_data(account, receiver, owner))
    assert response.status_code == 303
    [filing] = watch.filed()
    assert (filing.kind, filing.account_id, filing.from_rep_id, filing.to_rep_id) == (
        FilingKind.DIRECT_TRANSFER, account.id, owner.id, receiver.id)
    assert (filing.reason, filing.decided_by_id, filing.round_id, filing.listing_id) == (
        REASON, manager.id, None, None)
    reload(session)
    assert session.get(Account, untouched.id).owner_id == owner.id


def test_a_transfer_that_is_refused_files_nothing(app, session, make_rep, make_manager,
                                                  make_account, give_accounts):
    owner, full = make_rep(), make_rep()
    give_accounts(full, 40)
    account = make_account(owner=owner)
    client = client_of(app, make_manager())
    watch = Watch(session)
    for data, status in ((transfer_data(account, full, owner), 422),  # past capacity
                         (transfer_data(account, owner, owner), 422),  # to its own rep
                         (transfer_data(account, make_rep(), full), 409),  # a stale summary
                         (transfer_data(account, make_rep(), owner, reason="short"), 422)):
        assert client.post("/manage/transfer", data=data).status_code == status
    watch.nothing_filed()


def test_a_transfer_that_fails_after_filing_leaves_no_filing_and_no_checkpoint(
        app, session, clock, monkeypatch, make_rep, make_manager, make_account):
    owner, receiver, manager = make_rep(), make_rep(), make_manager()
    account = make_account(owner=owner)
    watch = Watch(session)

    def failing(*args, **kwargs):
        raise RuntimeError("the audit could not be written")

    with monkeypatch.context() as patched:
        patched.setattr(filings, "record_audit", failing)
        with pytest.raises(RuntimeError):
            filings.transfer_account(session, manager, account_id=account.id,
                                     to_rep_id=receiver.id, reason=REASON, review_text=REVIEW,
                                     now=clock())
    watch.nothing_filed()
    # The next filing takes the number the failed one had; its checkpoint is its own.
    filings.transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                             reason=REASON, review_text=REVIEW, now=clock())
    [filing] = watch.filed()
    assert filing.seq == watch.last_seq + 1


def test_a_sponsored_transfer_is_filed_once_when_accepted_and_never_when_refused(
        app, session, clock, make_rep, make_manager, make_user, make_account, give_accounts):
    president = make_user("executive", name="王总")
    president.executive_title = "president"
    session.commit()
    manager, owner, full, receiver = make_manager(), make_rep(), make_rep(), make_rep()
    give_accounts(full, 39)
    account = make_account(owner=owner)
    sponsors.designate_sponsor(session, manager, account.id, president.id, clock())

    def ask(to_rep) -> TransferRequest:
        request = filings.transfer_account(session, manager, account_id=account.id,
                                           to_rep_id=to_rep.id, reason=REASON,
                                           review_text=REVIEW, now=clock())
        assert isinstance(request, TransferRequest)
        return request

    def answer(request, choice):
        return client_of(app, president).post(
            f"/confirmations/transfers/{request.id}",
            data={f"transfer-{request.id}-answer": choice,
                  f"transfer-{request.id}-note": "The client asked to keep the rep.",
                  f"transfer-{request.id}-version": str(request.version)})

    watch = Watch(session)
    assert answer(ask(receiver), "refuse").status_code == 303
    watch.nothing_filed()
    too_many = ask(full)
    give_accounts(full, 1)  # meanwhile the receiver reached the maximum
    watch = Watch(session)
    assert answer(too_many, "accept").status_code == 422
    watch.nothing_filed()
    sponsors.refuse_transfer_request(session, president, too_many.id, "Not to this rep.",
                                     clock())
    assert answer(ask(receiver), "accept").status_code == 303
    [filing] = watch.filed()
    # The sponsor's acceptance is the decision; the manager asked for it.
    assert (filing.kind, filing.from_rep_id, filing.to_rep_id, filing.reason,
            filing.decided_by_id, filing.requested_by_id) == (
        FilingKind.DIRECT_TRANSFER, owner.id, receiver.id, REASON, president.id, manager.id)


# --- rounds --------------------------------------------------------------------------------------

def test_releasing_publishing_and_cancelling_a_round_move_no_account(
        app, session, clock, make_rep, make_manager, make_account):
    owner, manager = make_rep(), make_manager()
    kept, removed = make_account(owner=owner), make_account(owner=owner)
    client = client_of(app, manager)
    watch = Watch(session)
    round_ = rounds.create_round(session, manager, title="第11期", branch_id=None,
                                 opens_at=clock(), closes_at=clock() + timedelta(days=5),
                                 now=clock())
    for account in (kept, removed):
        assert release_on_round_page(client, round_.id, {
            "account": account.external_id, "reason": "neglected",
            "review_text": REVIEW}).status_code == 303
    reload(session)
    round_ = session.get(Round, round_.id)
    listing = next(listing for listing in round_.listings if listing.account_id == removed.id)
    assert client.post(f"/manage/listings/{listing.id}/remove").status_code == 303
    reload(session)
    round_ = session.get(Round, round_.id)
    assert client.post(f"/manage/rounds/{round_.id}/publish",
                       data={"version": str(round_.version)}).status_code == 303
    reload(session)
    round_ = session.get(Round, round_.id)
    assert client.post(f"/manage/rounds/{round_.id}/cancel", data={
        "reason": "The branch's accounts are being reorganised.",
        "version": str(round_.version)}).status_code == 303
    watch.nothing_filed()


def test_publishing_without_a_window_files_each_award_and_nothing_else(
        app, session, clock, make_rep, make_manager, scored):
    use_window(app, session, clock, 0)
    first, second, third = make_rep(), make_rep(), make_rep()
    owner = make_rep()
    round_ = scored([first, second], [first, second, third], [second], [], owner=owner)
    accepted, overridden, not_awarded, no_bids = round_.listings
    decider, other_decider = make_manager(), make_manager()
    adjudication.decide_listing(session, decider, accepted.id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=clock())
    ranking = adjudication.ranked_bids(session, overridden.id)
    chosen = ranking[-1]
    adjudication.decide_listing(session, other_decider, overridden.id,
                                kind=DecisionKind.OVERRIDDEN, bid_id=chosen.id, reason=OVERRIDE,
                                now=clock())
    adjudication.decide_listing(session, decider, not_awarded.id, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason="The client is being merged into a group.",
                                now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    watch = Watch(session)
    response = client_of(app, decider).post(f"/manage/rounds/{round_.id}/publish-results",
                                            data={"version": str(round_.version)})
    assert response.status_code == 303
    filed = {filing.listing_id: filing for filing in watch.filed()}
    assert sorted(filed) == [accepted.id, overridden.id]
    winner = adjudication.ranked_bids(session, accepted.id)[0]
    totals = sorted((bid.score.total for bid in adjudication.ranked_bids(session, accepted.id)),
                    reverse=True)
    award = filed[accepted.id]
    assert (award.kind, award.from_rep_id, award.to_rep_id, award.round_id) == (
        FilingKind.ROUND_AWARD, owner.id, winner.rep_id, round_.id)
    assert (award.decided_by_id, award.override_reason) == (decider.id, "")
    assert award.rule_set_sha256 == round_.rule_set.sha256
    assert (award.winner_score, award.runner_up_score) == pytest.approx((totals[0], totals[1]))
    override = filed[overridden.id]
    assert (override.to_rep_id, override.decided_by_id, override.override_reason) == (
        chosen.rep_id, other_decider.id, OVERRIDE)
    assert override.rule_set_sha256 == round_.rule_set.sha256
    reload(session)
    assert {listing.id: listing.status for listing in session.get(Round, round_.id).listings} \
        == {accepted.id: ListingStatus.AWARDED, overridden.id: ListingStatus.AWARDED,
            not_awarded.id: ListingStatus.NOT_AWARDED, no_bids.id: ListingStatus.NOT_AWARDED}


def test_announced_results_are_filed_when_they_take_effect_with_their_appeals(
        app, session, clock, make_rep, make_manager, scored):
    first, second, owner = make_rep(), make_rep(), make_rep()
    round_ = scored([first, second], [first, second], [first, second], owner=owner)
    appealed, upheld, cancelled = round_.listings
    manager, second_manager = make_manager(), make_manager()
    for listing in round_.listings:
        adjudication.decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED,
                                    bid_id=None, reason="", now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    watch = Watch(session)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    watch.nothing_filed()

    def loser_of(listing):
        return adjudication.ranked_bids(session, listing.id)[1]

    rejected_appeal = appeals.file_appeal(session, session.get(User, loser_of(appealed).rep_id),
                                          appealed.id, ground=GROUND, now=clock())
    appeals.answer_appeal(session, manager, rejected_appeal.id, upheld=False, answer=ANSWER,
                          expected_version=rejected_appeal.version, now=clock())
    loser = loser_of(upheld)
    upheld_appeal = appeals.file_appeal(session, session.get(User, loser.rep_id), upheld.id,
                                        ground=GROUND, now=clock())
    appeals.answer_appeal(session, manager, upheld_appeal.id, upheld=True, answer=ANSWER,
                          expected_version=upheld_appeal.version, now=clock())
    adjudication.decide_listing(session, second_manager, upheld.id,
                                kind=DecisionKind.OVERRIDDEN, bid_id=loser.id, reason=OVERRIDE,
                                now=clock())
    appeals.cancel_listing(session, manager, cancelled.id,
                           reason="The client is being merged into another group.", now=clock())
    watch.nothing_filed()
    assert sorted(results_in_force(session, round_.id)) == [appealed.id, upheld.id]
    filed = {filing.listing_id: filing for filing in watch.filed()}
    assert sorted(filed) == [appealed.id, upheld.id]
    assert filed[upheld.id].to_rep_id == loser.rep_id
    assert filed[upheld.id].decided_by_id == second_manager.id
    assert filed[upheld.id].override_reason == OVERRIDE
    assert filed[appealed.id].decided_by_id == manager.id
    for listing_id, appeal in ((appealed.id, rejected_appeal), (upheld.id, upheld_appeal)):
        appeal = session.get(Appeal, appeal.id)
        assert appeals_of(filed[listing_id]) == [{
            "appellant_id": appeal.appellant_id, "ground": GROUND, "status": appeal.status,
            "answer": ANSWER, "answered_by_id": manager.id}]
    # The scheduler's next run, or a restart's catch-up, files nothing again.
    watch = Watch(session)
    assert appeals.apply_due_listings(session, clock() + timedelta(days=30)) == []
    watch.nothing_filed()


def test_a_winner_who_leaves_during_the_window_has_the_award_sent_back_unfiled(
        app, session, clock, make_rep, make_manager, make_admin, scored):
    first, second, owner = make_rep(), make_rep(), make_rep()
    round_ = scored([first, second], owner=owner)
    [listing] = round_.listings
    manager = make_manager()
    adjudication.decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=clock())
    winner = session.get(User, adjudication.ranked_bids(session, listing.id)[0].rep_id)
    reload(session)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    leaving = [(rep.id, rep.display_name, rep.branch_id) for rep in (winner, owner)]
    admin = client_of(app, make_admin())
    watch = Watch(session)
    # The winner leaves; so does the rep who holds the account: accounts stay where they are.
    for rep_id, name, branch_id in leaving:
        assert admin.post(f"/admin/users/{rep_id}", data={
            "display_name": name, "role": "rep", "branch_id": str(branch_id),
            "status": "left", "expected": user_form_fingerprint(admin, rep_id)}
        ).status_code == 303
    watch.nothing_filed()
    reload(session)
    assert session.get(Round, round_.id).listings[0].status == ListingStatus.LISTED
    assert appeals.apply_due_listings(session, clock() + timedelta(days=30)) == []
    watch.nothing_filed()


# --- imports -------------------------------------------------------------------------------------

ACCOUNTS_HEADER = "external_id,name,industry,ownership_type,branch,annual_value_yuan,owner\n"


def accounts_file(*rows: tuple[str, str, str]) -> bytes:
    """An accounts export naming each row's account (external id, name) and owner."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        [external_id, name, "IT", "private", "BJ", "100000", owner]
        for external_id, name, owner in rows)
    return (ACCOUNTS_HEADER + buffer.getvalue()).encode()


def upload(client, data: bytes, *, valid_rows_only: bool = False):
    form = {"kind": "accounts", "file": (io.BytesIO(data), "accounts.csv")}
    if valid_rows_only:
        form["valid_rows_only"] = "y"
    return client.post("/admin/imports/", data=form, content_type="multipart/form-data")


def test_a_crm_import_files_first_owners_and_moves_and_nothing_for_unchanged_rows(
        app, session, clock, make_rep, make_admin, make_account):
    owner, receiver, gone = make_rep(), make_rep(), make_rep(status="left")
    moved, kept = make_account(owner=owner), make_account(owner=owner)
    unowned = make_account()
    admin = make_admin()
    client = client_of(app, admin)
    rows = [(moved.external_id, moved.name, receiver.username),
            (kept.external_id, kept.name, owner.username),
            (unowned.external_id, unowned.name, ""),
            ("KA-NEW-1", "New Co.", owner.username),
            ("KA-NEW-2", "Newer Co.", "")]
    # A file with one row naming a rep who left is refused whole: nothing is filed.
    watch = Watch(session)
    assert upload(client, accounts_file(*rows, ("KA-NEW-3", "Gone Co.", gone.username))
                  ).status_code == 303
    watch.nothing_filed()
    assert upload(client, accounts_file(*rows)).status_code == 303
    filed = {filing.account_id: filing for filing in watch.filed()}
    reload(session)
    new = session.scalars(select(Account).where(Account.external_id == "KA-NEW-1")).one()
    assert sorted(filed) == sorted([moved.id, new.id])
    assert (filed[moved.id].from_rep_id, filed[moved.id].to_rep_id) == (owner.id, receiver.id)
    assert (filed[new.id].from_rep_id, filed[new.id].to_rep_id) == (None, owner.id)
    for filing in filed.values():
        assert (filing.kind, filing.reason, filing.decided_by_id) == (
            FilingKind.CRM_IMPORT, imports.CRM_IMPORT_REASON, admin.id)
    # The same file again changes nothing and files nothing.
    watch = Watch(session)
    assert upload(client, accounts_file(*rows)).status_code == 303
    watch.nothing_filed()
    # Only the valid rows: the row to the rep who left is skipped, the other move is filed.
    watch = Watch(session)
    assert upload(client, accounts_file((kept.external_id, kept.name, receiver.username),
                                        (moved.external_id, moved.name, gone.username)),
                  valid_rows_only=True).status_code == 303
    [filing] = watch.filed()
    assert (filing.account_id, filing.from_rep_id, filing.to_rep_id) == (
        kept.id, owner.id, receiver.id)


def test_an_import_cannot_move_a_listed_account_nor_take_one_away(
        app, session, clock, make_rep, make_admin, make_account, make_round):
    owner, receiver = make_rep(), make_rep()
    listed, held = make_account(owner=owner), make_account(owner=owner)
    make_round(accounts=[listed])
    client = client_of(app, make_admin())
    watch = Watch(session)
    for rows in ([(listed.external_id, listed.name, receiver.username)],
                 [(held.external_id, held.name, "")]):
        assert upload(client, accounts_file(*rows)).status_code == 303
    watch.nothing_filed()


def test_a_reps_import_marking_reps_left_moves_no_account(app, session, clock, make_rep,
                                                         make_admin, make_account):
    owner = make_rep()
    owner.external_id = "EMP-0001"
    session.commit()
    make_account(owner=owner)
    watch = Watch(session)
    data = ("external_id,username,display_name,branch,hired_on,status\n"
            f"EMP-0001,{owner.username},{owner.display_name},BJ,2020-01-01,left\n").encode()
    result = imports.import_file(session, make_admin(), "reps", "reps.csv", data,
                                 valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    reload(session)
    assert session.get(User, owner.id).status == "left"
    watch.nothing_filed()


def test_a_move_outside_a_round_names_the_rules_it_was_checked_against(
        app, session, clock, make_rep, make_manager, make_admin, make_user, make_account):
    """A direct transfer, a sponsored one and an import's move are each allowed by the maximum
    of the rules in force: their filings name those rules, as a round's awards name the
    round's. A first load, which is not checked against any rule, names none."""
    from bidhub.services.rule_sets import adopt_rule_set, default_rules_path

    text = default_rules_path(app.config).read_text("utf-8").replace(
        "capacity_max = 40", "capacity_max = 38")
    in_force = adopt_rule_set(session, None, text, "narrower", "38 accounts", clock())
    session.commit()
    president = make_user("executive", name="王总")
    president.executive_title = "president"
    session.commit()
    manager, owner, receiver = make_manager(), make_rep(), make_rep()
    direct, sponsored, imported = (make_account(owner=owner) for _ in range(3))
    sponsors.designate_sponsor(session, manager, sponsored.id, president.id, clock())
    admin = client_of(app, make_admin())
    watch = Watch(session)
    assert client_of(app, manager).post(
        "/manage/transfer", data=transfer_data(direct, receiver, owner)).status_code == 303
    request = filings.transfer_account(session, manager, account_id=sponsored.id,
                                       to_rep_id=receiver.id, reason=REASON,
                                       review_text=REVIEW, now=clock())
    sponsors.accept_transfer_request(session, president, request.id, "", clock())
    assert upload(admin, accounts_file((imported.external_id, imported.name, receiver.username),
                                       ("KA-FIRST", "First Co.", owner.username))
                  ).status_code == 303
    rules = {row.account_id: row.rule_set_sha256 for row in watch.filed()}
    first = session.scalars(select(Account).where(Account.external_id == "KA-FIRST")).one()
    assert rules == {direct.id: in_force.sha256, sponsored.id: in_force.sha256,
                     imported.id: in_force.sha256, first.id: None}


def test_the_whole_register_is_checked_against_the_owners(session, clock, make_rep,
                                                          make_manager, make_account):
    """The check itself: an owner written behind the register's back, and a filing that names
    a previous owner the register never gave the account, are both seen."""
    from bidhub.services.ownership import append_filings

    owner, other = make_rep(), make_rep()
    account = make_account(owner=owner)
    assert history_problems(session) == []
    session.get(Account, account.id).owner_id = other.id
    session.flush()
    assert history_problems(session) == [
        f"account {account.id} is held by rep {other.id}, its filings give rep {owner.id}"]
    append_filings(session, [{
        "kind": FilingKind.DIRECT_TRANSFER, "account_id": account.id, "from_rep_id": other.id,
        "to_rep_id": other.id, "branch_id": account.branch_id, "reason": REASON,
        "decided_by_id": make_manager().id}], now=clock())
    problems = history_problems(session)
    assert len(problems) == 2 and "records no change of owner" in problems[1]
    session.rollback()
