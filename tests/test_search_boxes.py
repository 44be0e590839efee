"""Every search box reads what was typed the same way: full-width letters, digits and spaces
from a Chinese input method, case, and % or _ as themselves."""

from __future__ import annotations

import pytest

from bidhub.models import Round, User
from bidhub.services import browse, directory, transfer_preview
from tests.conftest import client_of

FULL_WIDTH = {ord(character): ord(character) + 0xFEE0
              for character in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"}
IDEOGRAPHIC_SPACE = "\u3000"


@pytest.fixture
def searched(session, make_account, make_rep, make_round):
    """Three accounts listed in a round and a rep with an employee id; the first account is
    the one every search below looks for."""
    wanted = make_account(name="Acme Trading（集团）", owner=make_rep())
    others = [make_account(name="招商银行 50%", owner=make_rep()),
              make_account(name="Beta_Logistics", owner=make_rep())]
    round_ = make_round(accounts=[wanted, *others])
    rep = make_rep(name="王芳", username="wangfang")
    rep.external_id = "E-7788"
    session.commit()
    return {"account": wanted, "round": round_, "rep": rep}


def found_everywhere(session, clock, searched, text: str) -> dict[str, list[int]]:
    """The ids each search box finds for `text`."""
    round_ = session.get(Round, searched["round"].id)
    viewer = session.get(User, searched["rep"].id)
    criteria = browse.ListingFilter(search=text)
    _, _, rows = browse.rep_list(session, round_.id, viewer, criteria, clock())
    return {
        "directory": [row.account_id for row in directory.find_accounts(
            session, directory.DirectoryFilter(search=text))],
        "account picker": [account.id for account in
                           transfer_preview.search_accounts(session, text)],
        "rep's list": [row.account_id for row in rows],
        "round page": [listing.account_id for listing in session.scalars(
            browse.filtered_listings(round_.id, criteria))],
    }


@pytest.mark.parametrize("typed", [
    "number", "full-width number", "lower-case number", "full-width lower-case name",
    "ideographic spaces around", "name as typed with full-width brackets"])
def test_every_search_box_finds_the_same_account(session, clock, searched, typed):
    account = searched["account"]
    text = {"number": account.external_id,
            "full-width number": account.external_id.translate(FULL_WIDTH),
            "lower-case number": account.external_id.lower(),
            "full-width lower-case name": "acme".translate(FULL_WIDTH),
            "ideographic spaces around": f"{IDEOGRAPHIC_SPACE}Acme{IDEOGRAPHIC_SPACE}",
            "name as typed with full-width brackets": "（集团）"}[typed]
    assert found_everywhere(session, clock, searched, text) == {
        "directory": [account.id], "account picker": [account.id],
        "rep's list": [account.id], "round page": [account.id]}


@pytest.mark.parametrize("text", ["%", "_", "50%", "a_l"])
def test_wildcards_are_searched_for_as_themselves(session, clock, searched, text):
    found = found_everywhere(session, clock, searched, text)
    expected = {"%": "招商银行 50%", "50%": "招商银行 50%", "_": "Beta_Logistics",
                "a_l": "Beta_Logistics"}[text]
    names = {box: [session.get(type(searched["account"]), id_).name for id_ in ids]
             for box, ids in found.items()}
    assert names == dict.fromkeys(found, [expected])


def test_the_rep_picker_reads_full_width_input(session, searched):
    rep = searched["rep"]
    for text in ("e-7788".translate(FULL_WIDTH), "ＷＡＮＧ", f"{IDEOGRAPHIC_SPACE}王芳"):
        assert [found.id for found in transfer_preview.search_reps(session, text)] == [rep.id]


@pytest.mark.parametrize("typed", [
    "words in the name's order", "words in another order", "full-width words and space",
    "number and name", "a word twice"])
def test_every_search_box_finds_an_account_by_its_words_in_any_order(session, clock, searched,
                                                                     typed):
    account = searched["account"]
    text = {"words in the name's order": "Acme 集团",
            "words in another order": "集团 trading",
            "full-width words and space": f"（集团）{IDEOGRAPHIC_SPACE}{'acme'.translate(FULL_WIDTH)}",
            "number and name": f"{account.external_id.lower()} Acme",
            "a word twice": "Acme acme"}[typed]
    assert found_everywhere(session, clock, searched, text) == {
        "directory": [account.id], "account picker": [account.id],
        "rep's list": [account.id], "round page": [account.id]}


@pytest.mark.parametrize("text", ["Acme 银行", "招商银行 Acme", "Acme 50%"])
def test_a_word_an_account_does_not_hold_leaves_it_out(session, clock, searched, text):
    assert found_everywhere(session, clock, searched, text) == {
        "directory": [], "account picker": [], "rep's list": [], "round page": []}


def test_the_rep_picker_finds_a_rep_by_words(session, searched):
    rep = searched["rep"]
    for text in ("王芳 e-7788", f"WANGFANG{IDEOGRAPHIC_SPACE}王芳"):
        assert [found.id for found in transfer_preview.search_reps(session, text)] == [rep.id]
    assert transfer_preview.search_reps(session, "王芳 李") == []


@pytest.mark.parametrize("space", [" ", IDEOGRAPHIC_SPACE, "\u00a0", "\u2003", "  \t "])
def test_any_space_between_words_separates_them(session, clock, searched, space):
    account = searched["account"]
    text = space.join(["trading", "ACME", "（集团）"])
    assert found_everywhere(session, clock, searched, text) == {
        "directory": [account.id], "account picker": [account.id],
        "rep's list": [account.id], "round page": [account.id]}


def test_as_many_words_as_a_box_takes_are_each_looked_for(app, session, clock, searched):
    """Fifty words, each one a condition of the statement: every box answers, and a word
    the account lacks (the last) leaves it out."""
    account = searched["account"]
    words = ["Acme"] * 49 + ["trading"]
    assert found_everywhere(session, clock, searched, " ".join(words))["rep's list"] == [
        account.id]
    distinct = [f"{account.external_id[:2]}{index}" for index in range(49)] + ["Acme"]
    assert found_everywhere(session, clock, searched, " ".join(distinct)) == {
        "directory": [], "account picker": [], "rep's list": [], "round page": []}
    client = client_of(app, session.get(User, searched["rep"].id))
    text = " ".join(f"{index}%_" for index in range(50))[:100]
    listed = client.get(f"/rounds/{searched['round'].id}", query_string={"q": "acme trading"})
    assert account.name in listed.get_data(as_text=True)
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(f"/rounds/{searched['round'].id}", query_string={"q": text},
                              headers=headers)
        assert response.status_code == 200
        assert account.name not in response.get_data(as_text=True)
