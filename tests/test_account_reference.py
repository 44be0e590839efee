"""An account typed into a form (logging an incident, releasing an account into a round) by
its number or its name, as a Chinese input method types them: in either width, the number in
any case."""

from __future__ import annotations

import pytest

from bidhub.domain.errors import InvalidRequest
from bidhub.services.browse import find_account, require_account


@pytest.fixture
def account(make_account):
    return make_account(name="北京智联ＡＢＣ科技有限公司")


def typed_number(account, how: str) -> str:
    number = account.external_id  # KA-000123
    return {"lower": number.lower(), "full_width": number.translate(FULL_WIDTH),
            "spaced": f"  {number}\u3000", "exact": number}[how]


FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}


@pytest.mark.parametrize("how", ["exact", "lower", "full_width", "spaced"])
def test_the_number_is_found_in_any_case_and_width(session, account, how):
    assert find_account(session, typed_number(account, how)) is account


@pytest.mark.parametrize("typed", ["北京智联ＡＢＣ科技有限公司", "北京智联ABC科技有限公司"])
def test_the_name_is_found_in_either_width(session, account, typed):
    assert find_account(session, typed) is account


def test_a_reference_two_accounts_read_as_finds_neither(session, make_account):
    make_account(name="上海ＸＹＺ贸易有限公司")
    make_account(name="上海XYZ贸易有限公司")
    assert find_account(session, "上海ＸＹＺ贸易有限公司").name == "上海ＸＹＺ贸易有限公司"
    with pytest.raises(InvalidRequest) as refused:
        require_account(session, "上海XＹZ贸易有限公司")  # folds to both names
    assert refused.value.field == "account"


@pytest.mark.parametrize("typed", ["", "   ", "KA-", "北京智联"])
def test_nothing_else_is_an_account(session, account, typed):
    assert find_account(session, typed) is None
