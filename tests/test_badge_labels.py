"""Status badges read alike in English: sentence case ("Open for bids", "In blind review").

A page often shows badges from a label map beside badges a template words itself (a rep's round
list: "Open for bids" beside "In blind review"), so both are collected here: the label maps the
badges draw from, the words the templates put inside a badge, and every badge on the pages
each role reads.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bidhub import models
from bidhub.web import board, labels, listing_lines, manage, profiles, reviews
from tests.test_i18n import (
    ADMIN_PAGES,
    EXECUTIVE_PAGES,
    MANAGER_PAGES,
    REP_PAGES,
    WORLD_PASSWORD,
    department,  # noqa: F401 - the browser walk's department, as the Chinese scan reads it
    sign_in,
)

TEMPLATES = Path(models.__file__).parent / "templates"
ENGLISH = {"Accept-Language": "en"}
# A word after the first that is capitalised but not an abbreviation ("Bids" in "Open For Bids").
TITLE_CASE_WORD = re.compile(r"^[A-Z][a-z]")


def sentence_case_problem(text: str) -> str | None:
    """Why `text` is not in sentence case, or None. A label that starts with a number or a
    placeholder ("3 above the maximum") has no first letter to capitalise."""
    text = " ".join(text.split())
    if not text or not text[0].isalpha():
        return None
    if not text[0].isupper():
        return "starts in lower case"
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*", text)[1:]
    if any(TITLE_CASE_WORD.match(word) for word in words):
        return "title case"
    return None


def test_the_check_knows_sentence_case():
    assert sentence_case_problem("Open for bids") is None
    assert sentence_case_problem("In blind review") is None
    assert sentence_case_problem("KA management overrode the ranking") is None
    assert sentence_case_problem("%(count)d above the maximum") is None
    assert sentence_case_problem("3") is None
    assert sentence_case_problem("open for bids") == "starts in lower case"
    assert sentence_case_problem("stale CRM data") == "starts in lower case"
    assert sentence_case_problem("Open For Bids") == "title case"


def badge_maps() -> dict[str, dict]:
    """Every set of labels a badge draws from, in the page's language."""
    row_text = manage.decision_row_text()
    heading = listing_lines._heading_words()
    return {
        **{f"labels.{kind}": dict(found) for kind, found in labels.LABELS.items()
           if isinstance(kind, str)},
        "manage.FLAG_LABELS": manage.FLAG_LABELS,
        "manage.BID_FLAG_LABELS": manage.BID_FLAG_LABELS,
        "the adjudication rows' decisions": row_text.kinds,
        "the adjudication rows' flags": row_text.flags,
        "the adjudication rows' undecided": {"undecided": row_text.undecided},
        "board.BAND_LABELS": board.BAND_LABELS,
        "reviews.REGISTER_STATUS_LABELS": reviews.REGISTER_STATUS_LABELS,
        "a rep's profile's bid results": profiles.page_labels()["bid_results"],
        "a round's heading": {key: heading[key] for key in ("open", "closed")},
    }


def test_the_labels_badges_draw_from_are_in_sentence_case(app):
    with app.test_request_context(headers=ENGLISH):
        found = [f"{name}[{code}]: {str(text)!r} {problem}"
                 for name, mapping in badge_maps().items() for code, text in mapping.items()
                 if (problem := sentence_case_problem(str(text)))]
    assert not found, "labels not in sentence case:\n" + "\n".join(found)


BADGE = re.compile(r"""<span class="badge[^"]*"[^>]*>(.*?)</span>""", re.S)
MSGID = re.compile(r"""\b(?:_|ngettext)\(\s*(["'])(.+?)\1""", re.S)
SET_LINE = re.compile(r"\{%-?\s*set\s+([\w\s,]+?)\s*=\s*(.+?)\s*-?%\}", re.S)
PRINTED_NAME = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template_badge_words(text: str) -> list[str]:
    """The msgids a template prints inside a badge: written there, or set earlier by name
    (`{% set open_for_bids = _("...") %}`, translated once per page)."""
    named: dict[str, str] = {}
    for names, values in SET_LINE.findall(text):
        found = [msgid for _quote, msgid in MSGID.findall(values)]
        names = [name.strip() for name in names.split(",")]
        if len(found) == len(names):
            named.update(zip(names, found, strict=True))
    words = []
    for inner in BADGE.findall(text):
        words += [msgid for _quote, msgid in MSGID.findall(inner)]
        words += [named[name] for name in PRINTED_NAME.findall(inner) if name in named]
    return words


def test_the_template_scan_finds_words_set_by_name():
    assert template_badge_words(
        '{% set shut, ready = _("closed"), _("Ready") %}<span class="badge">{{ shut }}</span>'
        '<span class="badge badge-open">{{ _("open") }}</span><span>{{ ready }}</span>'
    ) == ["closed", "open"]


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")),
                         ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_the_words_templates_put_in_badges_are_in_sentence_case(path):
    found = [f"{word!r} {problem}" for word in template_badge_words(path.read_text("utf-8"))
             if (problem := sentence_case_problem(word))]
    assert not found, f"{path.relative_to(TEMPLATES)}: " + "; ".join(found)


class Badges(HTMLParser):
    """The text of every element of class badge on a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if self._depth:
            self._depth += 1
        elif "badge" in (dict(attrs).get("class") or "").split():
            self._depth = 1
            self.texts.append("")

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.texts[-1] += data


def page_badges(html: str) -> list[str]:
    parser = Badges()
    parser.feed(html)
    return [" ".join(text.split()) for text in parser.texts]


def test_every_badge_on_each_roles_pages_is_in_sentence_case(app, department):  # noqa: F811
    """The rep reads an open round beside one in blind review, the manager a scored round and
    the filings, the admin the rules and imports: every badge in English is in sentence case."""
    world, ids = department.world, department.ids
    found: dict[str, set[str]] = {}
    seen = set()
    for username, pages in ((world.rep, REP_PAGES), (world.manager, MANAGER_PAGES),
                            (world.admin, ADMIN_PAGES), ("president", EXECUTIVE_PAGES)):
        client = app.test_client()
        sign_in(client, department.users[username], WORLD_PASSWORD)
        for template in pages:
            path = template.format(**ids)
            response = client.get(path, headers=ENGLISH, follow_redirects=True)
            assert response.status_code == 200, (path, response.status_code)
            for text in page_badges(response.get_data(as_text=True)):
                seen.add(text)
                if sentence_case_problem(text):
                    found.setdefault(text, set()).add(f"{username} {path}")
    # The walk reaches the rep's round list with its two kinds of badge.
    assert {"In blind review"} <= seen
    assert not found, "badges not in sentence case:\n" + "\n".join(
        f"{text!r} on {', '.join(sorted(pages))}" for text, pages in sorted(found.items()))
