"""Translations kept per catalogue answer as Flask-Babel would, whatever the request's language."""

from __future__ import annotations

from flask import render_template_string
from flask_babel import force_locale, refresh

from bidhub.models import BidStatus, RepStatus
from bidhub.web.i18n import gettext, ngettext
from bidhub.web.labels import cached_label

ZH = {"Accept-Language": "zh-CN"}


def test_a_kept_translation_follows_force_locale_and_refresh(app):
    with app.test_request_context("/", headers=ZH):
        assert gettext("Bid") == "竞标"
        assert gettext("Bid") == "竞标"  # the kept answer
        with force_locale("en"):  # a notification in its recipient's language, say
            assert gettext("Bid") == "Bid"
            assert cached_label("private", "ownership") == "Private"
        assert gettext("Bid") == "竞标"
        assert cached_label("private", "ownership") == "民营"
        refresh()
        assert gettext("Bid") == "竞标"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert gettext("Bid") == "Bid"
        assert cached_label("private", "ownership") == "Private"


def test_templates_translate_through_the_kept_translations(app):
    template = ('{{ _("Bid") }}|{{ _("%(num)d of %(total)d", num=1, total=2) }}|'
                '{{ ngettext("%(num)d account", "%(num)d accounts", 3) }}')
    with app.test_request_context("/", headers=ZH):
        assert render_template_string(template) == "竞标|1 of 2|3 个客户"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert render_template_string(template) == "Bid|1 of 2|3 accounts"
        assert ngettext("%(num)d account", "%(num)d accounts", 1) == "%(num)d account"


def test_enum_members_with_the_same_value_keep_their_own_labels(app):
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert cached_label(RepStatus.ACTIVE) == "Active"
        assert cached_label(BidStatus.ACTIVE) == "Active bid"
        assert cached_label(RepStatus.ACTIVE) == "Active"


def test_outside_a_request_messages_are_the_english(app):
    with app.app_context():
        assert gettext("Bid") == "Bid"
        assert cached_label("private", "ownership") == "Private"
