"""The round page's adjudication rows as plain values, worked out in one pass per page.

The table repeats the same lookups for every listing (the proposed bid, the margin, each flag's
bidders and notes, the override choices, two URLs); done by the template row by row they were
most of the page's rendering time. `decision_rows` works the values out, `rows_html` writes
them as markup, and the template only places it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from flask import current_app, request, url_for
from flask_babel import get_locale, ngettext
from markupsafe import Markup, escape

from bidhub.models import DecisionKind
from bidhub.services.adjudication import Flag, ListingReview, RoundDecision
from bidhub.web.i18n import kept_with_catalogue, translate
from bidhub.web.rendering import decision_reason, score, sentences

ACCEPTED, OVERRIDDEN, NO_AWARD = (DecisionKind.ACCEPTED.value, DecisionKind.OVERRIDDEN.value,
                                   DecisionKind.NO_AWARD.value)
# A listing id no round reaches: its digits mark where a URL carries the id.
_MARKER = 9_876_543_210


class FlagBadge(NamedTuple):
    flag: str
    label: str
    # The flagged bidders and why, one per line; None for a flag of the listing, not of a bid.
    title: Markup | None


class OverrideChoice(NamedTuple):
    bid_id: int
    rank: int | str
    name: str
    total: str


class DecisionRow(NamedTuple):
    """One listing's row of the adjudication table (a tuple: a page builds one per listing)."""

    listing_id: int
    href: str
    action: str
    name: str
    external_id: str
    bid_count: int
    badges: list[FlagBadge]
    proposed_name: str
    proposed_total: str
    margin: str
    # Why the margin is not over the best other bid, when bids ranked above were kept out.
    margin_note: str
    decision: RoundDecision | None
    decision_label: str
    has_no_bids: bool
    can_decide: bool
    # Offered only when deciding: accepting the proposed winner, another eligible bidder, none.
    may_accept: bool
    others: list[OverrideChoice]
    may_refuse: bool


class _ListingUrl:
    """An endpoint's URL for any listing id, built by `url_for` once per page."""

    def __init__(self, endpoint: str) -> None:
        self.before, _, self.after = url_for(endpoint, listing_id=_MARKER).partition(
            str(_MARKER))

    def __call__(self, listing_id: int) -> str:
        return f"{self.before}{listing_id}{self.after}"


def decision_rows(reviews: Iterable[ListingReview], text, *, can_decide: bool,
                  reopened: Iterable[int] = ()) -> list[DecisionRow]:
    """The rows of these reviews, in their order; `text` holds the labels translated once
    (manage.decision_row_text). In the standstill window only a listing an upheld appeal sent
    back (`reopened`) is decided again."""
    listing_url, decide_url = _ListingUrl("manage.listing"), _ListingUrl("manage.decide")
    reopened = set(reopened)
    rows = []
    for review in reviews:
        listing, decision, proposed = review.listing, review.decision, review.proposed
        others = [bid for bid in review.eligible if bid is not proposed]
        # A bidder who left or was deactivated may not be chosen (the decision would refuse).
        gone = review.unavailable_rep_ids
        margin = review.margin
        deciding = (can_decide or listing.id in reopened) and not review.has_no_bids
        rows.append(DecisionRow(
            listing_id=listing.id, href=listing_url(listing.id), action=decide_url(listing.id),
            name=listing.account.name, external_id=listing.account.external_id,
            bid_count=len(review.ranking), badges=_badges(review, text),
            proposed_name=proposed.rep.display_name if proposed else "—",
            proposed_total=score(proposed.score.total) if proposed else "—",
            margin=score(margin) if margin is not None else "—",
            margin_note=margin_note(review),
            decision=decision,
            decision_label=text.kinds[decision.kind] if decision is not None else "",
            has_no_bids=review.has_no_bids, can_decide=deciding,
            may_accept=deciding and proposed is not None and proposed.rep_id not in gone
            and not (decision is not None and decision.kind == DecisionKind.ACCEPTED),
            others=[OverrideChoice(bid.id, bid.score.rank or "—", bid.rep.display_name,
                                   score(bid.score.total))
                    for bid in others if bid.rep_id not in gone] if deciding else [],
            may_refuse=deciding and not (
                decision is not None and decision.kind == DecisionKind.NO_AWARD)))
    return rows


def margin_note(review: ListingReview) -> str:
    """What the margin is when the proposed winner is not the best-ranked bid: the allocation
    kept the bids above it out of this account, so the margin is over the next bid below."""
    count = review.passed_over
    if not count:
        return ""
    if review.runner_up is None:
        return ngettext(
            "no eligible bid ranks below the proposed winner; the allocation kept the %(num)d "
            "bid ranked above it out of this account (see details)",
            "no eligible bid ranks below the proposed winner; the allocation kept the %(num)d "
            "bids ranked above it out of this account (see details)", count)
    return ngettext(
        "lead over the next bid below; the allocation kept the %(num)d bid ranked above it "
        "out of this account (see details)",
        "lead over the next bid below; the allocation kept the %(num)d bids ranked above it "
        "out of this account (see details)", count)


def kept_rows_html(reviews: Sequence[ListingReview], text, *, can_decide: bool,
                   reopened: Iterable[int], token: str) -> Markup:
    """rows_html(decision_rows(...)) of the page's reviews, in their order, kept per app for
    the review objects themselves, the page's language and mount point and what may be
    decided; only the form token is put in afresh.

    review_round keeps a round's reviews for the rows they are worked out from and hands out
    the same objects until one of those rows changes; an entry holds its reviews, so no other
    object can take their ids while it is kept."""
    reopened = frozenset(reopened)
    key = (request.script_root, str(get_locale()), can_decide, reopened,
           tuple(map(id, reviews)))
    kept = current_app.extensions.setdefault(_KEPT_ROWS, {})
    found = kept.get(key)
    if found is None or any(was is not review for was, review in zip(found[0], reviews, strict=True)):
        markup = rows_html(decision_rows(reviews, text, can_decide=can_decide,
                                         reopened=reopened), text, token=_TOKEN_SLOT)
        if len(kept) >= _KEPT_ROWS_LIMIT:
            kept.clear()
        # Kept as plain text: joined as Markup, every piece would be escaped (copied) again.
        found = (tuple(reviews), str(markup).split(_TOKEN_SLOT))
        # A page of more rows than a kept review holds is drawn afresh on every view.
        if len(reviews) <= _KEPT_ROWS_MAX_ROWS:
            kept[key] = found
    return Markup(str(escape(token)).join(found[1]))  # noqa: S704 (rows_html escaped the rest)


# Where the token goes in kept rows: random per process, so no escaped text can contain it.
_TOKEN_SLOT = f"token-{secrets.token_hex(16)}"
_KEPT_ROWS = "decision_rows.kept"
_KEPT_ROWS_LIMIT = 16
_KEPT_ROWS_MAX_ROWS = 500


def _badges(review: ListingReview, text) -> list[FlagBadge]:
    badges = []
    for flag in review.flags:
        flagged = review.flagged_bids(flag)
        title = Markup("&#10;").join(
            Markup("{}: {}").format(bid.rep.display_name, translate(found.note))
            for bid, found in flagged) if flagged else None
        if flag == Flag.WINNER_UNAVAILABLE and review.winner_refusal is not None:
            title = Markup("{}").format(translate(review.winner_refusal))
        badges.append(FlagBadge(flag, text.flags[flag], title))
    return badges


def rows_html(rows: Iterable[DecisionRow], text, *, token: str, row_form=None) -> Markup:
    """The rows' markup, every text escaped here; the same bytes the row template wrote.

    Written in Python because each row held some thirty template steps and escapes, an
    override menu of every other eligible bidder among them: most of the page's rendering.
    `row_form` is the refused decision form to show again in its row (inline decisions)."""
    words = _words(text)
    token = escape(token)
    failed_kind = row_form.kind.data if row_form else None
    errors = _form_errors(row_form, text, failed_kind) if row_form else ""
    names: dict[str, str] = {}
    out: list[str] = []
    add = out.append
    for row in rows:
        lid, href, decision = row.listing_id, escape(row.href), row.decision
        add(f'<tr id="decision-{lid}" class="{"flagged" if row.badges else ""}">\n'
            f'  <td class="name"><a href="{href}">{escape(row.name)}</a> '
            f'<small class="muted">{escape(row.external_id)}</small></td>\n'
            f'  <td class="num">{row.bid_count}</td>\n'
            f'  <td class="name">{escape(row.proposed_name)}</td>\n'
            f'  <td class="num">{escape(row.proposed_total)}</td>\n'
            f'  <td class="num">{escape(row.margin)}'
            + (f'<small class="muted margin-note">{escape(row.margin_note)}</small>'
               if row.margin_note else "")
            + "</td>\n"
            '  <td class="wrap">')
        for badge in row.badges:
            add(f'<span class="badge badge-overridden" data-flag="{escape(badge.flag)}"')
            if badge.title:
                add(f' title="{escape(badge.title)}"')
            add(f">{escape(badge.label)}</span> ")
        add('</td>\n  <td class="wrap">\n')
        if decision:
            add(f'<span class="badge badge-{escape(decision.kind)}">'
                f"{escape(row.decision_label)}</span>")
            if decision.bid:
                add(f" → {_name(names, decision.bid.rep.display_name)}")
            if decision.reason:
                add(f'<br><small class="prose">{escape(decision_reason(decision.reason))}'
                    "</small>")
        elif row.has_no_bids:
            add(words.nobody_bid)
        else:
            add(words.undecided)
        add(errors)
        add('  </td>\n  <td class="wrap">\n')
        if row.can_decide:
            _decide_forms(add, row, words, token, names, row_form, failed_kind)
        add(f'    <a href="{href}">{words.details}</a>\n  </td>\n</tr>')
    return Markup("".join(out))  # noqa: S704 (every text is escaped above)


def _decide_forms(add, row: DecisionRow, words, token: str, names: dict[str, str], row_form,
                  failed_kind) -> None:
    lid, action, decision = row.listing_id, escape(row.action), row.decision
    form = (f'<form method="post" action="{action}" hx-post="{action}" '
            'hx-target="closest tr" hx-swap="outerHTML"')
    csrf = f'<input type="hidden" name="csrf_token" value="{token}">\n'
    version = (f'<input type="hidden" name="version" value="{escape(decision.version)}">'
               if decision else "")
    if row.may_accept:
        add(f'    {form} class="inline">\n      {csrf}'
            f'      <input type="hidden" name="kind" value="{ACCEPTED}">\n'
            f'{version}      <button class="primary">{words.accept}</button>\n    </form>\n')
    if row.others:
        failed = failed_kind == OVERRIDDEN
        chosen = row_form.bid_id.data if row_form else None
        add(f'    <details {"open" if failed else ""}>\n'
            f"      <summary>{words.override}</summary>\n"
            f"      {form} novalidate>\n        {csrf}"
            f'        <input type="hidden" name="kind" value="{OVERRIDDEN}">\n'
            f'{version}        <div class="field'
            f'{" has-error" if failed and row_form.bid_id.errors else ""}">\n'
            f'          <label for="override-bid-{lid}">{words.bidder}</label>\n'
            f'          <select id="override-bid-{lid}" name="bid_id"'
            f'{INVALID if failed and row_form.bid_id.errors else ""}>\n')
        for bid in row.others:
            add(f'<option value="{bid.bid_id}" '
                f'{"selected" if row_form and chosen == bid.bid_id else ""}>'
                + words.aside % {"text": f"#{escape(bid.rank)} {_name(names, bid.name)}",
                                 "note": escape(bid.total)}
                + "</option>")
        add("          </select>\n")
        if failed:
            add(_field_errors(row_form.bid_id.errors))
        add("        </div>\n")
        _reason_field(add, "override", lid, words, row_form if failed else None)
        add(f"        <button>{words.award}</button>\n      </form>\n    </details>\n")
    if row.may_refuse:
        failed = failed_kind == NO_AWARD
        add(f'    <details {"open" if failed else ""}>\n'
            f"      <summary>{words.no_award}</summary>\n"
            f"      {form} novalidate>\n        {csrf}"
            f'        <input type="hidden" name="kind" value="{NO_AWARD}">\n{version}')
        _reason_field(add, "no-award", lid, words, row_form if failed else None)
        add(f"        <button>{words.record_no_award}</button>\n      </form>\n    </details>\n")


def _reason_field(add, prefix: str, lid: int, words, failed_form) -> None:
    """A decision's written reason; `failed_form` when it is the refused form's to show."""
    errors = failed_form.reason.errors if failed_form else ()
    add(f'        <div class="field{" has-error" if errors else ""}">\n'
        f'          <label for="{prefix}-reason-{lid}">{words.written_reason}</label>\n'
        f'          <textarea id="{prefix}-reason-{lid}" name="reason" rows="2"'
        f'{INVALID if errors else ""}>'
        f'{escape(failed_form.reason.data or "") if failed_form else ""}</textarea>\n')
    if failed_form:
        add(_field_errors(errors))
    add("        </div>\n")


INVALID = ' aria-invalid="true"'  # a field whose value was refused


def _field_errors(errors) -> str:
    return "".join(f'<p class="error">{escape(error)}</p>' for error in errors)


def _form_errors(row_form, text, failed_kind) -> str:
    """A refused form's messages in the decision cell: those of no field the row's open
    override or no-award form shows, the form's own, and an expired token's."""
    out = []
    if failed_kind not in (OVERRIDDEN, NO_AWARD):
        out.extend(f'<p class="error" role="alert">{escape(error)}</p>'
                   for name, errors in row_form.errors.items() if name != "csrf_token"
                   for error in errors)
    if row_form.form_errors:
        out.append('<div class="form-errors" role="alert">'
                   + "".join(f"<p>{escape(error)}</p>" for error in row_form.form_errors)
                   + "</div>")
    csrf = getattr(row_form, "csrf_token", None)
    if csrf is not None and csrf.errors:
        out.append(f'<div class="form-errors" role="alert"><p>{escape(text.expired)}</p></div>')
    return "".join(out)


def _name(names: dict[str, str], name: str) -> str:
    """A rep's name escaped once a page: the same few reps fill every row's menu."""
    shown = names.get(name)
    if shown is None:
        shown = names[name] = escape(name)
    return shown


class _Words(NamedTuple):
    accept: str
    override: str
    bidder: str
    written_reason: str
    award: str
    no_award: str
    record_no_award: str
    details: str
    undecided: str
    nobody_bid: str
    aside: str  # "%(text)s (%(note)s)", with its brackets in the page's language


def _words(text) -> _Words:
    """The row words escaped, kept beside the page's catalogue like the words themselves."""
    return kept_with_catalogue(_WORDS, lambda: _Words(
        accept=escape(text.accept), override=escape(text.override),
        bidder=escape(text.bidder), written_reason=escape(text.written_reason),
        award=escape(text.award), no_award=escape(text.no_award),
        record_no_award=escape(text.record_no_award), details=escape(text.details),
        undecided=f'<span class="muted">{escape(text.undecided)}</span>',
        nobody_bid=(f'<span class="badge badge-{NO_AWARD}">'
                    f"{escape(text.kinds[NO_AWARD])}</span><br><small>"
                    f"{sentences(text.nobody_bid, text.recorded_later)}</small>\n"),
        aside=str(escape(text.aside))))


# The key of the escaped row words beside a catalogue's messages (no msgid is a tuple).
_WORDS = ("decision_rows.words",)
