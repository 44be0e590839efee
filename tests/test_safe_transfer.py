"""The safe direct transfer: type-ahead picks, a preview of what it changes, and a confirmation
summary before anything is filed; a stale summary is refused."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from bidhub.models import Account, AccountReview, DecisionKind, Filing, FilingKind, RoundStatus
from bidhub.services.adjudication import decide_listing, score_closed_round
from bidhub.services.transfer_preview import MAX_SUGGESTIONS, Band, band_of
from tests.conftest import reload

REASON = "The rep moves to the Shanghai branch."
REVIEW = "Handover planned with the client's purchaser."


def filings(session) -> int:
    reload(session)
    return session.scalar(select(func.count()).select_from(Filing))


def text_of(response) -> str:
    return response.get_data(as_text=True)


def summary_data(account, to_rep, **extra) -> dict[str, str]:
    return {"account": str(account.id), "to_rep": str(to_rep.id), "reason": REASON,
            "review_text": REVIEW, **extra}


def confirm_data(account, to_rep, owner, **extra) -> dict[str, str]:
    return summary_data(account, to_rep, owner=str(owner.id) if owner else "none", **extra)


# --- type-ahead --------------------------------------------------------------------------------

def test_accounts_are_found_by_name_number_and_chinese_text(login_as, make_manager, make_account,
                                                            make_rep):
    owner = make_rep(name="李娜")
    chinese = make_account(owner=owner, name="北京字节跳动科技有限公司")
    other = make_account(name="Shanghai Steel Works")
    client = login_as(make_manager())
    page = text_of(client.get("/manage/transfer/accounts", query_string={"account_q": "字节跳动"}))
    assert "北京字节跳动科技有限公司" in page and "held by 李娜" in page
    assert "Shanghai Steel" not in page
    page = text_of(client.get("/manage/transfer/accounts", query_string={"account_q": other.external_id}))
    assert "Shanghai Steel Works" in page and "字节跳动" not in page
    page = text_of(client.get("/manage/transfer/accounts", query_string={"account_q": "steel works"}))
    assert "Shanghai Steel Works" in page
    assert f'"account": "{chinese.id}"' not in page
    page = text_of(client.get("/manage/transfer/accounts", query_string={"account_q": "无此客户"}))
    assert "No account matches" in page


def test_suggestions_are_bounded_and_wildcards_are_plain_text(login_as, make_manager,
                                                              make_account):
    for n in range(MAX_SUGGESTIONS + 5):
        make_account(name=f"Bounded Trading {n:02d}")
    make_account(name="Percent 100% Co.")
    client = login_as(make_manager())
    page = text_of(client.get("/manage/transfer/accounts", query_string={"account_q": "Bounded"}))
    assert page.count("<li>") == MAX_SUGGESTIONS
    page = text_of(client.get("/manage/transfer/accounts", query_string={"account_q": "%"}))
    assert page.count("<li>") == 1 and "Percent 100% Co." in page
    assert "<li>" not in text_of(client.get("/manage/transfer/accounts",
                                            query_string={"account_q": "_"}))


def test_from_rep_limits_accounts_to_that_reps(login_as, make_manager, make_account, make_rep):
    rep, other = make_rep(), make_rep()
    mine = make_account(owner=rep, name="Mine Ltd.")
    make_account(owner=other, name="Theirs Ltd.")
    client = login_as(make_manager())
    page = text_of(client.get("/manage/transfer/accounts", query_string={"from_rep": rep.id}))
    assert "Mine Ltd." in page and "Theirs Ltd." not in page
    page = text_of(client.get(f"/manage/transfer?from_rep={rep.id}&account={mine.id}"))
    assert f'name="from_rep" value="{rep.id}"' in page
    assert f'name="account" value="{mine.id}"' in page


def test_reps_are_found_by_name_username_and_employee_id_and_only_active(
        session, login_as, make_manager, make_rep, give_accounts):
    wang = make_rep(name="王伟", username="wangwei")
    wang.external_id = "E-1024"
    gone = make_rep(name="王芳", username="wangfang")
    gone.is_active = False
    session.commit()
    give_accounts(wang, 3)
    client = login_as(make_manager())
    for query in ("王", "wangwei", "E-1024", "WANGWEI"):
        page = text_of(client.get("/manage/transfer/reps", query_string={"rep_q": query}))
        assert "王伟" in page, query
        assert "王芳" not in page, query
    page = text_of(client.get("/manage/transfer/reps", query_string={"rep_q": "王伟"}))
    assert "3 of 30–40 accounts" in page
    manager = make_manager(name="Manager Wang")
    page = text_of(client.get("/manage/transfer/reps", query_string={"rep_q": manager.username}))
    assert "No active rep matches" in page


def test_the_page_preselects_no_rep(login_as, make_manager, make_rep):
    make_rep()
    page = text_of(login_as(make_manager()).get("/manage/transfer"))
    assert 'name="to_rep" value=""' in page and 'name="account" value=""' in page
    assert "<select" not in page


def test_garbage_parameters_are_refused_not_500(login_as, make_manager, make_account):
    account = make_account()
    client = login_as(make_manager())
    for value in ("abc", "-1", "0", str(2**31), "9" * 400, "٣", "1e3", "\x00"):
        for path, name in (("/manage/transfer/picks", "account"),
                           ("/manage/transfer/picks", "to_rep"),
                           ("/manage/transfer/accounts", "from_rep")):
            response = client.get(path, query_string={name: value})
            assert response.status_code == 400, (path, name, value)
        response = client.get("/manage/transfer", query_string={"account": value})
        assert response.status_code == 200
    for query in ("\x00", "a" * 5000, "'; DROP TABLE accounts;--", "\\", "😀"):
        for path, box in (("/manage/transfer/accounts", "account_q"),
                          ("/manage/transfer/reps", "rep_q")):
            # Past the pickers' limit: refused with both lengths (test_search_length).
            expected = 422 if len(query) > 100 else 200
            assert client.get(path, query_string={box: query}).status_code == expected
    # Ids that parse but name nothing (or no active rep) leave the picker open.
    page = text_of(client.get("/manage/transfer/picks",
                              query_string={"account": account.id, "to_rep": 999_999}))
    assert f'name="account" value="{account.id}"' in page and 'name="to_rep" value=""' in page


# --- the preview -------------------------------------------------------------------------------

def test_preview_shows_owner_counts_and_band(login_as, make_manager, make_rep, make_account,
                                             give_accounts):
    owner, receiver = make_rep(name="Owner Zhang"), make_rep(name="Receiver Li")
    give_accounts(owner, 30)
    account = make_account(owner=owner)
    give_accounts(receiver, 39)
    page = text_of(login_as(make_manager()).get(
        "/manage/transfer/picks", query_string={"account": account.id, "to_rep": receiver.id}))
    assert "Current owner: Owner Zhang." in page
    assert "<td class=\"num\">31</td>" in page and "<strong>30</strong>" in page
    assert "<td class=\"num\">39</td>" in page and "<strong>40</strong>" in page
    assert "within the band" in page
    assert "Not listed in any unfinished round." in page
    assert "Sponsored account" not in page


def test_preview_flags_a_listed_account_and_links_to_its_round(login_as, make_manager, make_rep,
                                                               make_account, make_round):
    account = make_account(owner=make_rep())
    round_ = make_round(status=RoundStatus.DRAFT, accounts=[account], title="Spring draft")
    page = text_of(login_as(make_manager()).get(
        "/manage/transfer/picks", query_string={"account": account.id, "to_rep": make_rep().id}))
    assert "Listed in round “Spring draft”" in page
    assert f"/manage/rounds/{round_.id}" in page


def test_preview_says_who_confirms_a_sponsored_account(session, login_as, make_manager,
                                                       make_rep, make_account, make_user):
    sponsor = make_user("executive", name="President Zhao")
    account = make_account(owner=make_rep())
    account.sponsor_id = sponsor.id
    session.commit()
    client = login_as(make_manager())
    page = text_of(client.get("/manage/transfer/picks",
                              query_string={"account": account.id, "to_rep": make_rep().id}))
    assert "will be sent to President Zhao for confirmation" in page
    titled = make_account(owner=make_rep(), executive_sponsor="president")
    page = text_of(client.get("/manage/transfer/picks",
                              query_string={"account": titled.id, "to_rep": make_rep().id}))
    assert "no sponsor person is designated" in page


def test_preview_puts_awards_not_yet_published_in_the_pages_brackets(
        session, clock, login_as, make_manager, make_rep, make_account, make_round, make_bid):
    manager, receiver = make_manager(), make_rep(name="Receiver Li")
    round_ = make_round(accounts=[make_account()], manager=manager,
                        closes_at=clock() + timedelta(hours=1))
    make_bid(receiver, round_.listings[0])
    clock.advance(hours=1)
    assert score_closed_round(session, round_.id, clock())
    decide_listing(session, manager, round_.listings[0].id, kind=DecisionKind.ACCEPTED,
                   bid_id=None, reason="", now=clock())
    client = login_as(manager)
    query = {"account": make_account(owner=make_rep()).id, "to_rep": receiver.id}
    chinese = text_of(client.get("/manage/transfer/picks", query_string=query,
                                 headers={"Accept-Language": "zh-CN"}))
    assert re.search(r'\d（<small class="muted">其中 1 个已裁定中标、尚未公示</small>）', chinese)
    english = text_of(client.get("/manage/transfer/picks", query_string=query,
                                 headers={"Accept-Language": "en"}))
    assert re.search(r'\d \(<small class="muted">1 awarded, not yet published</small>\)', english)


def test_band_of():
    assert band_of(29, 30, 40) is Band.BELOW
    assert band_of(30, 30, 40) is Band.INSIDE
    assert band_of(40, 30, 40) is Band.INSIDE
    assert band_of(41, 30, 40) is Band.ABOVE


# --- the summary and its confirmation ----------------------------------------------------------

def test_the_summary_files_nothing_and_shows_what_will_be_filed(
        session, login_as, make_manager, make_rep, make_account, give_accounts):
    owner, receiver = make_rep(name="Owner Zhang"), make_rep(name="Receiver Li")
    account = make_account(owner=owner, name="Summary Co.")
    give_accounts(receiver, 5)
    client = login_as(make_manager())
    before = filings(session)
    response = client.post("/manage/transfer/summary", data=summary_data(account, receiver))
    assert response.status_code == 200
    page = text_of(response)
    assert "Confirm the transfer" in page and "Summary Co." in page
    assert "Owner Zhang: 1 → 0 accounts" in page
    assert "Receiver Li: 5 → 6 accounts" in page
    assert REASON in page and "Handover planned with the client&#39;s purchaser." in page
    assert f'name="owner" type="hidden" value="{owner.id}"' in page
    assert filings(session) == before
    assert session.get(Account, account.id).owner_id == owner.id
    # "Change" brings the form back as filled in, still filing nothing.
    response = client.post("/manage/transfer/summary",
                           data=summary_data(account, receiver, edit="1"))
    assert response.status_code == 200 and "Review the transfer" in text_of(response)
    assert REASON in text_of(response)
    assert filings(session) == before


def test_confirming_files_the_transfer_and_links_to_it(session, login_as, make_manager, make_rep,
                                                       make_account):
    owner, receiver = make_rep(), make_rep()
    account = make_account(owner=owner)
    client = login_as(make_manager())
    before = filings(session)
    response = client.post("/manage/transfer", data=confirm_data(account, receiver, owner))
    assert response.status_code == 303
    assert response.location.endswith(f"/manage/filings?rep={receiver.id}")
    assert filings(session) == before + 1
    filing = session.scalars(select(Filing).order_by(Filing.seq.desc())).first()
    assert (filing.kind, filing.from_rep_id, filing.to_rep_id, filing.reason) == (
        FilingKind.DIRECT_TRANSFER, owner.id, receiver.id, REASON)
    assert session.get(Account, account.id).owner_id == receiver.id
    page = text_of(client.get(response.location))
    assert f"Transfer filed as No. {filing.seq}." in page


def test_an_unowned_account_is_confirmed_with_no_owner(session, login_as, make_manager, make_rep,
                                                       make_account):
    account, receiver = make_account(), make_rep()
    client = login_as(make_manager())
    page = text_of(client.post("/manage/transfer/summary",
                               data=summary_data(account, receiver, review_text="")))
    assert 'name="owner" type="hidden" value="none"' in page
    response = client.post("/manage/transfer", data=confirm_data(account, receiver, None,
                                                                 review_text=""))
    assert response.status_code == 303
    reload(session)
    assert session.get(Account, account.id).owner_id == receiver.id


def test_a_stale_summary_is_refused(session, login_as, make_manager, make_rep, make_account):
    owner, receiver, meanwhile = make_rep(), make_rep(), make_rep(name="Meanwhile Wu")
    account = make_account(owner=owner, name="Stale Co.")
    client = login_as(make_manager())
    assert client.post("/manage/transfer/summary",
                       data=summary_data(account, receiver)).status_code == 200
    # Someone else moves the account before this summary is confirmed.
    other = login_as(make_manager())
    assert other.post("/manage/transfer",
                      data=confirm_data(account, meanwhile, owner)).status_code == 303
    client = login_as(make_manager())
    before = filings(session)
    response = client.post("/manage/transfer", data=confirm_data(account, receiver, owner))
    assert response.status_code == 409
    page = text_of(response)
    assert "Stale Co. changed owner after this summary was shown" in page
    assert "now held by Meanwhile Wu. Check what the transfer changes now, below" in page
    assert "Current owner: Meanwhile Wu." in page  # the fresh preview, to check again
    assert filings(session) == before
    assert session.get(Account, account.id).owner_id == meanwhile.id


def test_a_confirmation_without_its_owner_token_files_nothing(session, login_as, make_manager,
                                                              make_rep, make_account):
    owner, receiver = make_rep(), make_rep()
    account = make_account(owner=owner)
    client = login_as(make_manager())
    before = filings(session)
    for owner_value in (None, "", "abc", "-1", str(2**31)):
        data = summary_data(account, receiver)
        if owner_value is not None:
            data["owner"] = owner_value
        response = client.post("/manage/transfer", data=data)
        assert response.status_code == 422, owner_value
    assert filings(session) == before


def test_capacity_refusal_is_shown_on_the_rep_field(session, login_as, make_manager, make_rep,
                                                    make_account, give_accounts):
    owner, full = make_rep(), make_rep(name="Full Chen")
    account = make_account(owner=owner)
    give_accounts(full, 40)
    client = login_as(make_manager())
    before = filings(session)
    response = client.post("/manage/transfer/summary", data=summary_data(account, full))
    assert response.status_code == 422
    page = text_of(response)
    field = page[page.index('for="transfer-rep-q"'):page.index('id="transfer-preview"')]
    assert "Full Chen holds 40 accounts; one more would exceed the maximum of 40." in field
    # The confirm step, reached by a hand-made request, is refused by the service the same way.
    response = client.post("/manage/transfer", data=confirm_data(account, full, owner))
    assert response.status_code == 422
    assert "one more would exceed the maximum of 40" in text_of(response)
    assert filings(session) == before


def test_field_errors_re_render_with_422(session, login_as, make_manager, make_rep, make_account,
                                         make_round):
    owner, receiver = make_rep(), make_rep()
    account, listed = make_account(owner=owner), make_account(owner=owner)
    listed_round = make_round(status=RoundStatus.DRAFT, accounts=[listed])
    client = login_as(make_manager())
    before = filings(session)
    cases = [
        ({"account": "", "to_rep": ""}, "Choose the account to transfer."),
        ({"to_rep": ""}, "Choose the rep who receives the account."),
        ({"account": "999999"}, "Choose the account from the list."),
        ({"reason": "short"}, "At least 10 characters are needed here; the text sent has 5."),
        ({"review_text": ""}, "Write a review of why the account leaves its rep"),
        ({"to_rep": str(owner.id)}, "already holds"),
    ]
    for change, message in cases:
        response = client.post("/manage/transfer/summary",
                               data={**summary_data(account, receiver), **change})
        assert response.status_code == 422, change
        assert message in text_of(response), (change, text_of(response)[:2000])
    response = client.post("/manage/transfer/summary", data=summary_data(listed, receiver),
                           headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    # The round by its title, as management knows it, never by its database id.
    assert (f"已列入竞标轮次“{listed_round.title}”；请在该轮次中裁定，或先撤下该竞标客户"
            in text_of(response))
    assert filings(session) == before


def test_a_refused_form_keeps_what_was_typed_in_each_picker(login_as, make_manager, make_rep,
                                                           make_account):
    owner = make_rep()
    account = make_account(owner=owner, name="北京星辰科技")
    client = login_as(make_manager())
    typed = {"account_q": "星辰 <科技>", "rep_q": "王&芳"}
    response = client.post("/manage/transfer/summary",
                           data={**summary_data(account, owner), "account": "", "to_rep": "",
                                 **typed})
    assert response.status_code == 422
    page = text_of(response)
    boxes = dict(re.findall(r'<input type="search" id="(transfer-\w+-q)" name="\w+"'
                            r'[^>]*?value="([^"]*)"', page))
    assert boxes == {"transfer-account-q": "星辰 &lt;科技&gt;", "transfer-rep-q": "王&amp;芳"}
    # Each box asks for its suggestions again as the page loads, under its own name.
    assert 'name="account_q"' in page and 'name="rep_q"' in page
    assert page.count(", load\"") == 2
    # With only the rep refused, the account stays picked and the rep's text stays typed.
    response = client.post("/manage/transfer/summary",
                           data={**summary_data(account, owner), "to_rep": "999999", **typed})
    page = text_of(response)
    assert 'id="transfer-account-q" name="account_q"' not in page
    assert re.search(r'id="transfer-rep-q" name="rep_q"[^>]*?value="王&amp;芳"', page)
    # A fresh page has empty boxes that load nothing.
    page = text_of(client.get("/manage/transfer"))
    assert 'value=""' in page and ", load" not in page


def test_an_inactive_rep_cannot_be_confirmed(session, login_as, make_manager, make_rep,
                                             make_account):
    owner, gone = make_rep(), make_rep()
    gone.is_active = False
    session.commit()
    account = make_account(owner=owner)
    client = login_as(make_manager())
    response = client.post("/manage/transfer/summary", data=summary_data(account, gone))
    assert response.status_code == 422
    assert "Choose an active rep from the list." in text_of(response)
    response = client.post("/manage/transfer", data=confirm_data(account, gone, owner))
    assert response.status_code == 422
    assert filings(session) == 1  # the account's own first filing only


def test_a_sponsored_account_waits_for_its_sponsor(session, login_as, make_manager, make_rep,
                                                   make_account, make_user):
    from bidhub.models import TransferRequest

    sponsor = make_user("executive", name="President Zhao")
    owner, receiver = make_rep(), make_rep()
    account = make_account(owner=owner)
    account.sponsor_id = sponsor.id
    session.commit()
    client = login_as(make_manager())
    page = text_of(client.post("/manage/transfer/summary", data=summary_data(account, receiver)))
    assert "Send to the sponsor for confirmation" in page
    before = filings(session)
    response = client.post("/manage/transfer", data=confirm_data(account, receiver, owner))
    assert response.status_code == 303
    assert filings(session) == before
    assert session.get(Account, account.id).owner_id == owner.id
    request = session.scalars(select(TransferRequest)).one()
    assert (request.sponsor_id, request.to_rep_id) == (sponsor.id, receiver.id)
    assert response.location.endswith(f"/manage/accounts/{account.id}")
    assert "was sent to President Zhao for confirmation" in text_of(client.get(response.location))


def test_a_transfer_already_waiting_for_the_sponsor_is_named_before_the_summary(
        session, login_as, make_manager, make_rep, make_account, make_user):
    """The sponsor answers one request for an account at a time: the preview and the summary
    say a second one would be refused, rather than the confirmation after the summary."""
    sponsor = make_user("executive", name="President Zhao")
    owner = make_rep()
    account = make_account(owner=owner)
    account.sponsor_id = sponsor.id
    session.commit()
    client = login_as(make_manager())
    response = client.post("/manage/transfer", data=confirm_data(account, make_rep(), owner))
    assert response.status_code == 303
    waiting = "already waits for its sponsor&#39;s answer"
    page = text_of(client.get("/manage/transfer/picks",
                              query_string={"account": account.id, "to_rep": make_rep().id}))
    assert waiting in page
    response = client.post("/manage/transfer/summary", data=summary_data(account, make_rep()))
    assert response.status_code == 422
    assert waiting in text_of(response) and "Send to the sponsor" not in text_of(response)


def test_the_transfer_writes_the_loss_review(session, login_as, make_manager, make_rep,
                                             make_account):
    owner, receiver = make_rep(), make_rep()
    account = make_account(owner=owner)
    login_as(make_manager()).post("/manage/transfer", data=confirm_data(account, receiver, owner))
    reload(session)
    review = session.scalars(select(AccountReview)
                             .where(AccountReview.account_id == account.id)).one()
    assert review.rep_id == owner.id



def test_the_transfer_pages_speak_chinese(login_as, make_manager, make_rep, make_account,
                                          make_round):
    from tests.test_i18n import ALLOWED_WORDS, english_words, visible_text

    owner, receiver = make_rep(name="张伟", username="zhangwei"), make_rep(name="李娜",
                                                                          username="lina")
    account = make_account(owner=owner, name="北京某某科技有限公司")
    listed = make_account(owner=owner, name="上海某某贸易有限公司")
    make_round(accounts=[listed], title="三月客户资源竞标")
    client = login_as(make_manager(name="王经理", username="wangjl"))
    allowed = ALLOWED_WORDS | {"zhangwei", "lina", "KA", "BJ", "Beijing"}
    headers = {"Accept-Language": "zh-CN"}
    pages = {
        f"/manage/transfer?account={account.id}&to_rep={receiver.id}": "划转带来的变化",
        f"/manage/transfer/picks?account={listed.id}&to_rep={receiver.id}": "不能直接划转",
        "/manage/transfer/accounts?account_q=某某": "所属销售：张伟",
        "/manage/transfer/reps?rep_q=lina": "名下 0 个客户（区间 30–40）",
        "/manage/transfer/accounts?account_q=无此": "没有与“无此”匹配的客户。",
    }

    def english_in(page: str) -> dict[str, str]:
        # Only this feature's part of a full page; the header's links belong to other pages.
        if "<main" in page:
            page = page[page.index("<main"):page.index("</main>")]
        return english_words(visible_text(page), allowed)

    for path, chinese in pages.items():
        page = text_of(client.get(path, headers=headers))
        assert chinese in page, path
        assert not english_in(page), (path, english_in(page))
    page = text_of(client.post("/manage/transfer/summary", headers=headers, data={
        **summary_data(account, receiver), "reason": "原销售调往上海分公司。",
        "review_text": "已与客户采购人完成交接，客户同意由新销售跟进后续合作。"}))
    assert "确认划转" in page and "确认并备案" in page and "张伟：2 → 1 个客户（低于区间）" in page
    assert not english_in(page), english_in(page)
