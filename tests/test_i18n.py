"""Chinese first, English second: the catalogue is complete, pages speak the chosen language.

Every other test module runs in English (tests/conftest.py); this one runs with bidhub's real
default, zh_CN, and checks what a Chinese-speaking department sees.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask_babel import force_locale
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from bidhub import create_app
from bidhub.domain.allocation import _elsewhere
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Bid,
    Branch,
    ImportRun,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundStatus,
    RuleSetVersion,
    User,
)
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from bidhub.services.appeals import file_appeal
from bidhub.web.i18n import best_language, compile_catalogue, translate, translation_directories
from bidhub.web.params import parse_yuan
from bidhub.web.rendering import localtime, yuan, yuan_compact
from tests.browser.world import PASSWORD as WORLD_PASSWORD
from tests.browser.world import build_world
from tests.conftest import PASSWORD, reload

ROOT = Path(__file__).resolve().parent.parent
PO_FILE = ROOT / "bidhub" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
# What `pybabel extract -F babel.cfg -k N_ -k _l -k lazy_gettext` looks for (README "Languages").
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)[-#0 +]*[0-9]*(?:\.[0-9]+)?[sdifgr]")
SCRIPT_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
# Chinese characters (CJK ideographs), for a character class; full-width punctuation is not one.
CHINESE = "\u3400-\u9fff"


@pytest.fixture
def app_config(app_config):
    """bidhub's real default: a page is Chinese unless the person or their browser says not."""
    return {**app_config, "DEFAULT_LOCALE": "zh_CN"}


# --- the catalogue ------------------------------------------------------------------------------

def extracted_msgids() -> dict[str | tuple[str, ...], list[str]]:
    """Every msgid in the sources, extracted as `pybabel extract` does, with where it is."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str | tuple[str, ...], list[str]] = defaultdict(list)
    # Babel warns on stderr about every f-string among a call's arguments, even a parameter's
    # value (count=f"{n:,}"), which is fine; an f-string msgid fails the test below.
    with contextlib.redirect_stderr(io.StringIO()):
        for filename, lineno, message, _comments, _context in extract_from_dir(
                str(ROOT), method_map, options_map, keywords=KEYWORDS):
            msgid = message if isinstance(message, str) else tuple(message)
            if msgid:
                found[msgid].append(f"{filename}:{lineno}")
    return found


GETTEXT_CALLS = frozenset({"_", "_l", "N_", "gettext", "lazy_gettext", "ngettext"})


def test_no_msgid_is_built_at_run_time():
    """A msgid is a literal: an f-string, a concatenation or a variable cannot be extracted, so
    it would stay English (parameters go in as %(name)s)."""
    built = []
    for path in sorted((ROOT / "bidhub").rglob("*.py")):
        if path == ROOT / "bidhub" / "domain" / "text.py":
            continue  # Text.render translates the msgid it carries
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in GETTEXT_CALLS and node.args):
                continue
            literals = node.args[:2] if node.func.id == "ngettext" else node.args[:1]
            if not all(isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                       for arg in literals):
                built.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:80]}")
    assert not built, "msgids that are not literals:\n" + "\n".join(built)


def catalogue():
    with PO_FILE.open("rb") as po:
        return read_po(po, locale="zh_CN")


def test_every_message_in_the_sources_has_a_chinese_translation():
    translations = catalogue()
    missing = []
    for msgid, places in sorted(extracted_msgids().items(), key=lambda item: str(item[0])):
        singular = msgid if isinstance(msgid, str) else msgid[0]
        entry = translations.get(singular)
        strings = () if entry is None else (
            (entry.string,) if isinstance(entry.string, str) else tuple(entry.string))
        if entry is None or not strings or not all(strings) or entry.fuzzy:
            missing.append(f"{msgid!r} ({places[0]})")
    assert not missing, (
        f"{len(missing)} messages lack a zh_CN translation; run the recipe in README "
        "\"Languages\" (extract, update) and translate them:\n" + "\n".join(missing))


# Words the handbook (README "Languages") settles, and the near-synonyms that crept in
# beside them: a rep reading 业绩记录 on one page and 业绩档案 on the next wonders whether they
# are two things.
HANDBOOK_WORDS = {"业绩记录": "业绩档案", "合资企业": "中外合资", "上市企业": "上市公司",
                  "流失复盘": "丢失总结"}


def test_the_chinese_catalogue_keeps_to_the_handbooks_words():
    strays = []
    for message in catalogue():
        strings = (message.string,) if isinstance(message.string, str) else message.string
        for text in strings:
            strays += [f"{word} (say {settled}): {message.id!r}"
                       for word, settled in HANDBOOK_WORDS.items() if word in (text or "")]
    assert not strays, "\n".join(strays)


def stray_percents(text: str) -> int:
    """Percent signs that are neither a placeholder nor an escaped %% (Jinja formats every
    template message, so a stray one breaks the page)."""
    return PLACEHOLDER.sub("", text).replace("%%", "").count("%")


def placeholders(text: str) -> list[str]:
    """Python's %(name)s and the {name} that scripts fill in (the countdown's)."""
    return sorted(set(PLACEHOLDER.findall(text)) | set(SCRIPT_PLACEHOLDER.findall(text)))


def test_translations_keep_the_placeholders_and_are_not_fuzzy():
    problems = []
    for entry in catalogue():
        if not entry.id:
            continue
        ids = (entry.id,) if isinstance(entry.id, str) else tuple(entry.id)
        strings = (entry.string,) if isinstance(entry.string, str) else tuple(entry.string)
        if entry.fuzzy:
            problems.append(f"fuzzy: {ids[0]!r}")
        expected = placeholders(ids[-1])
        for string in filter(None, strings):
            if placeholders(string) != expected:
                problems.append(f"placeholders differ: {ids[0]!r} -> {string!r}")
            if stray_percents(string) != stray_percents(ids[-1]):
                problems.append(f"a stray % differs: {ids[0]!r} -> {string!r}")
    assert not problems, "\n".join(problems)


def test_the_catalogue_uses_the_handbooks_words():
    """The words the department uses (DOMAIN.md): 竞标 for bidding, 中标 for winning, 公示 for
    announcing results, 备案 for filing, KA销售 for a rep, 老板负责 for an executive sponsor."""
    translations = catalogue()

    def chinese(msgid: str) -> str:
        return translations.get(msgid).string

    assert "竞标" in chinese("Bidding rounds") and "竞标申请表" in chinese("Bid application")
    assert "中标" in chinese("You won this account.") and chinese("Won") == "中标"
    assert "公示" in chinese("Publish results") and "公示" in chinese("Results announced")
    assert "备案" in chinese("Filing register") and "备案" in chinese("Transfer and file")
    assert chinese("Rep") == "KA销售" and "KA销售管理部" in chinese("KA manager")
    assert "老板负责" in chinese("Releases of executive-sponsored accounts")
    assert "问责" in chinese("Accountability") and "问责客户说明表" in chinese(
        "Explanation (问责客户说明表)")



# One rule for numbers in Chinese text, the one most of the catalogue already followed: an
# Arabic numeral (digits in the text, or a placeholder that stands for a number or a date) is
# set apart from a Chinese character beside it by one space: 名下 %(held)d 个客户, 近 12 个月,
# 截止于 %(when)s. 万 and 亿 after digits are part of the number (12万, as amounts are written
# and read). A placeholder that stands for words (a name, an account, a title) follows no rule
# here. %(x)d, %(x)g and the like are numbers; these %(x)s placeholders are given numbers or
# dates, formatted, wherever they stand beside Chinese text (a quoted "%(value)s" is what
# someone typed).
NUMBER_PLACEHOLDER_NAMES = frozenset({
    "amount", "bonus", "byte", "count", "days", "distance", "forecast", "high", "limit", "low",
    "maximum", "median", "minimum", "months", "n", "num", "ratio", "seed", "size", "value",
    "closes_at", "date", "day", "due", "due_at", "eligible_at", "reset_at", "start", "when",
    "won_on"})
NAMED_PLACEHOLDER = re.compile(
    r"%\(([A-Za-z_][A-Za-z0-9_]*)\)[-#0 +]*[0-9]*(?:\.[0-9]+)?([sdifgr])")
# What a placeholder stands for while the text is checked: a digit for a number, a letter
# for words (never next to 万, which only digits take).
NUMBER_STAND_IN, WORDS_STAND_IN = "0", "x"
NUMERAL_TOUCHING_CHINESE = re.compile(rf"[{CHINESE}][0-9]|[0-9](?![万亿])[{CHINESE}]")


def numerals_touching_chinese(text: str) -> list[str]:
    """Where `text` sets an Arabic numeral straight against a Chinese character."""
    def stand_in(match: re.Match) -> str:
        name, conversion = match.groups()
        numeric = conversion in "difg" or name in NUMBER_PLACEHOLDER_NAMES
        return NUMBER_STAND_IN if numeric else WORDS_STAND_IN

    checked = NAMED_PLACEHOLDER.sub(stand_in, text)
    return [checked[max(0, found.start() - 6):found.end() + 6]
            for found in NUMERAL_TOUCHING_CHINESE.finditer(checked)]


def test_a_numeral_touching_chinese_is_found():
    assert numerals_touching_chinese("已持有40个客户") == ["已持有40个客户"] * 2  # both sides
    assert numerals_touching_chinese("名下%(held)d 个客户") == ["名下0 个客户"]
    assert numerals_touching_chinese("截止于%(when)s") == ["截止于0"]
    assert numerals_touching_chinese("还有 %(count)s个") == ["还有 0个"]
    assert not numerals_touching_chinese(
        "名下 %(held)d 个客户（区间 %(target)d–%(max)d）；%(rep)s在本轮；可写作“12万”，即 120000；"
        "近 12 个月；第 %(row)d 行：%(problem)s；100万及以上")


def test_numerals_stand_apart_from_chinese_characters_in_every_msgstr():
    touching = []
    for entry in catalogue():
        if not entry.id:
            continue
        strings = (entry.string,) if isinstance(entry.string, str) else tuple(entry.string)
        for string in filter(None, strings):
            touching.extend(f"{string!r}: {where!r}" for where in numerals_touching_chinese(string))
    assert not touching, (f"{len(touching)} numerals written against a Chinese character; "
                          "put a space between them:\n" + "\n".join(touching))


def test_reps_and_managers_are_addressed_as_你_and_executives_as_您():
    """One form of address per audience: the department's own people read 你 everywhere, the
    executive sponsors (老板) read 您 on their confirmations."""
    translations = catalogue()
    polite = {message.id for message in translations if message.id and "您" in message.string}
    assert polite == {
        "%(requester)s asks to transfer %(account)s, which you sponsor, from %(from_rep)s to "
        "%(to_rep)s; it waits for your confirmation.",
        "Nothing waits for your confirmation.",
        "This transfer was answered in the meantime; your answer was not recorded. The page "
        "shows what still waits for you.",
        next(message.id for message in translations if isinstance(message.id, str)
             and message.id.startswith("These accounts are sponsored by you.")),
        "Your answer"}

# --- compiled catalogues ------------------------------------------------------------------------

def test_a_missing_or_stale_mo_is_compiled_into_the_instance_folder(tmp_path):
    package, instance = tmp_path / "bidhub", tmp_path / "instance"
    po = package / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_bytes(PO_FILE.read_bytes())
    app = SimpleNamespace(root_path=str(package), instance_path=str(instance))

    directory = translation_directories(app)  # no .mo next to the .po: compiled elsewhere
    compiled = instance / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.mo"
    assert directory == str(instance / "translations") and compiled.exists()

    compile_catalogue(po, po.with_suffix(".mo"))  # as a build or `pybabel compile` leaves it
    assert translation_directories(app) == str(package / "translations")


def test_a_real_install_compiles_the_catalogue_and_serves_chinese(app, client):
    assert Path(app.config["BABEL_TRANSLATION_DIRECTORIES"], "zh_Hans_CN", "LC_MESSAGES",
                "messages.mo").exists()
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-CN">' in page and "登录 bidhub" in page


# --- choosing the language ----------------------------------------------------------------------

def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True)).group(1)


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "zh-CN"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-US,en;q=0.9", "en"),
    ("en-GB,zh-CN;q=0.5", "en"), ("zh-TW", "zh-CN"), ("fr-FR", "zh-CN"), ("*", "zh-CN")])
def test_without_a_choice_the_browser_decides_then_the_default(app, client, accept, expected):
    headers = {"Accept-Language": accept} if accept else {}
    assert html_lang(client.get("/login", headers=headers)) == expected


def test_best_language_falls_back_to_the_language_before_the_next_preference():
    languages = ("zh_CN", "en")
    assert best_language([("en-GB", 1.0), ("zh-CN", 0.5)], languages) == "en"
    assert best_language([("zh-Hans-CN", 1.0)], languages) == "zh_CN"
    assert best_language([("de", 1.0), ("en", 0.0)], languages) is None
    assert best_language([("de", 1.0)], languages) is None


def sign_in(client, user: User, password: str = PASSWORD, **headers):
    response = client.post("/login", data={"username": user.username, "password": password},
                           headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def test_the_switch_is_saved_on_the_user_and_beats_the_browser(app, session, make_rep):
    rep = make_rep()
    client = app.test_client()
    sign_in(client, rep)
    chinese = {"Accept-Language": "zh-CN"}
    assert html_lang(client.get("/rounds", headers=chinese)) == "zh-CN"

    response = client.post("/language", data={"locale": "en", "next": "/rounds?q=x"})
    assert response.status_code == 303 and response.location == "/rounds?q=x"
    page = client.get("/rounds", headers=chinese)
    assert html_lang(page) == "en" and "Bidding rounds" in page.get_data(as_text=True)
    reload(session)
    assert session.get(User, rep.id).locale == "en"

    # Signed out, the login page keeps speaking it; on another device, signing in brings it.
    client.post("/logout")
    assert html_lang(client.get("/login", headers=chinese)) == "en"
    other_device = app.test_client()
    assert html_lang(other_device.get("/login", headers=chinese)) == "zh-CN"
    sign_in(other_device, rep, **chinese)
    assert html_lang(other_device.get("/rounds", headers=chinese)) == "en"

    other_device.post("/language", data={"locale": "zh_CN", "next": "/rounds"})
    assert html_lang(other_device.get("/rounds", headers={"Accept-Language": "en"})) == "zh-CN"


def test_a_choice_on_the_login_page_lasts_through_signing_in(app, make_rep):
    client = app.test_client()
    english = {"Accept-Language": "en"}
    assert html_lang(client.get("/login", headers=english)) == "en"
    client.post("/language", data={"locale": "zh_CN", "next": "/login"})
    page = client.get("/login", headers=english)
    assert html_lang(page) == "zh-CN" and "登录 bidhub" in page.get_data(as_text=True)
    sign_in(client, make_rep(), **english)
    assert html_lang(client.get("/rounds", headers=english)) == "zh-CN"


def test_a_choice_on_the_login_page_beats_the_language_saved_before(app, session, make_rep):
    """A rep who saved Chinese picks English on the login page and signs in: English, saved."""
    rep = make_rep()
    client = app.test_client()
    sign_in(client, rep)
    client.post("/language", data={"locale": "zh_CN", "next": "/rounds"})
    client.post("/logout")
    assert html_lang(client.get("/login")) == "zh-CN"
    client.post("/language", data={"locale": "en", "next": "/login"})
    sign_in(client, rep)
    assert html_lang(client.get("/rounds")) == "en"
    reload(session)
    assert session.get(User, rep.id).locale == "en"
    # Signing in again without touching the switch keeps the saved language.
    client.post("/logout")
    other_device = app.test_client()
    sign_in(other_device, rep, **{"Accept-Language": "zh-CN"})
    assert html_lang(other_device.get("/rounds", headers={"Accept-Language": "zh-CN"})) == "en"


@pytest.mark.parametrize("locale", ["", "fr", "zh_TW", "../en", "en\r\nX: y"])
def test_an_unknown_language_changes_nothing(app, session, client, make_rep, locale):
    rep = make_rep()
    sign_in(client, rep)
    response = client.post("/language", data={"locale": locale, "next": "/rounds"})
    assert response.status_code == 303
    page = client.get("/rounds").get_data(as_text=True)
    assert "请从提供的语言中选择一种。" in page
    reload(session)
    assert session.get(User, rep.id).locale is None


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_the_switch_never_sends_anyone_off_site(client, target):
    response = client.post("/language", data={"locale": "en", "next": target})
    assert response.status_code == 303 and response.location == "/"


def test_the_switch_needs_the_csrf_token(app_config):
    app = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    client = app.test_client()
    assert client.post("/language", data={"locale": "en"}).status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/language", data={"locale": "en", "csrf_token": token,
                                               "next": "/login"})
    assert response.status_code == 303
    assert html_lang(client.get("/login")) == "en"


def test_the_header_offers_the_switch_and_marks_the_current_language(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'action="/language"' in page and 'name="next" value="/login?"' in page
    assert re.search(r'value="zh_CN"[^>]*aria-current="true"[^>]*>中文', page)
    assert re.search(r'value="en" lang="en">English', page)


def test_the_default_locale_setting(app_config, monkeypatch):
    monkeypatch.setenv("BIDHUB_DEFAULT_LOCALE", "en-US")
    config = {key: value for key, value in app_config.items() if key != "DEFAULT_LOCALE"}
    app = create_app(config)
    assert app.config["DEFAULT_LOCALE"] == app.config["BABEL_DEFAULT_LOCALE"] == "en"
    monkeypatch.setenv("BIDHUB_DEFAULT_LOCALE", "zh-CN")
    assert create_app(config).config["BABEL_DEFAULT_LOCALE"] == "zh_CN"
    monkeypatch.setenv("BIDHUB_DEFAULT_LOCALE", "fr")
    with pytest.raises(ValueError, match="BIDHUB_DEFAULT_LOCALE"):
        create_app(config)


# --- dates, money and amounts -------------------------------------------------------------------

INSTANT = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)  # 14:30 in Beijing


@pytest.mark.parametrize(("accept", "expected"), [
    ("zh-CN", ("2026年11月29日 14:30", "2026年11月29日", "2026年3月2日", "¥1,200,000",
               "-¥1,200", "120万", "1.23万", "1.2亿", "¥9,500")),
    ("en", ("2026-11-29 14:30", "2026-11-29", "2026-03-02", "¥1,200,000", "-¥1,200",
            "¥1.2M", "¥12.3K", "¥120M", "¥9.5K"))])
def test_dates_and_money_in_the_pages_style(app, accept, expected):
    with app.test_request_context("/", headers={"Accept-Language": accept}):
        assert (localtime(INSTANT), localtime(INSTANT, "%Y-%m-%d"), localtime(date(2026, 3, 2)),
                yuan(1_200_000), yuan(-1200), yuan_compact(1_200_000), yuan_compact(12_345),
                yuan_compact(120_000_000), yuan_compact(9_500)) == expected
        assert localtime(None) == "" and yuan(None) == yuan_compact(None) == "—"


def test_compact_figures_round_to_three_digits_and_move_up_a_unit():
    from bidhub.web.i18n import round_significant

    assert round_significant(1_234_567, 3) == 1_230_000
    assert round_significant(99_995_000, 3) == 100_000_000
    assert round_significant(950, 3) == 950


@pytest.mark.parametrize(("text", "expected"), [
    ("100000", 100_000), ("100,000", 100_000), ("¥100,000", 100_000), ("￥100，000", 100_000),
    ("10万", 100_000), ("1.2万", 12_000), ("1.2万元", 12_000), (" 5 万 ", 50_000),
    ("12000元", 12_000), ("3亿", 300_000_000), ("12000.00", 12_000), ("-5", -5),
    ("1.23456万", None), ("12000.5", None), ("abc", None), ("10万万", None), ("1,00,000", None),
    ("", None), ("1e5", None), ("1_000", None), ("１２万", 120_000), ("１,２００元", 1_200), ("²", None), ("٣", None),
    ("2147483648", None), ("9" * 50, None), (None, None)])
def test_amounts_are_read_as_people_write_them(text, expected):
    assert parse_yuan(text) == expected


@pytest.fixture
def open_listing(make_round, make_account):
    return make_round(accounts=[make_account(annual_value_yuan=150_000),
                                make_account(annual_value_yuan=80_000)]).listings[0]


def test_the_bid_form_takes_wan(app, session, client, make_rep, open_listing):
    sign_in(client, make_rep())
    path = f"/listings/{open_listing.id}/bid"
    form = {"account_plan": "先拜访决策人，了解招聘需求，三个月内提出年度合作方案。",
            "visit_plan": "第一周拜访总经理，第二周与人力资源部确定合作方案。"}
    refused = client.post(path, data={**form, "committed_revenue_yuan": "十二万"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "请填写以元为单位的整数金额" in page and 'value="十二万"' in page
    assert session.scalars(select(Bid)).first() is None

    assert client.post(path, data={**form, "committed_revenue_yuan": "12万"}).status_code == 303
    reload(session)
    assert session.scalars(select(Bid)).one().committed_revenue_yuan == 120_000


def test_the_bid_forms_amount_range_reads_in_wan_and_yi(app, session, client, make_rep,
                                                       open_listing):
    """Not "数值必须在 0 到 2000000000 之间": the bounds read as amounts do on the pages."""
    sign_in(client, make_rep())
    path = f"/listings/{open_listing.id}/bid"
    form = {"account_plan": "先拜访决策人，了解招聘需求，三个月内提出年度合作方案。",
            "visit_plan": "第一周拜访总经理，第二周与人力资源部确定合作方案。"}
    for typed in ("30亿", "3000000000", "2000000001", "-5", "9" * 30):
        refused = client.post(path, data={**form, "committed_revenue_yuan": typed})
        assert refused.status_code == 422, typed
        page = refused.get_data(as_text=True)
        assert "请填写 1元 至 20亿元 之间的金额。" in page, typed
        assert "2000000000" not in page
    refused = client.post(path, data={**form, "committed_revenue_yuan": "30亿"},
                          headers={"Accept-Language": "en"})
    assert "Enter an amount between ¥1 and ¥2,000,000,000." in refused.get_data(as_text=True)
    assert session.scalars(select(Bid)).first() is None


@pytest.mark.parametrize(("amount", "chinese", "english"), [
    (0, "0元", "¥0"), (9_500, "9,500元", "¥9,500"), (10_000, "1万元", "¥10,000"),
    (35_000_000, "3,500万元", "¥35,000,000"), (250_000_000, "2.5亿元", "¥250,000,000"),
    (123_456_789, "123,456,789元", "¥123,456,789"), (2_000_000_000, "20亿元", "¥2,000,000,000"),
    (123_456, "123,456元", "¥123,456")])
def test_an_exact_amount_keeps_every_yuan(amount, chinese, english):
    from bidhub.web.i18n import format_yuan_exact

    assert format_yuan_exact(amount, chinese=True) == chinese
    assert format_yuan_exact(amount, chinese=False) == english


def test_the_round_forms_title_is_the_rounds_name_not_a_job_title(client, make_manager):
    """The round form's title and a contact's title are two messages: 轮次名称 and 职务."""
    sign_in(client, make_manager())
    page = client.get("/manage/rounds/new").get_data(as_text=True)
    assert re.search(r'<label for="title">轮次名称</label>', page)
    assert "职务" not in page


def test_lists_and_days_in_chinese_style(client, make_rep, open_listing):
    """A list of factors is joined with 、 and 和, a hiring day reads 2023年7月15日."""
    sign_in(client, make_rep(hired_on=date(2023, 7, 15)))
    form = client.get(f"/listings/{open_listing.id}/bid").get_data(as_text=True)
    factors = re.search(r"评分因素为：([^<]*)", form)
    assert factors and "、" in factors.group(1) and ", " not in factors.group(1)
    record = client.get("/my/track-record").get_data(as_text=True)
    assert "入职日期 2023年7月15日" in record and "2023-07-15" not in record


def test_the_round_list_sorts_by_the_accounts_name_not_a_persons(client, make_rep, open_listing):
    """The sort menu of a round's accounts offers 客户名称: 姓名 is a person's name."""
    sign_in(client, make_rep())
    page = client.get(f"/rounds/{open_listing.round_id}").get_data(as_text=True)
    assert re.search(r'<option value="name"[^>]*>客户名称</option>', page)
    assert "姓名" not in page


def test_message_dates_are_shown_in_the_pages_style(app):
    from bidhub.domain.text import N_
    from bidhub.web.i18n import translate

    message = N_("%(won_on)s %(due_at)s %(day)s %(instant)s %(note_on)s %(inner)s",
                 won_on="2026-05-09", due_at="2026-03-09T01:00:00+00:00", day=date(2026, 11, 29),
                 instant=datetime(2026, 3, 2, 6, 30, tzinfo=UTC), note_on="not a day",
                 inner=N_("%(closed_on)s", closed_on="2026-01-31"))
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert translate(message) == ("2026年5月9日 2026年3月9日 09:00 2026年11月29日 "
                                      "2026年3月2日 14:30 not a day 2026年1月31日")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert translate(message) == ("2026-05-09 2026-03-09 09:00 2026-11-29 2026-03-02 14:30 "
                                      "not a day 2026-01-31")
    assert str(message).startswith("2026-05-09 2026-03-09T01:00:00+00:00")  # kept as given


def test_a_kept_instant_without_an_offset_is_read_as_utc_whatever_the_machines_zone(
        app, monkeypatch):
    import time

    from bidhub.domain.text import N_
    from bidhub.web.i18n import translate

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with app.test_request_context(headers={"Accept-Language": "en"}):
            assert translate(N_("%(due_at)s", due_at="2026-03-09 01:00")) == "2026-03-09 09:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_waiting_reps_remedy_is_shown_once_in_local_time(app, session, clock, make_rep):
    """The round list's remedies hand translate() their instants as they are: converting
    them to local time first made the page add the zone's offset twice."""
    from bidhub.domain.text import N_
    from bidhub.web.market import shown

    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert shown(N_("Wait until %(eligible_at)s.", eligible_at=datetime(
            2026, 5, 3, 0, 0, tzinfo=UTC))) == "Wait until 2026-05-03 08:00."


def test_the_won_deal_refusal_and_the_logged_incident_give_days_in_chinese(
        app, session, client, clock, make_manager, make_rep, make_admin, make_account):
    from bidhub.models import Opportunity
    from bidhub.services.imports import import_file

    rep = make_rep(username="wangfang")
    account = make_account(owner=rep, name="北京智联科技有限公司")
    session.add(Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=300_000,
                            stage="won", opened_at=clock() - timedelta(days=90),
                            closed_at=clock() - timedelta(days=30)))
    session.commit()
    sign_in(client, make_manager())
    form = {"account": account.external_id, "competitor_site": "51job.com",
            "ad_type": "banner", "page_area": "home_page", "seen_at": "2026-03-01T10:00",
            "evidence_url": "https://www.51job.com/"}
    refused = client.post("/manage/accountability/log", data=form)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "已与我们成交：2026年1月31日 赢单 300,000 元" in page and "2026-01-31" not in page
    logged = client.post("/manage/accountability/log", data={
        **form, "account": make_account(owner=rep).external_id}, follow_redirects=True)
    page = logged.get_data(as_text=True)
    assert "说明截止日期为 2026年3月9日 09:00。" in page and "2026-03-09" not in page
    # The import report keeps the refusal as JSON, the day in ISO form, and shows it so too.
    data = ("事件编号,客户编号,销售,竞争对手网站,发现日期,广告类型\r\n"
            f"INC-9,{account.external_id},wangfang,51job.com,2026-02-21,横幅\r\n")
    admin = make_admin()
    result = import_file(session, admin, "incidents", "incidents.csv",
                         data.encode("utf-8-sig"), valid_rows_only=False, now=clock())
    assert result.status == "refused"
    stored = session.get(ImportRun, result.run_id).report["problems"][0]["message"]
    assert stored["params"]["won_on"] == "2026-01-31"
    sign_in(client, admin)
    page = client.get(f"/admin/imports/{result.run_id}").get_data(as_text=True)
    assert "2026年1月31日 赢单" in page and "2026-01-31" not in page


def test_the_value_filter_takes_wan_and_explains_a_mistake(client, make_rep, open_listing):
    sign_in(client, make_rep())
    path = f"/rounds/{open_listing.round_id}"
    filtered = client.get(path, query_string={"min_value": "10万"}).get_data(as_text=True)
    # The list shows amounts compactly, the full figure in the tooltip.
    assert "1 个客户" in filtered and ">15万<" in filtered and 'title="¥150,000"' in filtered
    assert "8万" not in filtered
    wrong = client.get(path, query_string={"min_value": "十万"}, headers={"HX-Request": "true"})
    assert wrong.status_code == 200
    page = wrong.get_data(as_text=True)
    assert "“十万”不是有效金额" in page and "2 个客户" in page


def typed_value(page: str, name: str) -> str:
    return re.search(rf'name="{name}"[^>]*value="([^"]*)"', page).group(1)


def test_a_negative_or_unreadable_value_filter_is_explained_and_kept_as_typed(
        app, client, make_rep, make_manager, open_listing):
    sign_in(client, make_rep())
    path = f"/rounds/{open_listing.round_id}"
    page = client.get(path, query_string={"min_value": "-1"}).get_data(as_text=True)
    assert "年度金额不能为负数；请填写 0 或以上的金额，而不是“-1”。" in page
    assert typed_value(page, "min_value") == "-1" and "2 个客户" in page
    page = client.get(path, query_string={"max_value": '-5万<b>"'}).get_data(as_text=True)
    assert "不是有效金额" in page and "<b>" not in page
    assert typed_value(page, "max_value") == "-5万&lt;b&gt;&#34;"
    page = client.get(path, query_string={"min_value": "-5万"}).get_data(as_text=True)
    assert "年度金额不能为负数" in page and typed_value(page, "min_value") == "-5万"
    page = client.get(path, query_string={"min_value": "10万"}).get_data(as_text=True)
    assert typed_value(page, "min_value") == "10万" and "1 个客户" in page
    # The managers' round page reads the same filter and says the same.
    manager = app.test_client()
    sign_in(manager, make_manager())
    page = manager.get(f"/manage/rounds/{open_listing.round_id}",
                       query_string={"max_value": "-1"}).get_data(as_text=True)
    assert "年度金额不能为负数" in page and typed_value(page, "max_value") == "-1"


# --- CSV exports --------------------------------------------------------------------------------

def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline="")))


def test_exports_have_a_chinese_header_row_and_english_on_request(
        app, session, client, make_manager, make_rep, make_account, clock):
    from bidhub.services.accountability import log_incident
    from bidhub.services.filings import transfer_account

    manager = make_manager()
    account = make_account(owner=make_rep(), name="广州云帆科技有限公司")
    transfer_account(session, manager, account_id=account.id, to_rep_id=make_rep(name="王伟").id,
                     reason="原销售离职，客户划转。", review_text="离职交接完成，客户无投诉，新销售已确认。",
                     now=clock())
    log_incident(session, manager, account_id=account.id, competitor_site="前程无忧",
                 ad_type="banner", evidence_url="https://www.51job.com/",
                 seen_at=clock() - timedelta(days=1), now=clock())
    sign_in(client, manager)

    register = rows_of(client.get("/manage/filings.csv"))
    assert register[0][:3] == ["备案号", "备案时间（本地）", "类型"]
    assert "直接划转" in [row[2] for row in register[1:] if row]
    assert register[-1][0] == "登记簿最新一条"
    english = rows_of(client.get("/manage/filings.csv?lang=en"))
    assert english[0][:3] == ["No.", "Filed at (local)", "Kind"]
    assert "Direct transfer" in [row[2] for row in english[1:] if row]

    report = rows_of(client.get("/manage/accountability/report.csv?start=2026-02-23"))
    assert report[0][0] == "问责编号" and report[1][8] == "横幅广告" and report[1][15] == "否"
    report = rows_of(client.get("/manage/accountability/report.csv?start=2026-02-23&lang=en"))
    assert report[0][0] == "Incident" and report[1][8] == "Banner" and report[1][15] == "no"
    # An English page exports English unless Chinese is asked for.
    client.post("/language", data={"locale": "en"})
    assert rows_of(client.get("/manage/filings.csv"))[0][0] == "No."
    assert rows_of(client.get("/manage/filings.csv?lang=zh_CN"))[0][0] == "备案号"


# --- every page in Chinese ----------------------------------------------------------------------

# ASCII words a Chinese page may show: the product's name, abbreviations Chinese offices use as
# they are, file formats, and the switch's own "English".
ALLOWED_WORDS = frozenset({
    "bidhub", "KA", "CRM", "CSV", "Excel", "xlsx", "UTF", "GBK", "MiB", "KiB", "TOML", "HMAC",
    "SHA", "htmx", "Logo", "English", "YYYY", "MM", "DD", "PNG", "JPEG", "WebP", "MB",
})
# Elements whose text is data or code, not the interface: scripts, styles, a textarea's content
# (a rule file, an explanation being edited), code samples and hashes.
SKIPPED_ELEMENTS = frozenset({"script", "style", "textarea", "code", "pre", "kbd", "samp"})
# Attributes whose text people read: hints in empty fields, tooltips, image text, what a screen
# reader says, and the question a confirmation dialog asks.
VISIBLE_ATTRIBUTES = ("placeholder", "title", "alt", "aria-label", "hx-confirm", "data-confirm")
# A run of characters that is data rather than a word: it holds a digit (ids, dates, amounts,
# hashes), an @ or a slash (e-mails, paths, time zones), or a dot before a letter (domains, file
# names and extensions).
DATA_CHUNK = re.compile(r"[0-9@/]|\.[A-Za-z]")
# Text between backticks is a command to type (`bidhub verify-ledger`).
COMMAND = re.compile(r"`[^`]*`")


class VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in SKIPPED_ELEMENTS:
            self.skipping += 1
        if self.skipping:
            return
        attributes = dict(attrs)
        for name in VISIBLE_ATTRIBUTES:
            if attributes.get(name):
                self.parts.append(attributes[name])
        if tag == "input" and attributes.get("type") in ("submit", "button", "reset"):
            self.parts.append(attributes.get("value") or "")

    def handle_endtag(self, tag) -> None:
        if tag in SKIPPED_ELEMENTS and self.skipping:
            self.skipping -= 1

    def handle_data(self, data) -> None:
        if not self.skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return COMMAND.sub(" ", " ".join(" ".join(parser.parts).split()))


def english_words(text: str, allowed: frozenset[str]) -> dict[str, str]:
    """ASCII words outside the allow-list, each with the text around its first occurrence."""
    found = {}
    for chunk in re.finditer(r"[A-Za-z0-9_.@/:'’-]+", text):
        if DATA_CHUNK.search(chunk.group()):
            continue
        for word in re.findall(r"[A-Za-z]{2,}", chunk.group()):
            if word not in allowed and word not in found:
                start = chunk.start()
                found[word] = text[max(0, start - 25):start + 35]
    return found


def test_english_words_are_found_and_data_is_not():
    text = visible_text(
        '<p title="Tip" class="data">竞标轮次 Deadline <b>bidhub</b> 51job.com KA-00012 r1001 '
        'a@b.cn ¥1.2M SHA-256 e3b0c442 <code>bidhub verify-ledger</code> `bidhub init`</p>'
        '<input placeholder="Search" name="query"><input type="submit" value="Go">'
        '<script>let x = "hidden";</script><textarea>notes</textarea>')
    assert set(english_words(text, ALLOWED_WORDS)) == {"Deadline", "Tip", "Search", "Go"}


REVIEWED_RULES = """
[[factors]]
metric = "plan_review"
weight = 0.3

[review]
min_reviews_per_bid = 1

[[review.criteria]]
name = "plan_quality"
label = "经营计划质量"
min = 1
max = 5
"""


def round_in_blind_review(session, manager, rep, account, now) -> tuple[int, str]:
    """A round whose blind review the manager is named on, with the rep's application; the
    rules in force before it stay in force."""
    from bidhub.services.adjudication import score_closed_round
    from bidhub.services.application_reviews import name_reviewers
    from bidhub.services.bidding import submit_bid
    from bidhub.services.rule_sets import active_rule_set, adopt_rule_set

    before = active_rule_set(session)
    rules = adopt_rule_set(session, None, before.text + REVIEWED_RULES, "匿名评审", "匿名评审", now)
    round_ = Round(title="五月客户资源竞标（匿名评审）", opens_at=now - timedelta(hours=1),
                   closes_at=now + timedelta(hours=1), rule_set_id=rules.id,
                   status=RoundStatus.PUBLISHED, created_by_id=manager.id, created_at=now,
                   published_at=now - timedelta(hours=1))
    session.add(round_)
    session.flush()
    listing = Listing(round_id=round_.id, account_id=account.id, released_from_id=None,
                      release_reason="rep_left", status=ListingStatus.LISTED,
                      released_by_id=manager.id, created_at=now)
    session.add(listing)
    adopt_rule_set(session, None, before.text, before.name, "", now)
    session.commit()
    bid = submit_bid(session, rep, listing.id,
                     account_plan="按季度回访决策人，先在一个事业部做试点，三个月后推广到全公司。",
                     committed_revenue_yuan=360_000,
                     visit_plan="第一周拜访决策人，第二周与人力资源部确定合作方案。",
                     submission_key=None, now=now)
    name_reviewers(session, manager, round_.id, [manager.id], now)
    assert score_closed_round(session, round_.id, now + timedelta(hours=2))
    reload(session)
    return round_.id, session.get(Bid, bid.id).review_code


def add_sponsors(session, users, rep, manager, taker, now) -> tuple[Account, Account]:
    """The president (an executive who signs in) sponsoring one of the rep's accounts, whose
    transfer to `taker` waits for his confirmation, and another account sponsored by a title
    alone (no person designated yet). The executive joins `users`."""
    from bidhub.services.filings import transfer_account
    from bidhub.services.ownership import unfinished_listing_of
    from bidhub.services.sponsors import designate_sponsor
    from bidhub.services.users import new_session_token
    from tests.browser.world import PASSWORD_HASH as WORLD_PASSWORD_HASH

    president = User(username="president", display_name="刘振华", password_hash=WORLD_PASSWORD_HASH,
                     role=Role.EXECUTIVE, executive_title="president", is_active=True,
                     status="active", session_token=new_session_token(), failed_login_count=0,
                     created_at=now)
    session.add(president)
    session.commit()
    users[president.username] = president
    sponsored, title_only = [account for account in session.scalars(
        select(Account).where(Account.owner_id == rep.id).order_by(Account.id))
        if unfinished_listing_of(session, account.id) is None][:2]
    designate_sponsor(session, manager, sponsored.id, president.id, now)
    title_only.executive_sponsor = "ka_vice_president"
    session.commit()
    transfer_account(session, manager, account_id=sponsored.id, to_rep_id=taker.id,
                     reason="客户总部迁往上海，由上海的销售就近跟进。",
                     review_text="客户对现有服务满意，迁址后需要本地团队上门服务。", now=now)
    return sponsored, title_only


@pytest.fixture
def department(app, session, clock):
    """The browser walk's department (an open round, a scored round, filings and history), plus
    an open bid of the rep's, a draft round and an import refused for a bad row."""
    from bidhub.services.bidding import submit_bid
    from bidhub.services.imports import import_file
    from bidhub.services.rounds import create_round

    now = clock()
    world = build_world(session, now)
    users = {user.username: user for user in session.scalars(select(User))}
    rep, manager = users[world.rep], users[world.manager]
    open_listings = session.scalars(select(Listing.id).where(
        Listing.round_id == world.open_round_id).order_by(Listing.id)).all()
    open_bid = submit_bid(session, rep, open_listings[2], account_plan="先拜访决策人了解招聘需求，"
                          "三个月内推出年度合作方案。", committed_revenue_yuan=500_000,
                          visit_plan="第一周拜访总经理，第二周与人力资源部确定方案。",
                          submission_key=None, now=now)
    draft = create_round(session, manager, title="四月客户资源竞标", branch_id=None,
                         opens_at=now + timedelta(days=20), closes_at=now + timedelta(days=27),
                         now=now)
    reps_file = "员工编号,用户名,姓名,分公司,入职日期,状态\nR9001,zhaolei,赵磊,BJ,2021-03-15,在职\n" \
                "R9002,sunli,孙丽,BJ,2021-13-40,在职\n"
    run = import_file(session, users[world.admin], "reps", "销售名单.csv",
                      reps_file.encode("utf-8"), valid_rows_only=False, now=now)
    # A loss of the rep's, so that the loss review pages have a review to show.
    from bidhub.services.filings import transfer_account
    from bidhub.services.ownership import accounts_held, unfinished_listing_of

    lost = next(account for account in session.scalars(
        select(Account).where(Account.owner_id == rep.id).order_by(Account.id))
        if unfinished_listing_of(session, account.id) is None and not account.sponsor_id
        and not account.executive_sponsor)
    others = [user.id for user in users.values()
              if user.role == Role.REP and user.id != rep.id and user.is_active]
    held = accounts_held(session, others)
    taker = {user.id: user for user in users.values()}[
        min(others, key=lambda user_id: (held[user_id], user_id))]
    transfer_account(session, manager, account_id=lost.id, to_rep_id=taker.id,
                     reason="客户要求由本地销售跟进。",
                     review_text="近半年拜访不足两次，客户多次反馈响应不及时。", now=now)
    unheld = Account(external_id="KA-REVIEW-1", name="华星智能制造有限公司", industry="制造业",
                     ownership_type="private", branch_id=rep.branch_id, annual_value_yuan=420_000,
                     created_at=now)
    session.add(unheld)
    session.flush()
    review_round_id, review_code = round_in_blind_review(session, manager, rep, unheld, now)
    sponsored, title_only = add_sponsors(session, users, rep, manager, taker, now)
    ids = {
        "review_round_id": review_round_id, "review_code": review_code,
        "round_id": world.open_round_id, "closed_round_id": world.closed_round_id,
        "draft_round_id": draft.id, "listing_id": world.listing_to_bid_id,
        "scored_listing_id": world.scored_listing_id,
        "account_id": session.get(Listing, world.listing_to_bid_id).account_id,
        "bid_id": session.scalars(select(Bid.id).where(Bid.rep_id == rep.id)).first(),
        "open_bid_id": open_bid.id, "open_bid_listing_id": open_bid.listing_id, "rep_id": rep.id, "user_id": rep.id,
        "branch_id": session.scalars(select(Branch.id)).first(),
        "incident_id": session.scalars(select(AccountabilityIncident.id)).first(),
        "version_id": 1, "run_id": run.run_id,
        "review_id": session.scalars(select(AccountReview.id).where(
            AccountReview.rep_id == rep.id)).first(),
        "sponsored_account_id": sponsored.id, "title_only_account_id": title_only.id,
    }
    assert None not in ids.values(), ids
    # What the test itself made up in ASCII may show: usernames and branch codes.
    data_words = {word for user in session.scalars(select(User))
                  for word in re.findall(r"[A-Za-z]{2,}", user.username)}
    data_words |= set(session.scalars(select(Branch.code)))
    data_words.add(review_code)  # a blind review's random code
    data_words |= set(session.scalars(select(RuleSetVersion.name)))  # the rule file's name
    # The branch list shows each branch's English name beside its Chinese one, as data.
    branch_names = {word for name in session.scalars(select(Branch.name))
                    for word in re.findall(r"[A-Za-z]{2,}", name)}
    return SimpleNamespace(world=world, users=users, ids=ids,
                           allowed=ALLOWED_WORDS | frozenset(data_words),
                           page_data={"/admin/branches": frozenset(branch_names)})


REP_PAGES = ("/rounds", "/rounds/{round_id}", "/rounds/{round_id}?min_value=十万",
             "/accounts/{account_id}", "/listings/{listing_id}/bid", "/my/bids",
             "/bids/{bid_id}", "/bids/{open_bid_id}", "/bids/{open_bid_id}/edit",
             "/listings/{open_bid_listing_id}/bid",
             "/my/track-record", "/my/accountability", "/notifications", "/password",
             "/my/accounts", "/my/reviews", "/reviews/{review_id}")
MANAGER_PAGES = ("/manage/rounds", "/manage/rounds/new", "/manage/rounds/{round_id}",
                 "/manage/rounds/{closed_round_id}", "/manage/rounds/{draft_round_id}",
                 "/manage/rounds/{draft_round_id}/edit",
                 "/manage/rounds/{closed_round_id}/accept-unflagged",
                 "/manage/listings/{scored_listing_id}",
                 "/manage/listings/{listing_id}", "/manage/filings", "/manage/transfer",
                 "/manage/transfer?account={account_id}&to_rep={rep_id}",
                 "/manage/transfer/picks?account={account_id}&to_rep={rep_id}",
                 "/manage/transfer/accounts?account_q=公司", "/manage/transfer/reps?rep_q=a",
                 "/manage/accountability", "/manage/accountability/report", "/reps", "/reps/forecasts",
                 "/reps/{rep_id}", "/accounts/{account_id}", "/notifications",
                 "/manage/accounts", "/manage/accounts?band=很多&sort=-value",
                 "/manage/accounts/{account_id}", "/manage", "/board", "/board?band=above",
                 "/board/reps/{rep_id}", "/manage/reviews", "/manage/reviews?status=due",
                 "/reviews/{review_id}", "/manage/fairness", "/review/",
                 "/review/rounds/{review_round_id}", "/review/rounds/{review_round_id}?show=todo",
                 "/review/rounds/{review_round_id}/{review_code}", "/manage/audit", "/manage/filings/check",
                 "/manage/audit?area=round&actor=system")
ADMIN_PAGES = ("/admin/users", "/admin/users?q=王&role=rep", "/admin/users/new", "/admin/users/{user_id}", "/admin/branches",
               "/admin/branches/new", "/admin/branches/{branch_id}", "/admin/rules",
               "/admin/rules/versions/{version_id}", "/admin/imports/",
               "/admin/imports/{run_id}", "/confirmations", "/sponsors",
               "/sponsors/accounts/{account_id}", "/sponsors/accounts/{sponsored_account_id}",
               "/sponsors/accounts/{title_only_account_id}",
               "/accounts/{sponsored_account_id}", "/accounts/{title_only_account_id}")
# The president's: what waits for his confirmation and the accounts he sponsors.
EXECUTIVE_PAGES = ("/confirmations", "/sponsors", "/notifications", "/password")
# Pages that exist once a round's results are published.
RESULT_PAGES = ("/rounds/{closed_round_id}/results",)
# Management's pages of the standstill window, read with an appeal waiting.
STANDSTILL_PAGES = ("/manage/appeals", "/manage/fairness")
# Pages that are not HTML for people (CSV, a counter, an evidence image), or need an upload in
# progress.
NOT_SCANNED = frozenset({"static", "auth.index", "manage.filings_csv", "accountability.report_csv",
                         "accounts.directory_csv", "accountability.evidence",
                         "fairness.fairness_csv", "health.healthz",
                         "notifications.unread_count", "imports.mapping"})


# Elements that start a line of their own: text in two of them never reads as one sentence.
BLOCK_ELEMENTS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "input", "label", "legend", "li", "main", "nav", "ol", "option", "p",
    "section", "select", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    "button"})
# An English space after Chinese sentence punctuation: 。 ， ： ？ ！ ； end a sentence or a
# label, and the next sentence or value follows with no space.
SPACE_AFTER_CHINESE_PUNCTUATION = re.compile(r"[。，：？！；] ")
# Where a block element breaks the text (a newline in the source is only a space).
LINE_BREAK = "\x1e"


# Skipped elements that stand in a line of text as a word does.
INLINE_DATA_ELEMENTS = frozenset({"code", "kbd", "samp"})


class TextLines(HTMLParser):
    """A page's text line by line as it reads: inline tags join their text with no gap, block
    elements start a new line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in INLINE_DATA_ELEMENTS and not self.skipping:
            self.parts.append("data")  # a command set as code reads as a word in its line
        if tag in SKIPPED_ELEMENTS:
            self.skipping += 1
        if tag in BLOCK_ELEMENTS:
            self.parts.append(LINE_BREAK)

    def handle_endtag(self, tag) -> None:
        if tag in SKIPPED_ELEMENTS and self.skipping:
            self.skipping -= 1
        if tag in BLOCK_ELEMENTS:
            self.parts.append(LINE_BREAK)

    def handle_data(self, data) -> None:
        if not self.skipping:
            self.parts.append(data)


def spaced_punctuation(html: str) -> list[str]:
    """The lines of a page with an English space after Chinese punctuation."""
    parser = TextLines()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split(LINE_BREAK))
    return [line for line in lines if SPACE_AFTER_CHINESE_PUNCTUATION.search(line)]


def test_spaced_punctuation_is_found_across_inline_tags_and_not_across_blocks():
    assert spaced_punctuation("<p><strong>已截止。</strong> 剩余 4 天</p>") == ["已截止。 剩余 4 天"]
    assert spaced_punctuation("<p>理由：\n  <span>该销售</span></p>") == ["理由： 该销售"]
    assert not spaced_punctuation("<p>已截止。</p>\n  <p>剩余 4 天</p><td>是？</td> <td>否</td>")
    assert not spaced_punctuation("<p>已截止。剩余 4 天</p><textarea>甲。 乙</textarea>")
    assert not spaced_punctuation("<p>请保存这一行：<code>bidhub verify-ledger</code> 能查出</p>")
    assert spaced_punctuation("<p>请运行： <code>bidhub verify-ledger</code></p>") == [
        "请运行： data"]


# Half-width punctuation in Chinese text, where the page should say ， 。 ； ： ？ ！ （ ）: a
# , ; : ? ! ( or ) next to a Chinese character, or a full stop straight after one (not a file
# name's 名单.csv); and a space before a full-width opening bracket or inside a pair, which the
# bracket's own width already sets apart.
HALF_WIDTH_PUNCTUATION = re.compile(
    rf"[{CHINESE}]\s*[,;:?!()]|[,;:?!()]\s*[{CHINESE}]|[{CHINESE}]\.(?![A-Za-z])|\S （|（ | ）")
# Half-width punctuation quoted as people see it elsewhere: a CRM export's column name, and
# the file type as Chinese Excel names it in its Save As menu.
QUOTED_HALF_WIDTH = ("年度金额(万元)", "CSV UTF-8(逗号分隔)")


def half_width_punctuation(html: str) -> list[str]:
    """The lines of a page with half-width punctuation in Chinese text (HALF_WIDTH_PUNCTUATION),
    data in <code> and the like aside."""
    parser = TextLines()
    parser.feed(html)
    parser.close()
    found = []
    for line in "".join(parser.parts).split(LINE_BREAK):
        line = " ".join(line.split())
        unquoted = line
        for quoted in QUOTED_HALF_WIDTH:
            unquoted = unquoted.replace(quoted, "")
        if HALF_WIDTH_PUNCTUATION.search(unquoted):
            found.append(line)
    return found


def test_half_width_punctuation_in_chinese_text_is_found():
    assert half_width_punctuation("<p>王芳 (总裁)</p>") == ["王芳 (总裁)"]
    assert half_width_punctuation("<p>名下 3 个客户 (区间 30–40)</p>") == [
        "名下 3 个客户 (区间 30–40)"]
    assert half_width_punctuation("<option>#1 王芳 (0.845)</option>") == ["#1 王芳 (0.845)"]
    assert half_width_punctuation("<p>已截止,剩余 4 天.</p>") == ["已截止,剩余 4 天."]
    assert half_width_punctuation("<p>已截止.</p>") == ["已截止."]
    assert half_width_punctuation("<p>总裁 <small>（仅有职务）</small></p>") == ["总裁 （仅有职务）"]
    assert half_width_punctuation("<h2>问题（ 1 ）</h2>") == ["问题（ 1 ）"]
    assert not half_width_punctuation(
        "<p>王芳（总裁）</p><p>KA-00012 (r1001)</p><p>问题（1）</p><code>规则(甲)</code>"
        "<p>例如 年度金额(万元)……</p><p>总裁（仅有职务） · 设置</p><p>导入报告：销售名单.csv</p>"
        "<p>字母、数字和 . _ - @，不能有空格。</p>")


def punctuation_problems(html: str) -> list[str]:
    """What breaks Chinese typography on a page: a space after 。 ： and the like, and
    half-width punctuation in Chinese text."""
    return spaced_punctuation(html) + half_width_punctuation(html)


def scan(client, paths, department, findings, ids=None, punctuation=None) -> None:
    for template in paths:
        path = template.format(**(ids or department.ids))
        response = client.get(path, headers={"Accept-Language": "zh-CN"}, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
        html = response.get_data(as_text=True)
        allowed = department.allowed | department.page_data.get(template, frozenset())
        words = english_words(visible_text(html), allowed)
        if words:
            findings[template] = words
        if punctuation is not None and (lines := punctuation_problems(html)):
            punctuation[template] = lines


def report_of(findings: dict[str, dict[str, str]], punctuation: dict[str, list[str]]) -> str:
    """The findings of a scan, page by page, for an assertion's message."""
    words = "\n".join(f"{page}:\n" + "\n".join(f"    {word!r} in …{context}…"
                                               for word, context in found.items())
                      for page, found in sorted(findings.items()))
    lines = "\n".join(f"{page}:\n" + "\n".join(f"    …{line}…" for line in found)
                      for page, found in sorted(punctuation.items()))
    return (f"English left on Chinese pages:\n{words}\n" if findings else "") + (
        f"Punctuation that is not Chinese on Chinese pages:\n{lines}" if punctuation else "")


def test_every_page_speaks_chinese(app, session, department, clock):
    """Log in as a rep, a manager, an admin and an executive and read every page in Chinese: any
    English word left is a string outside gettext, a code shown raw or a missing translation.
    The pages also put no English space after Chinese punctuation (。 ： ？ …): the next
    sentence or the value runs on; and no half-width punctuation in Chinese text (王芳（总裁）,
    not 王芳 (总裁))."""
    findings: dict[str, dict[str, str]] = {}
    punctuation: dict[str, list[str]] = {}
    world, ids = department.world, department.ids
    scan(app.test_client(), ["/login"], department, findings, punctuation=punctuation)
    for username, pages in ((world.rep, REP_PAGES), (world.manager, MANAGER_PAGES),
                            (world.admin, ADMIN_PAGES), ("president", EXECUTIVE_PAGES)):
        client = app.test_client()
        sign_in(client, department.users[username], WORLD_PASSWORD)
        scan(client, pages, department, findings, punctuation=punctuation)

    # Results published: the rep's result pages, the manager's decided listing.
    # The rep's account is not awarded, so that the rep's result shows management's reason.
    manager = department.users[world.manager]
    results = {**ids, "bid_id": session.scalars(select(Bid.id).where(
        Bid.rep_id == ids["rep_id"]).order_by(Bid.id)).first()}
    not_awarded = session.get(Bid, results["bid_id"]).listing_id
    for listing in session.scalars(select(Listing).where(
            Listing.round_id == world.closed_round_id)):
        if listing.id == not_awarded:
            decide_listing(session, manager, listing.id, kind="no_award", bid_id=None,
                           reason="两份申请的经营计划都不够具体，本客户下轮重新竞标。", now=clock())
        else:
            decide_listing(session, manager, listing.id, kind="accepted", bid_id=None, reason="",
                           now=clock())
    round_ = session.get(Round, world.closed_round_id)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    # The rep appeals, so that the pages show an appeal and management's answer form.
    appealed = session.get(Bid, results["bid_id"]).listing_id
    file_appeal(session, department.users[world.rep], appealed,
                ground="评分中的客户匹配度与我过去一年的跟进记录不符，请复核。", now=clock())
    for username, pages in ((world.rep, ("/bids/{bid_id}", "/my/bids", "/notifications",
                                         *RESULT_PAGES)),
                            (world.manager, ("/manage/listings/{scored_listing_id}",
                                             "/manage/rounds/{closed_round_id}",
                                             *STANDSTILL_PAGES))):
        client = app.test_client()
        sign_in(client, department.users[username], WORLD_PASSWORD)
        scan(client, [f"{page}?after=results" for page in pages], department, findings,
             ids=results, punctuation=punctuation)

    assert not findings and not punctuation, report_of(findings, punctuation)
    # The pages named in the scan's findings once: the reason runs on after the label's ：, and
    # the deadline and the publication read alike.
    client = app.test_client()
    sign_in(client, department.users[world.rep], WORLD_PASSWORD)
    zh = {"Accept-Language": "zh-CN"}
    page = client.get(f"/bids/{results['bid_id']}", headers=zh).get_data(as_text=True)
    assert "书面理由：</strong><span class=\"prose\">两份申请" in page
    page = client.get(f"/rounds/{world.closed_round_id}/results", headers=zh).get_data(as_text=True)
    assert re.search(r"截止于 2026年.*公示于 2026年", page, re.S)
    page = client.get(f"/rounds/{world.open_round_id}", headers=zh).get_data(as_text=True)
    assert "截止于 <strong>2026年" in page
    page = client.get(f"/rounds/{world.open_round_id}", headers={"Accept-Language": "en"})
    assert "Deadline <strong>" in page.get_data(as_text=True)


# A title beside a name, the band beside a count, a score beside a bidder, a range beside a
# criterion, a count beside a heading: (who reads it, page, on a Chinese page, on an English one).
ASIDES = (
    ("manager", "/sponsors/accounts/{sponsored_account_id}", "刘振华（总裁）",
     r"刘振华 \(President\)"),
    ("manager", "/sponsors/accounts/{title_only_account_id}", "KA副总裁（仅有职务，未指定具体人员）",
     r"KA vice-president \(a title; no person designated\)"),
    ("manager", "/sponsors", '<span class="term">KA副总裁</span>（<small class="muted">仅有职务，',
     r'<span class="term">KA vice-president</span> \(<small class="muted">a title;'),
    ("manager", "/manage/accounts/{title_only_account_id}", r"名下 \d+ 个客户（区间 30–40）",
     r"holds \d+ accounts \(band 30–40\)"),
    ("manager", "/manage/accounts/{title_only_account_id}",
     "KA副总裁（<small class=\"muted\">仅有职务，尚未指定具体负责人</small>）",
     r'KA vice-president \(<small class="muted">a title only'),
    ("manager", "/board/reps/{rep_id}", r'<strong class="big">\d+</strong>（标准为 30–40 个）',
     r'<strong class="big">\d+</strong> of a 30–40 band'),
    ("rep", "/my/track-record", r'<strong class="big">\d+</strong>（标准为 30–40 个）',
     r'<strong class="big">\d+</strong> of a 30–40 band'),
    ("manager", "/manage/listings/{scored_listing_id}", r"#1 王芳（\d\.\d{3}）",
     r"#1 王芳 \(\d\.\d{3}\)"),
    ("manager", "/manage/rounds/{closed_round_id}", r"#2 李强（\d\.\d{3}）",
     r"#2 李强 \(\d\.\d{3}\)"),
    ("manager", "/manage/rounds/{review_round_id}", "经营计划质量（1–5）", r"经营计划质量 \(1–5\)"),
    ("admin", "/admin/rules", "二月客户资源竞标（2026年3月1日）", r"二月客户资源竞标 \(2026-03-01\)"),
    ("admin", "/admin/imports/{run_id}", "问题（1）", r"Problems \(1\)"),
)


def not_shown(app, department, cases) -> list[str]:
    """The (reader, page, Chinese, English) cases whose pattern a page does not show in its
    language."""
    missing = []
    for reader, template, chinese, english in cases:
        client = app.test_client()
        sign_in(client, department.users[getattr(department.world, reader)], WORLD_PASSWORD)
        path = template.format(**department.ids)
        for language, expected in (("zh-CN", chinese), ("en", english)):
            page = client.get(path, headers={"Accept-Language": language}).get_data(as_text=True)
            if not re.search(expected, page):
                missing.append(f"{path} ({language}): {expected}")
    return missing


def test_an_aside_is_in_full_width_brackets_in_chinese_and_round_ones_in_english(
        app, department):
    """（…） straight after the word on a Chinese page, not " (…)": each language's brackets
    are in the message."""
    missing = not_shown(app, department, ASIDES)
    assert not missing, "\n".join(missing)


def test_a_label_runs_on_after_its_full_width_colon(app, department):
    """"读取的列：状态", not "读取的列： 状态": a space follows the colon in English only."""
    missing = not_shown(app, department, (
        ("admin", "/admin/imports/{run_id}", r"读取的列：[^\s<]", r"Columns read: [^\s<]"),
        ("admin", "/admin/rules", "新轮次使用的规则：<strong>", "Active for new rounds: <strong>")))
    assert not missing, "\n".join(missing)


@pytest.fixture
def round_in_force(session, clock, make_manager, make_rep, make_account, make_round, make_bid):
    """A round whose results took effect and were filed: one account awarded by the ranking,
    the other to the bidder the ranking put second, by an override with a reason."""
    from bidhub.models import BidScore
    from bidhub.services.appeals import apply_due_listings

    manager = make_manager(name="周敏")
    reps = [make_rep(name="王芳"), make_rep(name="李强")]
    ranked = make_account(name="北京星河科技有限公司")
    overridden = make_account(name="上海蓝海物流集团")
    round_ = make_round(accounts=[ranked, overridden], manager=manager, title="三月客户资源竞标",
                        closes_at=clock() + timedelta(days=1))
    for listing in round_.listings:
        for rep in reps:
            make_bid(rep, listing)
    clock.advance(days=1)
    assert score_closed_round(session, round_.id, clock())
    for listing in round_.listings:
        if listing.account_id == ranked.id:
            decide_listing(session, manager, listing.id, kind="accepted", bid_id=None,
                           reason="", now=clock())
            continue
        second = session.scalars(select(Bid.id).join(BidScore).where(
            Bid.listing_id == listing.id, BidScore.is_proposed_winner.is_(False))).one()
        decide_listing(session, manager, listing.id, kind="overridden", bid_id=second,
                       reason="该销售已服务该集团的子公司，便于统一跟进。", now=clock())
    round_ = session.get(Round, round_.id)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    clock.set(session.get(Round, round_.id).standstill_ends_at)
    assert len(apply_due_listings(session, clock())) == 2
    reload(session)
    return SimpleNamespace(manager=manager, ranked=ranked, overridden=overridden,
                           title=round_.title)


def test_the_register_runs_an_override_on_after_its_label(app, round_in_force):
    client = app.test_client()
    sign_in(client, round_in_force.manager)
    page = client.get("/manage/filings", headers={"Accept-Language": "zh-CN"})
    assert "改判理由：该销售已服务" in page.get_data(as_text=True)
    page = client.get("/manage/filings", headers={"Accept-Language": "en"})
    assert "Override: 该销售已服务" in page.get_data(as_text=True)


def test_an_accounts_history_gives_a_round_awards_reason_in_the_pages_language(
        app, round_in_force):
    """A round award's filing keeps its reason as bidhub wrote it, in English ("Won in round
    “…”"); the account's history says it as the register does, in the page's language."""
    client = app.test_client()
    sign_in(client, round_in_force.manager)
    path = f"/manage/accounts/{round_in_force.ranked.id}"
    page = client.get(path, headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "原因：在“三月客户资源竞标”中中标" in page and "Won in round" not in page
    page = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Reason: Won in round “三月客户资源竞标”" in page


def test_the_page_scan_reaches_every_page(app):
    """A new page joins the scan above: every GET page for people is on one of its lists."""
    listed = {re.sub(r"\{[a-z_]+\}", "<id>", page.split("?")[0])
              for page in ("/login", *REP_PAGES, *MANAGER_PAGES, *ADMIN_PAGES, *EXECUTIVE_PAGES,
                           *RESULT_PAGES, *STANDSTILL_PAGES)}
    missing = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in NOT_SCANNED:
            continue
        if re.sub(r"<[^>]+>", "<id>", rule.rule) not in listed:
            missing.append(f"{rule.endpoint} {rule.rule}")
    assert not missing, "pages the Chinese scan does not visit:\n" + "\n".join(missing)


class LinkTargets(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.targets.append(href)


def linked_pages(app, client, depth: int = 2) -> dict[str, str]:
    """The HTML of every page a signed-in person reaches from the home page in up to `depth`
    clicks: links on this host to a page for people (not NOT_SCANNED: downloads, counters),
    with no `lang` (an export in the other language)."""
    adapter = app.url_map.bind("localhost")
    pages: dict[str, str] = {}
    level = ["/"]
    for clicks in range(depth + 1):
        found: list[str] = []
        for path in level:
            if path in pages:
                continue
            response = client.get(path, headers={"Accept-Language": "zh-CN"},
                                  follow_redirects=True)
            assert response.status_code == 200, (path, response.status_code)
            pages[path] = html = response.get_data(as_text=True)
            if clicks == depth:
                continue
            parser = LinkTargets()
            parser.feed(html)
            here = response.request.path + (f"?{response.request.query_string.decode()}"
                                             if response.request.query_string else "")
            for href in parser.targets:
                target = urlsplit(urljoin(here, href))
                if target.scheme or target.netloc or "lang=" in target.query:
                    continue
                try:
                    endpoint, _arguments = adapter.match(target.path, method="GET")
                except HTTPException:
                    continue
                if endpoint not in NOT_SCANNED:
                    found.append(target.path + (f"?{target.query}" if target.query else ""))
        level = list(dict.fromkeys(found))
    return pages


def test_every_page_linked_from_each_roles_home_speaks_chinese(app, department):
    """The lists above name each page once; here every role follows the links from its home
    page two clicks deep, so the same checks read the pages with the data the department
    holds: every rep's and account's page, a sponsored account, the executive's pages."""
    findings: dict[str, dict[str, str]] = {}
    punctuation: dict[str, list[str]] = {}
    world, ids = department.world, department.ids
    expected = {world.rep: "/my/bids",
                world.manager: f"/manage/accounts/{ids['sponsored_account_id']}",
                world.admin: f"/admin/imports/{ids['run_id']}",
                "president": "/confirmations"}
    for username, reached in expected.items():
        client = app.test_client()
        sign_in(client, department.users[username], WORLD_PASSWORD)
        pages = linked_pages(app, client)
        assert reached in pages, (username, " ".join(sorted(pages)))
        for path, html in pages.items():
            page = f"{username} {path}"
            allowed = department.allowed | department.page_data.get(path, frozenset())
            if words := english_words(visible_text(html), allowed):
                findings[page] = words
            if lines := punctuation_problems(html):
                punctuation[page] = lines
    assert not findings and not punctuation, report_of(findings, punctuation)


def test_error_pages_speak_chinese(app, make_rep, make_branch):
    client = app.test_client()
    sign_in(client, make_rep(username="rep-error-pages", name="王伟",
                             branch=make_branch("GZ", "广州")))
    for path, status in (("/no-such-page", 404), ("/manage/rounds", 403), ("/bids/999999", 404)):
        response = client.get(path, headers={"Accept-Language": "zh-CN"})
        assert response.status_code == status
        words = english_words(visible_text(response.get_data(as_text=True)),
                              ALLOWED_WORDS | {"rep", "error", "pages"})
        assert not words, (path, words)


def test_someone_who_must_change_their_password_can_still_switch_language(app, session,
                                                                            make_rep):
    rep = make_rep()
    rep.must_change_password = True
    session.commit()
    client = app.test_client()
    sign_in(client, rep)
    response = client.post("/language", data={"locale": "en", "next": "/password"})
    assert response.status_code == 303 and response.location == "/password"
    page = client.get("/password")
    assert html_lang(page) == "en" and "Change your password" in page.get_data(as_text=True)


def test_the_footer_names_the_time_zone_as_people_say_it(app):
    client = app.test_client()
    chinese = client.get("/login", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    english = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "中国（上海）时间" in chinese and "Asia/Shanghai" not in chinese
    assert "China (Shanghai) Time" in english


def test_a_rep_capped_in_the_round_is_told_the_listings_won_in_chinese_style(app):
    """The listings a rep already wins are listed as #43、#44和#45 in Chinese; the reason is
    still equal to the same reason made again, so that two allocations compare equal."""
    wins = _elsewhere([45, 43, 44], None)
    assert wins == _elsewhere([43, 44, 45], None)
    assert str(wins) == "wins #43, #44 and #45 in this round"
    with app.test_request_context(), force_locale("zh_CN"):
        assert "#43、#44和#45" in translate(wins)


def test_a_fields_hint_runs_on_after_a_chinese_full_stop(client, make_rep, open_listing):
    """A field's hint and its description are two sentences: one space between them in
    English, none after 。 in Chinese."""
    sign_in(client, make_rep())
    form = client.get(f"/listings/{open_listing.id}/bid").get_data(as_text=True)
    assert "关键人。至少 20 个字符。" in form and "。 " not in form
    english = client.get(f"/listings/{open_listing.id}/bid",
                         headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r'<small class="hint">[^<]*\. At least 20 characters\.</small>', english)


def test_a_page_drawn_for_a_refused_form_switches_back_to_the_form(login_as, make_admin):
    """The address of a form's answer takes no GET: the switch brings the user back to the
    page the form was sent from (this site's only), else home."""
    client = login_as(make_admin())
    refused = client.post("/admin/rules/adopt", data={"note": ""},
                          headers={"Referer": "http://localhost/admin/rules?tab=draft"})
    assert refused.status_code == 422
    assert 'name="next" value="/admin/rules?tab=draft"' in refused.get_data(as_text=True)
    for referrer in ({}, {"Referer": "https://elsewhere.example/admin/rules"}):
        page = client.post("/admin/rules/adopt", data={"note": ""}, headers=referrer)
        assert 'name="next" value=""' in page.get_data(as_text=True)
    response = client.post("/language", data={"locale": "en", "next": ""})
    assert response.status_code == 303 and response.location == "/"
