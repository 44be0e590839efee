"""Who may do what: every route declares its audience, and each role gets what it should."""

from __future__ import annotations

import pytest

from bidhub.models import Role
from bidhub.web.access import EVERYONE, SIGNED_IN, declared_access
from tests.conftest import login

REP, MANAGER, ADMIN = Role.REP.value, Role.KA_MANAGER.value, Role.ADMIN.value
EXECUTIVE = Role.EXECUTIVE.value
MANAGEMENT = {MANAGER, ADMIN}

# The intended audience of every endpoint. A new route must be added here, with its rule.
EXPECTED_ACCESS = {
    "health.healthz": {EVERYONE},
    "auth.index": {EVERYONE},
    "auth.login": {EVERYONE},
    "auth.logout": {SIGNED_IN},
    "auth.password": {SIGNED_IN},
    "language.switch": {EVERYONE},
    "market.rounds": {REP},
    "market.round_listings": {REP},
    "market.account": {SIGNED_IN},
    "market.place_bid": {REP},
    "market.edit_bid": {REP},
    "market.withdraw_bid": {REP},
    "market.my_bids": {REP},
    "market.rank_bids": {REP},
    "market.bid_detail": {REP},
    "market.round_results": {SIGNED_IN},
    "market.file_appeal": {REP},
    "manage.rounds": MANAGEMENT,
    "manage.new_round": MANAGEMENT,
    "manage.edit_round": MANAGEMENT,
    "manage.round_detail": MANAGEMENT,
    "manage.release": MANAGEMENT,
    "manage.remove_listing": MANAGEMENT,
    "manage.publish": MANAGEMENT,
    "manage.score": MANAGEMENT,
    "manage.listing": MANAGEMENT,
    "manage.decide": MANAGEMENT,
    "manage.publish_results": MANAGEMENT,
    "manage.accept_unflagged": MANAGEMENT,
    "manage.transfer": MANAGEMENT,
    "manage.transfer_summary": MANAGEMENT,
    "manage.transfer_picks": MANAGEMENT,
    "manage.transfer_accounts": MANAGEMENT,
    "manage.transfer_reps": MANAGEMENT,
    "manage.filings": MANAGEMENT,
    "manage.filings_csv": MANAGEMENT,
    "audit.trail": MANAGEMENT,
    "manage.check_register": MANAGEMENT,
    "accounts.directory_page": MANAGEMENT,
    "accounts.directory_csv": MANAGEMENT,
    "accounts.account": MANAGEMENT,
    "manage.appeals": MANAGEMENT,
    "manage.answer_appeal": MANAGEMENT,
    "manage.cancel_listing": MANAGEMENT,
    "manage.cancel_round": MANAGEMENT,
    "round_reviews.name_reviewers": MANAGEMENT,
    "round_reviews.close_review": MANAGEMENT,
    "board.home": MANAGEMENT,
    "board.capacity": MANAGEMENT,
    "board.rep": MANAGEMENT,
    "board.release": MANAGEMENT,
    "board.my_accounts": {REP},
    "fairness.fairness": MANAGEMENT,
    "fairness.fairness_csv": MANAGEMENT,
    # Management may open them; the round's named reviewers alone see its applications.
    "application_reviews.rounds": MANAGEMENT,
    "application_reviews.queue": MANAGEMENT,
    "application_reviews.application": MANAGEMENT,
    "application_reviews.submit": MANAGEMENT,
    "admin.users": {ADMIN},
    "admin.new_user": {ADMIN},
    "admin.edit_user": {ADMIN},
    "admin.set_password": {ADMIN},
    "admin.branches": {ADMIN},
    "admin.new_branch": {ADMIN},
    "admin.edit_branch": {ADMIN},
    "admin.deactivate_branch": {ADMIN},
    "admin.reactivate_branch": {ADMIN},
    "sponsors.accounts": {MANAGER, ADMIN, EXECUTIVE},
    "sponsors.account": MANAGEMENT,
    "sponsors.confirmations": {EXECUTIVE, ADMIN},
    "sponsors.answer_release": {EXECUTIVE, ADMIN},
    "sponsors.answer_transfer": {EXECUTIVE, ADMIN},
    "rules.rules": {ADMIN},
    "rules.apply_settings": {ADMIN},
    "rules.check": {ADMIN},
    "rules.what_if": {ADMIN},
    "rules.adopt": {ADMIN},
    "rules.version": {ADMIN},
    "profiles.rep": {SIGNED_IN},
    "profiles.mine": {SIGNED_IN},
    "profiles.reps": MANAGEMENT,
    "profiles.forecasts_page": MANAGEMENT,
    "accountability.incidents": MANAGEMENT,
    "accountability.log_incident": MANAGEMENT,
    "accountability.resolve": MANAGEMENT,
    "accountability.release": MANAGEMENT,
    "accountability.report": MANAGEMENT,
    "accountability.report_csv": MANAGEMENT,
    "accountability.inbox": {REP},
    "accountability.explain": {REP},
    "accountability.evidence": {REP, MANAGER, ADMIN},
    "imports.upload": {ADMIN},
    "imports.run": {ADMIN},
    "imports.mapping": {ADMIN},
    "imports.mapping_preview": {ADMIN},
    "notifications.inbox": {SIGNED_IN},
    "notifications.unread_count": {SIGNED_IN},
    "notifications.open_notification": {SIGNED_IN},
    "notifications.mark_read": {SIGNED_IN},
    "notifications.mark_all_read": {SIGNED_IN},
    "notifications.set_email": {SIGNED_IN},
    "notifications.set_user_email": {ADMIN},
    "reviews.register": MANAGEMENT,
    "reviews.close": MANAGEMENT,
    "reviews.detail": {REP, MANAGER, ADMIN},
    "reviews.write": {REP},
    "reviews.mine": {REP},
}


def test_every_route_declares_the_intended_audience(app):
    declared = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        access = declared_access(app.view_functions[rule.endpoint])
        assert access is not None, f"{rule.endpoint} ({rule.rule}) declares no access rule"
        declared[rule.endpoint] = set(access)
    assert declared == EXPECTED_ACCESS


@pytest.fixture
def world(session, make_rep, make_manager, make_admin, make_user, make_account, make_round,
          make_bid, clock):
    from bidhub.services import notifications
    from bidhub.services.accountability import log_incident

    rep, other_rep = make_rep(), make_rep()
    account = make_account(owner=None)
    round_ = make_round(accounts=[account])
    listing = round_.listings[0]
    bid = make_bid(rep, listing)
    manager = make_manager()
    # An incident of `rep`'s, so that the accountability routes answer for a real one.
    incident = log_incident(session, manager, account_id=make_account(owner=rep).id,
                            competitor_site="51job.com", ad_type="banner", seen_at=clock(),
                            evidence_url="https://www.51job.com/", now=clock())
    executive = make_user(Role.EXECUTIVE)
    executive.executive_title = "president"
    session.commit()
    return {"rep": rep, "other_rep": other_rep, "manager": manager, "admin": make_admin(),
            "executive": executive,
            "ids": {"round_id": round_.id, "listing_id": listing.id, "bid_id": bid.id,
                    "account_id": account.id, "user_id": rep.id, "version_id": 1,
                    "rep_id": rep.id, "incident_id": incident.id, "branch_id": rep.branch_id,
                    "run_id": 1, "appeal_id": 1, "request_id": 1, "review_id": 1,
                    "code": "NOCODE",
                    "notification_id": notifications.inbox(session, rep).items[0].id}}


def url_for_rule(rule, ids) -> str:
    url = rule.rule
    for name in rule.arguments:
        url = url.replace(f"<int:{name}>", str(ids[name])).replace(f"<code:{name}>", str(ids[name]))
    return url


def allowed(access: set[str], role: str | None) -> bool:
    if EVERYONE in access:
        return True
    if role is None:
        return False
    return SIGNED_IN in access or role in access


@pytest.mark.parametrize("who", ["anonymous", "rep", "other_rep", "manager", "admin",
                                 "executive"])
def test_each_role_gets_exactly_what_it_is_allowed(app, world, who):
    client = app.test_client()
    role = None
    if who != "anonymous":
        login(client, world[who])
        role = world[who].role
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        access = EXPECTED_ACCESS[rule.endpoint]
        url = url_for_rule(rule, world["ids"])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if rule.endpoint == "auth.logout":
                continue  # would end the session this loop uses; covered in test_auth
            response = client.open(url, method=method)
            status = response.status_code
            if allowed(access, role):
                assert status not in (401, 403) and status < 500, (who, method, url, status)
            elif role is None:
                assert status == 302 and "/login" in response.location, (method, url, status)
            else:
                assert status == 403, (who, method, url, status)


def test_htmx_request_without_a_session_is_told_where_to_sign_in(client):
    response = client.get("/rounds", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_another_reps_bid_is_not_found(app, world):
    client = app.test_client()
    login(client, world["other_rep"])
    bid_id = world["ids"]["bid_id"]
    assert client.get(f"/bids/{bid_id}").status_code == 404
    assert client.get(f"/bids/{bid_id}/edit").status_code == 404
    assert client.post(f"/bids/{bid_id}/edit", data={
        "account_plan": "x" * 30, "committed_revenue_yuan": "1",
        "visit_plan": "y" * 30}).status_code == 404
    assert client.post(f"/bids/{bid_id}/withdraw").status_code == 404
