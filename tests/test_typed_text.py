"""Text that only looks empty is empty: zero-width spaces, direction marks and surrounding
spaces are removed from every text field before it is judged and stored."""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from bidhub.domain.errors import InvalidRequest
from bidhub.domain.typed_text import FORMAT_CHARACTERS, visible_text, writes_less_than
from bidhub.models import (
    AccountReview,
    Base,
    Bid,
    DecisionKind,
    Filing,
    Round,
    RoundStatus,
    User,
)
from bidhub.services.accountability import log_incident
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from bidhub.services.appeals import file_appeal
from bidhub.services.filings import transfer_account
from bidhub.services.users import edit_fingerprint
from tests.conftest import login, reload

ZWSP = "\u200b"
# Values that show nothing: zero-width spaces, plain spaces, and a mix of the invisible
# characters and spaces people paste (BOM, word joiner, RTL override, ideographic and
# no-break spaces).
BLANK_VALUES = {
    "zero-width spaces": ZWSP * 40,
    "spaces": " " * 40,
    "invisible mix": "\ufeff\u2060\u202e\u3000\u00a0" * 8 + ZWSP * 20,
}
LONG_TEXT = "The client asked for a rep who can visit the Tianjin plant every month."
TIMES = {"opens_at": "2026-03-10T09:00", "closes_at": "2026-03-20T18:00"}


# --- the character class -----------------------------------------------------------------------

def test_the_format_characters_removed_are_exactly_unicodes_cf():
    every = "".join(chr(code) for code in range(sys.maxunicode + 1)
                    if not 0xD800 <= code <= 0xDFFF)
    matched = set(FORMAT_CHARACTERS.findall(every))
    cf = {char for char in every if unicodedata.category(char) == "Cf"}
    # The class follows Unicode 15.1; Python 3.11 knows Unicode 14, in which the seven
    # Egyptian hieroglyph format controls U+13439..U+1343F are not assigned yet.
    newer = {chr(code) for code in range(0x13439, 0x13440)}
    if tuple(map(int, unicodedata.unidata_version.split("."))) < (15,):
        assert all(unicodedata.category(char) == "Cn" for char in newer)
        cf |= newer
    assert matched == cf


@pytest.mark.parametrize(("typed", "seen"), [
    (None, ""), ("", ""), (ZWSP * 5, ""), (" \u3000\u00a0\t\r\n ", ""),
    (f"{ZWSP} Spring{ZWSP} round\u202e \ufeff", "Spring round"),
    ("soft\u00adhyphen", "softhyphen"), ("line one\r\nline two", "line one\r\nline two"),
    ("客户\u200d经营", "客户经营"), ("a\x00b", "a\x00b"),
])
def test_visible_text(typed, seen):
    assert visible_text(typed) == seen


# --- every form ----------------------------------------------------------------------------------

@pytest.fixture
def world(session, clock, make_branch, make_rep, make_manager, make_admin, make_account,
          make_round, make_bid):
    """A round in its standstill window with an appeal, then an open round with a bid, a draft
    round, an incident and a loss review, each the target of a form."""
    branch = make_branch()
    manager, admin = make_manager(), make_admin()
    rep, other, victim = make_rep(), make_rep(), make_rep()

    announced = [make_account(owner=other) for _ in range(2)]
    deadline = clock() + timedelta(days=2)
    standstill = make_round(accounts=announced, closes_at=deadline, manager=manager)
    for listing in standstill.listings:
        make_bid(rep, listing)
        make_bid(victim, listing)
    clock.set(deadline)
    assert score_closed_round(session, standstill.id, clock())
    for listing in standstill.listings:
        decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED, bid_id=None,
                       reason="", now=clock())
    reload(session)
    standstill = session.get(Round, standstill.id)
    publish_results(session, manager, standstill.id, expected_version=standstill.version,
                    now=clock())
    reload(session)
    appealed, cancellable = session.get(Round, standstill.id).listings
    loser = {listing.id: session.get(User, next(
        bid.rep_id for bid in session.scalars(select(Bid).where(Bid.listing_id == listing.id))
        if not bid.score.is_proposed_winner)) for listing in (appealed, cancellable)}
    appeal = file_appeal(session, loser[appealed.id], appealed.id, ground=LONG_TEXT, now=clock())
    appellant = loser[cancellable.id]  # who has not appealed the other listing yet

    open_round = make_round(accounts=[make_account(owner=other) for _ in range(2)],
                            manager=manager)
    bid = make_bid(rep, open_round.listings[0])
    draft = make_round(status=RoundStatus.DRAFT, manager=manager,
                       opens_at=clock() + timedelta(days=1))
    held, lost = make_account(owner=rep), make_account(owner=rep)
    incident = log_incident(session, manager, account_id=held.id,
                            competitor_site="https://x.example", ad_type="logo",
                            evidence_url="https://x.example/ad",
                            seen_at=clock() - timedelta(hours=3), now=clock())
    transfer_account(session, manager, account_id=lost.id, to_rep_id=other.id,
                     reason=LONG_TEXT, review_text=LONG_TEXT, now=clock())
    review = session.scalars(select(AccountReview).where(AccountReview.rep_id == rep.id)).one()
    spare = make_account(owner=other)
    reload(session)
    return {"branch": branch, "manager": manager, "admin": admin, "rep": rep, "other": other,
            "victim": victim, "appellant": appellant, "appealed": appealed,
            "cancellable": cancellable, "appeal": appeal, "open_listing": open_round.listings[1],
            "bid": bid, "draft": session.get(Round, draft.id), "incident": incident,
            "review": review, "spare": spare}


def transfer_data(w) -> dict:
    return {"account": str(w["spare"].id), "to_rep": str(w["rep"].id), "reason": LONG_TEXT,
            "review_text": LONG_TEXT}


# Each form: who sends it, where, values that pass, and its text fields whose blank value
# must be refused.
FORMS = {
    "new round": ("manager", lambda w: "/manage/rounds/new",
                  lambda w: {"title": "Spring round", "branch_id": "0", **TIMES}, ["title"]),
    "round edit": ("manager", lambda w: f"/manage/rounds/{w['draft'].id}/edit",
                   lambda w: {"title": "Spring round", "version": str(w["draft"].version),
                              **TIMES}, ["title"]),
    "release": ("manager", lambda w: f"/manage/rounds/{w['draft'].id}/release",
                lambda w: {"account": w["spare"].external_id, "reason": "other",
                           "note": "Merged", "review_text": LONG_TEXT},
                ["account", "note", "review_text"]),
    "bid": ("rep", lambda w: f"/listings/{w['open_listing'].id}/bid",
            lambda w: {"account_plan": LONG_TEXT, "visit_plan": LONG_TEXT,
                       "committed_revenue_yuan": "300000"},
            ["account_plan", "visit_plan", "committed_revenue_yuan"]),
    "bid edit": ("rep", lambda w: f"/bids/{w['bid'].id}/edit",
                 lambda w: {"account_plan": LONG_TEXT, "visit_plan": LONG_TEXT,
                            "committed_revenue_yuan": "300000", "version": "1"},
                 ["account_plan", "visit_plan"]),
    "transfer summary": ("manager", lambda w: "/manage/transfer/summary", transfer_data,
                         ["reason", "review_text"]),
    "transfer": ("manager", lambda w: "/manage/transfer",
                 lambda w: {**transfer_data(w), "owner": str(w["other"].id)},
                 ["reason", "review_text"]),
    "appeal": ("appellant", lambda w: f"/listings/{w['cancellable'].id}/appeal",
               lambda w: {"ground": LONG_TEXT, "page": "bid"}, ["ground"]),
    "appeal answer": ("manager", lambda w: f"/manage/appeals/{w['appeal'].id}/answer",
                      lambda w: {"outcome": "rejected", "answer": LONG_TEXT,
                                 "version": str(w["appeal"].version)}, ["answer"]),
    "cancel listing": ("manager", lambda w: f"/manage/listings/{w['cancellable'].id}/cancel",
                       lambda w: {"reason": LONG_TEXT}, ["reason"]),
    "incident": ("manager", lambda w: "/manage/accountability/log",
                 lambda w: {"account": w["spare"].external_id,
                            "competitor_site": "https://x.example", "ad_type": "logo",
                            "page_area": "home_page", "seen_at": "2026-03-04T08:00",
                            "evidence_url": "https://x.example/ad"},
                 ["account", "competitor_site"]),
    "explanation": ("rep", lambda w: f"/my/accountability/{w['incident'].id}/explain",
                    lambda w: {"explanation": LONG_TEXT}, ["explanation"]),
    "loss review": ("rep", lambda w: f"/my/reviews/{w['review'].id}",
                    lambda w: {"what_happened": LONG_TEXT, "do_differently": LONG_TEXT,
                               "version": str(w["review"].version)},
                    ["what_happened", "do_differently"]),
    "new user": ("admin", lambda w: "/admin/users/new",
                 lambda w: {"username": "newrep", "display_name": "New Rep",
                            "password": "a long password 1", "role": "rep",
                            "branch_id": str(w["branch"].id)}, ["username", "display_name"]),
    "user edit": ("admin", lambda w: f"/admin/users/{w['victim'].id}",
                  lambda w: {"display_name": "Renamed Rep", "role": "rep",
                             "branch_id": str(w["branch"].id), "status": "active",
                             "is_active": "y", "expected": edit_fingerprint(w["victim"])},
                  ["display_name"]),
    "new branch": ("admin", lambda w: "/admin/branches/new",
                   lambda w: {"code": "SH", "name": "Shanghai", "name_zh": "上海"},
                   ["code", "name"]),
}
CASES = [pytest.param(form, name, blank, id=f"{form}-{name}-{label}")
         for form, (_role, _url, _data, names) in FORMS.items() for name in names
         for label, blank in BLANK_VALUES.items()]


def database_rows(session) -> dict[str, list]:
    """Every row of every table, to show that a refusal changed nothing at all."""
    reload(session)
    return {name: sorted(map(repr, session.execute(text(f'SELECT * FROM "{name}"')).all()))
            for name in sorted(Base.metadata.tables)}


@pytest.mark.parametrize(("form", "name", "blank"), CASES)
def test_a_value_that_only_looks_empty_is_refused_and_nothing_is_stored(
        client, session, world, form, name, blank):
    role, url, data, _names = FORMS[form]
    login(client, world[role])
    before = database_rows(session)
    response = client.post(url(world), data={**data(world), name: blank})
    assert response.status_code == 422, response.get_data(as_text=True)[:2000]
    assert database_rows(session) == before


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_valid_values_of_each_form_are_taken(client, session, world, form):
    # The refusals above are the blank value's: the same form with its values goes through.
    role, url, data, _names = FORMS[form]
    login(client, world[role])
    response = client.post(url(world), data=data(world))
    assert response.status_code in (200, 303), response.get_data(as_text=True)[:2000]


def test_a_required_field_left_blank_gets_the_required_message(client, world):
    login(client, world["manager"])
    for blank in BLANK_VALUES.values():
        response = client.post("/manage/rounds/new", data={
            "title": blank, "branch_id": "0", **TIMES})
        assert response.status_code == 422
        assert "Fill in this field." in response.get_data(as_text=True)


def test_invisible_characters_inside_text_are_not_stored(client, session, world):
    login(client, world["manager"])
    response = client.post("/manage/rounds/new", data={
        "title": f" {ZWSP}Spring{ZWSP} round\u202e\u3000", "branch_id": "0", **TIMES})
    assert response.status_code == 303
    reload(session)
    assert session.scalars(select(Round.title).order_by(Round.id.desc())).first() == "Spring round"

    reason = f"{ZWSP}The client asked{ZWSP} for a rep\u2066 in Tianjin.\u2069 "
    summary = client.post("/manage/transfer/summary", data={**transfer_data(world),
                                                            "reason": reason})
    assert summary.status_code == 200
    assert ZWSP not in summary.get_data(as_text=True).split("<main")[-1]
    response = client.post("/manage/transfer", data={
        **transfer_data(world), "reason": reason, "owner": str(world["other"].id)})
    assert response.status_code == 303
    reload(session)
    filing = session.scalars(select(Filing).order_by(Filing.seq.desc())).first()
    assert filing.reason == "The client asked for a rep in Tianjin."

    login(client, world["rep"])
    plan = f"Visit\u200d the plant\ufeff every month{ZWSP}, then the head office."
    response = client.post(f"/listings/{world['open_listing'].id}/bid", data={
        "account_plan": plan, "visit_plan": LONG_TEXT, "committed_revenue_yuan": "300000"})
    assert response.status_code == 303
    reload(session)
    bid = session.scalars(select(Bid).where(Bid.listing_id == world["open_listing"].id)).one()
    assert bid.account_plan == "Visit the plant every month, then the head office."


def test_the_transfer_summary_refuses_a_blank_reason_before_the_confirmation(client, world):
    login(client, world["manager"])
    for blank in BLANK_VALUES.values():
        response = client.post("/manage/transfer/summary", data={**transfer_data(world),
                                                                 "reason": blank})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "Fill in this field." in page and 'action="/manage/transfer"' not in page



# --- the use cases, which the command line and imports call without a form -------------------

@pytest.mark.parametrize("blank", BLANK_VALUES.values())
def test_the_use_cases_refuse_a_blank_title_name_or_reason(session, clock, world, blank):
    from bidhub.services import rounds, users
    from bidhub.services.filings import check_reason

    before = database_rows(session)
    manager, draft = world["manager"], world["draft"]
    refusals = {
        "title": lambda: rounds.create_round(
            session, manager, title=blank, branch_id=None, opens_at=clock(),
            closes_at=clock() + timedelta(days=7), now=clock()),
        "title ": lambda: rounds.update_round_times(
            session, manager, draft.id, expected_version=draft.version, title=blank,
            opens_at=draft.opens_at, closes_at=draft.closes_at, now=clock()),
        "display_name": lambda: users.create_user(
            session, None, username="newrep", display_name=blank, password="a long password 1",
            role="rep", branch_id=world["branch"].id, now=clock()),
        "display_name ": lambda: users.update_user(
            session, world["admin"], world["victim"].id, display_name=blank, role="rep",
            branch_id=world["branch"].id, status="active", is_active=True, now=clock()),
        "reason": lambda: transfer_account(
            session, manager, account_id=world["spare"].id, to_rep_id=world["rep"].id,
            reason=blank, review_text=LONG_TEXT, now=clock()),
        "review_text": lambda: transfer_account(
            session, manager, account_id=world["spare"].id, to_rep_id=world["rep"].id,
            reason=LONG_TEXT, review_text=blank, now=clock()),
        "reason  ": lambda: check_reason(blank),
    }
    for field, refusal in refusals.items():
        with pytest.raises(InvalidRequest) as refused:
            refusal()
        assert refused.value.field == field.strip()
    assert database_rows(session) == before


NUMBER_AND_DATE_WORDS = ("Not a valid", "Number must be between", "between 1 and 1,000",
                         "Enter a whole number", "Enter a number")


@pytest.mark.parametrize("blank", sorted(BLANK_VALUES))
def test_a_blank_number_or_date_gets_the_required_message_alone(app, session, make_manager,
                                                                 make_admin, blank):
    """Spaces in a number or date field are as empty as nothing: before, the rule settings
    said a blank limit was "not a valid integer" and "must be between 1 and 1000" at once,
    and the round form that a blank time was no date."""
    from tests.test_rules_admin import active_text

    value = BLANK_VALUES[blank]
    client, admin = app.test_client(), app.test_client()
    login(client, make_manager())
    login(admin, make_admin())
    before = database_rows(session)
    response = client.post("/manage/rounds/new", data={
        "title": "Spring round", "branch_id": "0", "opens_at": value,
        "closes_at": "2026-03-12T18:00"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Fill in this field." in page
    assert not any(words in page for words in NUMBER_AND_DATE_WORDS), errors_of(page)
    client = admin
    settings = re.search(r'<form[^>]*action="/admin/rules/settings".*?</form>',
                         client.get("/admin/rules").get_data(as_text=True), re.S).group(0)
    data = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', settings))
    for name in ("capacity_max", "min_tenure_months", "weight_0"):
        response = client.post("/admin/rules/settings", data={**data, name: value})
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        assert errors_of(page) == ["Fill in this field."], (name, errors_of(page))
    assert active_text(session)
    assert database_rows(session) == before


def errors_of(page: str) -> list[str]:
    return re.findall(r'<p class="error"[^>]*>([^<]*)', page)


def test_the_use_cases_store_text_without_its_invisible_characters(session, clock, world):
    from bidhub.services import rounds, users

    round_ = rounds.create_round(session, world["manager"], title=f"{ZWSP}Spring\u2068 round ",
                                 branch_id=None, opens_at=clock(),
                                 closes_at=clock() + timedelta(days=7), now=clock())
    assert round_.title == "Spring round"
    user = users.create_user(session, None, username="newrep", display_name="\u3000王\u200b伟 ",
                             password="a long password 1", role="rep",
                             branch_id=world["branch"].id, now=clock())
    assert user.display_name == "王伟"
    filing = transfer_account(session, world["manager"], account_id=world["spare"].id,
                              to_rep_id=world["rep"].id, reason=f"\ufeff{LONG_TEXT}{ZWSP}",
                              review_text=LONG_TEXT, now=clock())
    assert filing.reason == LONG_TEXT


def test_a_blank_amount_gets_the_required_message_not_the_range(client, world):
    login(client, world["rep"])
    for blank in BLANK_VALUES.values():
        response = client.post(f"/listings/{world['open_listing'].id}/bid", data={
            "account_plan": LONG_TEXT, "visit_plan": LONG_TEXT, "committed_revenue_yuan": blank})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "Fill in this field." in page and "Enter an amount between" not in page, \
            re.findall(r"<p class=\"error\">[^<]*", page)


@pytest.mark.parametrize(("text", "minimum", "too_little"), [
    ("客户总部统一投放，分公司未告知。", 16, False), ("客户总部统一投放，分公司未告知。", 17, True),
    ("Left in March, see HR.", 20, False), ("=HYPERLINK(\"x\")+cmd|' /C calc'!A0", 20, False),
    ("😀" * 25, 20, True), ("😀 " * 25, 20, True), ("。" * 10, 10, True), ("好。" + "。" * 8, 10, True),
    ("好的呀" + "。" * 7, 10, False), ("\u200b" * 30 + "短", 20, True), ("  十个字十个字十个字  ", 10, True),
    ("", 0, False), (None, 1, True), ("１２３ＡＢＣ", 6, False),
])
def test_too_little_writing_is_too_few_characters_or_letters(text, minimum, too_little):
    """A minimum counts what can be seen, and a quarter of it must be letters or digits."""
    assert writes_less_than(text, minimum) is too_little


def test_a_reason_of_emoji_is_no_reason(session, make_manager, make_rep, make_account, clock):
    """Each minimum a reason, a plan or a review must meet counts writing only."""
    from bidhub.services.accountability import explain_incident, log_incident

    rep = make_rep()
    incident = log_incident(session, make_manager(), account_id=make_account(owner=rep).id,
                            competitor_site="www.competitor-a.com", ad_type="logo",
                            seen_at=clock(), now=clock(),
                            evidence_url="https://www.competitor-a.com/")
    with pytest.raises(InvalidRequest) as refused:
        explain_incident(session, rep, incident.id, explanation="😀" * 40, now=clock())
    assert refused.value.field == "explanation"
    # 40 characters typed against a minimum of 20: the message says what does not count.
    assert str(refused.value) == (
        "Explain what happened (at least 20 characters). Emoji, punctuation and spaces alone do "
        "not count: at least 5 of the characters must be letters or digits.")
    with pytest.raises(InvalidRequest) as refused:
        explain_incident(session, rep, incident.id, explanation="太短了", now=clock())
    assert str(refused.value) == "Explain what happened (at least 20 characters)."
    explained = explain_incident(session, rep, incident.id, now=clock(),
                                 explanation="客户总部统一投放，分公司未告知；已约见人事总监。")
    assert explained.status == "explained"
