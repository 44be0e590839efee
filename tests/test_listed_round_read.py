"""The rep's list reads its round, the rep's standing and the listings in one statement: the same
answers as standing_of and listings_for_rep, and the shared reasons not to bid as
hindrances_in_round's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bidhub.domain.errors import NotFound
from bidhub.models import Round, User
from bidhub.services import browse, policies
from bidhub.services.track_records import standing_of


def test_the_round_and_the_standing_read_together_equal_those_read_apart(
        session, clock, make_rep, make_manager, make_account, make_round):
    from bidhub.services.accountability import log_incident
    from bidhub.services.filings import transfer_account

    rep, other = make_rep(), make_rep()
    manager = make_manager()
    held = make_account(owner=rep)
    lost = make_account(owner=rep)
    transfer_account(session, manager, account_id=lost.id, to_rep_id=other.id,
                     reason="Owner left the company.",
                     review_text="Handover done; the client was told.", now=clock())
    for _ in range(3):
        log_incident(session, manager, account_id=held.id, competitor_site="zhaopin.example",
                     ad_type="banner", evidence_url="https://zhaopin.example/",
                     seen_at=clock() - timedelta(days=1), now=clock())
    released_from_rep = make_account(owner=rep)
    round_ = make_round(accounts=[make_account(), make_account(), released_from_rep,
                                  session.get(type(lost), lost.id)])
    round_ = session.get(Round, round_.id)
    rep = session.get(User, rep.id)

    listed, standing, rows = browse.rep_list(session, round_.id, rep, browse.ListingFilter(),
                                             clock())
    assert standing == standing_of(session, rep, clock(), round_id=round_.id)
    assert len(standing.released_at) == 2
    assert (listed.id, listed.title, listed.status, listed.opens_at, listed.closes_at,
            listed.branch, listed.rule_set.sha256, listed.rule_set.text) == (
        round_.id, round_.title, round_.status, round_.opens_at, round_.closes_at, None,
        round_.rule_set.sha256, round_.rule_set.text)
    assert rows == browse.listings_for_rep(session, listed, rep, browse.ListingFilter())
    assert len(rows) == 4
    # Filtered, sorted, or matching nothing: the same round and standing, the filter's rows.
    for criteria in (browse.ListingFilter(sort="name", industry=rows[0].industry),
                     browse.ListingFilter(sort="value_asc", search="no account is called this")):
        assert browse.rep_list(session, round_.id, rep, criteria, clock()) == (
            listed, standing, browse.listings_for_rep(session, listed, rep, criteria))
    assert browse.rep_list(session, round_.id, rep, browse.ListingFilter(search="nothing"),
                           clock()).rows == []
    shared = policies.shared_hindrances_in_round(rep, listed, standing, rows, clock())
    assert {listing_id: list(found) for listing_id, found in shared.items()} == (
        policies.hindrances_for(session, rep, round_.listings, clock()))
    # Listings with the same reasons share them: two plain accounts of one branch here.
    assert len({id(found) for found in shared.values()}) == 3

    # A rep with no incident, release or holding: nothing shared, nothing found.
    quiet = session.get(User, make_rep().id)
    _, quiet_standing, _ = browse.rep_list(session, round_.id, quiet, browse.ListingFilter(),
                                           clock())
    assert quiet_standing == standing_of(session, quiet, clock(), round_id=round_.id)
    assert policies.shared_hindrances_in_round(quiet, listed, quiet_standing, rows, clock()) == {}

    with pytest.raises(NotFound):
        browse.rep_list(session, round_.id + 1000, rep, browse.ListingFilter(), clock())


def test_a_kept_reasons_cell_is_the_one_its_messages_make(app):
    from bidhub.domain.text import Text
    from bidhub.web import listing_lines
    from bidhub.web.listing_lines import _reasons_cell

    def show(text):
        return "" if text is None else text.msgid % text.params

    def cell(months, remedy=None):
        return _reasons_cell(
            (policies.Hindrance(Text("%(months)s months <ago>", {"months": months}), remedy),),
            show, "en")

    with app.test_request_context("/"):
        # Equal parameters of another type read differently, and are kept apart.
        assert "6 months &lt;ago&gt;" in cell(6)
        assert "6.0 months &lt;ago&gt;" in cell(6.0)
        assert cell(6) == cell(6) and cell(6) != cell(7)
        assert "— later" in cell(6, Text("later"))
        # A parameter that is a message itself is translated afresh, not kept.
        kept = len(listing_lines._reason_cells)
        nested = Text("%(months)s months <ago>", {"months": Text("six")})
        assert "x" in _reasons_cell((policies.Hindrance(nested),), lambda text: "x", "en")
        assert len(listing_lines._reason_cells) == kept
