"""Track-record pages: what a rep and management see, from real history."""

from __future__ import annotations

import re
from datetime import date, timedelta

from bidhub.models import (
    AccountabilityIncident,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
)


def test_a_rep_sees_their_own_track_record_and_not_anothers(app, session, make_rep, make_account,
                                                            give_accounts, make_opportunities,
                                                            login_as, clock):
    rep, other = make_rep(name="Own Rep"), make_rep()
    give_accounts(rep, 33)
    make_opportunities(rep, make_account(), won=3, lost=1)
    session.add_all([
        MonthlyForecast(rep_id=rep.id, month=date(2026, 1, 1), forecast_yuan=100_000,
                        actual_yuan=90_000),
        MonthlyForecast(rep_id=rep.id, month=date(2026, 2, 1), forecast_yuan=120_000,
                        actual_yuan=150_000),
        AccountabilityIncident(account_id=make_account(owner=rep).id, rep_id=rep.id,
                               competitor_site="51job.com", ad_type="banner",
                               seen_at=clock() - timedelta(days=3), status="upheld"),
    ])
    session.commit()
    client = login_as(rep)
    page = client.get("/my/track-record", follow_redirects=True)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Own Rep" in html and "<strong class=\"big\">34</strong>" in html
    assert "75%" in html  # win rate 3 / 4
    assert "51job.com" in html and "<svg class=\"chart\"" in html
    # forecast accuracy over Jan and Feb: 1 - mean(0.1, 0.25) = 82.5%
    assert "82%" in html or "83%" in html
    assert client.get(f"/reps/{other.id}").status_code == 404
    # The chart names its months as the page's language does.
    labels = re.findall(r'class="chart-label"[^>]*>([^<]*)</text>', html)
    assert {"Jan", "Feb"} <= set(labels) and all(label.isalpha() for label in labels), labels
    chinese = client.get("/my/track-record", headers={"Accept-Language": "zh-CN"}
                         ).get_data(as_text=True)
    labels = re.findall(r'class="chart-label"[^>]*>([^<]*)</text>', chinese)
    assert {"1月", "2月"} <= set(labels) and all(label.endswith("月") for label in labels), labels


def test_the_funnel_counts_a_deal_won_and_later_lost_as_reaching_won(
        session, make_rep, make_account, login_as, clock):
    """Stage conversion counts a deal won and then lost as a closed deal past intent, not won;
    the funnel beside it counts the same deal as reaching every stage up to won, not as
    stopping at potential."""
    rep = make_rep()
    account = make_account(owner=rep)

    def deal(*path: tuple[str, int]) -> None:
        opened, final = clock() - timedelta(days=path[0][1]), path[-1]
        opportunity = Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=80_000,
                                  stage=final[0], opened_at=opened,
                                  closed_at=clock() - timedelta(days=final[1]))
        session.add(opportunity)
        session.flush()
        session.add_all(OpportunityStageChange(opportunity_id=opportunity.id, stage=stage,
                                               changed_at=clock() - timedelta(days=days))
                        for stage, days in path)

    deal(("potential", 90), ("won", 60), ("lost", 30))  # the customer backed out
    deal(("potential", 90), ("lost", 30))  # never qualified
    session.commit()
    html = login_as(rep).get("/my/track-record").get_data(as_text=True)
    funnel = re.search(r'<table class="grid compact funnel">.*?</table>', html, re.S).group(0)
    rows = [re.sub(r"<[^>]*>|\s+", " ", row).split()[-4:]
            for row in re.findall(r"<tr><td class=\"term\">.*?</tr>", funnel, re.S)]
    # Open, reached, went on, rate: two reached potential, the won deal passed every stage.
    assert rows == [["0", "2", "1", "50%"], ["0", "1", "1", "100%"], ["0", "1", "1", "100%"],
                    ["0", "1", "1", "100%"]]
    metrics = re.search(r"Stage conversion.*?</tr>", html, re.S).group(0)
    assert "0%" in metrics  # one closed deal past intent, not won


def test_management_sees_every_rep(app, make_rep, make_manager, login_as):
    rep = make_rep(name="Listed Rep")
    client = login_as(make_manager())
    assert "Listed Rep" in client.get("/reps").get_data(as_text=True)
    assert client.get(f"/reps/{rep.id}").status_code == 200


def test_kept_track_record_markup_is_bounded_by_what_it_holds(monkeypatch):
    from markupsafe import escape

    from bidhub.web import profiles

    monkeypatch.setattr(profiles, "KEPT_ROWS_MAX_CHARACTERS", 100)
    kept = profiles.KeptMarkup()
    kept.keep(("a",), escape("x" * 60))
    kept.keep(("b",), (escape("y" * 30), 7))
    assert kept.characters == 90 and len(kept.entries) == 2
    assert kept.keep(("c",), escape("z" * 20)) == "z" * 20  # 110 > 100: the rest goes first
    assert list(kept.entries) == [("c",)] and kept.characters == 20
