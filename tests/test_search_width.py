"""Search is width-blind both ways: a name stored in full-width letters or digits (from a
Chinese input method: ＡＢＣ科技, １２３) is found by half-width input (ABC, 123), as a
half-width name is found by full-width input, in every search box, on every database."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from bidhub.domain.collation import width_folded
from bidhub.models import Account, Round, User
from bidhub.services import browse, directory, transfer_preview
from bidhub.services.imports import import_file


def found_everywhere(session, clock, round_id: int, viewer_id: int, typed: str) -> dict:
    """The names each search box finds for `typed`."""
    criteria = browse.ListingFilter(search=typed)
    _, _, rows = browse.rep_list(session, round_id, session.get(User, viewer_id), criteria,
                                 clock())
    round_ = session.get(Round, round_id)
    return {
        "directory": sorted(row.name for row in directory.find_accounts(
            session, directory.DirectoryFilter(search=typed))),
        "account picker": sorted(account.name for account in
                                 transfer_preview.search_accounts(session, typed)),
        "rep's list": sorted(row.name for row in rows),
        "round page": sorted(listing.account.name for listing in session.scalars(
            browse.filtered_listings(round_.id, criteria))),
    }


@pytest.fixture
def stored(session, make_account, make_round, make_rep):
    accounts = [make_account(name=name, owner=make_rep())
                for name in ("ＡＢＣ科技", "１２３贸易", "XYZ物流", "其他客户")]
    # Customer numbers without digits: a generated one (KA-001234) would itself hold "123".
    for account, number in zip(accounts, ("KA-P", "KA-Q", "KA-R", "KA-S"), strict=True):
        account.external_id = number
    session.commit()
    round_ = make_round(accounts=accounts)
    return round_.id, make_rep().id, accounts


@pytest.mark.parametrize("typed, name", [
    ("ABC", "ＡＢＣ科技"), ("abc", "ＡＢＣ科技"), ("ＡＢＣ", "ＡＢＣ科技"), ("ＡＢＣ科技", "ＡＢＣ科技"),
    ("ABC科技", "ＡＢＣ科技"), ("123", "１２３贸易"), ("23贸", "１２３贸易"), ("１２３", "１２３贸易"),
    ("XYZ", "XYZ物流"), ("ｘｙｚ", "XYZ物流")])
def test_every_search_box_finds_a_name_whatever_its_width(session, clock, stored, typed, name):
    round_id, viewer_id, _accounts = stored
    found = found_everywhere(session, clock, round_id, viewer_id, typed)
    assert found == dict.fromkeys(found, [name])


def test_the_picker_ranks_a_name_that_begins_with_the_text_first(session, stored,
                                                                 make_account):
    make_account(name="北京ABC")
    assert [account.name for account in transfer_preview.search_accounts(session, "ABC")] == [
        "ＡＢＣ科技", "北京ABC"]


def test_a_renamed_account_is_found_by_its_new_name(session, clock, stored):
    round_id, viewer_id, accounts = stored
    account = session.get(Account, accounts[3].id)
    account.name = "ＤＥＦ集团"
    session.commit()
    found = found_everywhere(session, clock, round_id, viewer_id, "DEF")
    assert found == dict.fromkeys(found, ["ＤＥＦ集团"])


def test_a_name_changed_by_a_crm_import_is_found_by_its_new_name(session, clock, stored,
                                                                 make_admin):
    round_id, viewer_id, accounts = stored
    account = session.get(Account, accounts[3].id)
    csv = ("客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售\n"
           f"{account.external_id},ＧＨＩ控股,{account.industry},民营,{account.branch.code},"
           f"{account.annual_value_yuan},{account.owner.username}\n"
           "KA-NEW-1,ＪＫＬ新客户,互联网,民营,"
           f"{account.branch.code},100000,\n")
    result = import_file(session, make_admin(), "accounts", "accounts.csv",
                         csv.encode("utf-8-sig"), valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    for typed, name in (("GHI", "ＧＨＩ控股"), ("jkl", "ＪＫＬ新客户")):
        assert [found.name for found in transfer_preview.search_accounts(session, typed)] == [
            name]
    stored_forms = dict(session.execute(select(Account.name, Account.name_folded)).all())
    assert all(folded == width_folded(name) for name, folded in stored_forms.items())


def test_a_row_written_in_bulk_gets_its_folded_name(session, make_branch, clock):
    branch = make_branch()
    session.execute(Account.__table__.insert(), [
        {"external_id": "KA-BULK-1", "name": "ＭＮＯ有限公司", "industry": "互联网",
         "ownership_type": "private", "branch_id": branch.id, "annual_value_yuan": 1,
         "created_at": clock()}])
    session.commit()
    assert session.execute(text(
        "SELECT name_folded FROM accounts WHERE external_id = 'KA-BULK-1'")).scalar() == \
        "MNO有限公司"


# --- the transfer page's rep picker: reps' names, width-blind as accounts' names -----------


def picked(session, typed: str) -> list[str]:
    return [rep.display_name for rep in transfer_preview.search_reps(session, typed)]


@pytest.fixture
def named_reps(make_rep):
    # Usernames unlike any typed text: a generated one (rep1012) would itself hold "12".
    return [make_rep(name=name, username=username) for name, username in (
        ("ＷＡＮＧ伟", "staff.a"), ("李１２", "staff.b"), ("Zhao Lei", "staff.c"))]


@pytest.mark.parametrize("typed, name", [
    ("wang", "ＷＡＮＧ伟"), ("WANG伟", "ＷＡＮＧ伟"), ("ＷＡＮＧ", "ＷＡＮＧ伟"), ("ＷＡＮＧ伟", "ＷＡＮＧ伟"),
    ("李12", "李１２"), ("１２", "李１２"), ("zhao", "Zhao Lei"), ("ｚｈａｏ", "Zhao Lei")])
def test_the_rep_picker_finds_a_name_whatever_its_width(session, named_reps, typed, name):
    assert picked(session, typed) == [name]


def test_the_rep_picker_ranks_a_name_that_is_what_was_typed_first(session, named_reps,
                                                                  make_rep):
    make_rep(name="老WANG伟")
    assert picked(session, "WANG伟") == ["ＷＡＮＧ伟", "老WANG伟"]


def test_a_rep_renamed_by_an_admin_is_found_by_the_new_name(session, clock, named_reps,
                                                            make_admin):
    from bidhub.services.users import update_user

    rep = session.get(User, named_reps[2].id)
    update_user(session, make_admin(), rep.id, display_name="ＬＩＵ洋", role=rep.role,
                branch_id=rep.branch_id, status=rep.status, is_active=rep.is_active,
                now=clock())
    assert picked(session, "liu") == ["ＬＩＵ洋"]
    assert picked(session, "zhao") == []


def test_a_rep_renamed_by_the_reps_import_is_found_by_the_new_name(session, clock, named_reps,
                                                                   make_admin):
    rep = session.get(User, named_reps[2].id)
    data = ("员工编号,用户名,姓名,分公司\n"
            f"R-{rep.id},{rep.username},ＣＨＥＮ静,{rep.branch.code}\n"
            f"R-NEW-1,new.rep,ＨＵ凯,{rep.branch.code}\n")
    result = import_file(session, make_admin(), "reps", "reps.csv", data.encode("utf-8"),
                         valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    assert picked(session, "chen") == ["ＣＨＥＮ静"]
    assert picked(session, "hu") == ["ＨＵ凯"]
    stored_forms = dict(session.execute(select(User.display_name,
                                               User.display_name_folded)).all())
    assert all(folded == width_folded(name) for name, folded in stored_forms.items())


def test_a_user_written_in_bulk_gets_its_folded_name(session, clock):
    session.execute(User.__table__.insert(), [
        {"username": "bulk.rep", "display_name": "ＺＨＯＵ敏", "password_hash": "x",
         "role": "rep", "is_active": True, "status": "active", "session_token": "t",
         "failed_login_count": 0, "created_at": clock()}])
    session.commit()
    assert session.execute(text(
        "SELECT display_name_folded FROM users WHERE username = 'bulk.rep'")).scalar() == \
        "ZHOU敏"
