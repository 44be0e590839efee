"""Moments a CRM exports with their zone (UTC, as many write them) import as the department's
days: a deal closed at 01:30 in Beijing on 21 November, written 2025-11-20T17:30:00Z, closed on
the 21st."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy import select

from bidhub.models import Opportunity, OpportunityStageChange
from tests.conftest import reload
from tests.import_formats.conftest import sample_records


def csv_of(records: list[list[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerows(records)
    return text.getvalue().encode()


def test_moments_written_in_utc_import_as_the_departments_days(session, reps, run_import):
    assert run_import("accounts", csv_of(sample_records("accounts")),
                      "accounts.csv").status == "imported"
    opportunities = sample_records("opportunities")
    header = opportunities[0]
    opened, closed, history = (header.index(name) for name in ("创建日期", "关闭日期", "阶段历史"))
    won = opportunities[1]
    won[opened] = "2025-09-01T08:00:00+08:00"
    won[closed] = "2025-11-20T17:30:00Z"
    won[history] = won[history].replace("won:2025-11-20", "won:2025-11-20T17:30:00Z")
    result = run_import("opportunities", csv_of(opportunities), "商机.csv")
    assert result.status == "imported", result.problems
    reload(session)
    stored = session.scalars(select(Opportunity).where(Opportunity.external_id == won[0])).one()
    # Midnight starting the department's day (Asia/Shanghai, UTC+8), as for a day written alone.
    assert stored.opened_at == datetime(2025, 8, 31, 16, 0, tzinfo=UTC)
    assert stored.closed_at == datetime(2025, 11, 20, 16, 0, tzinfo=UTC)
    last_change = session.scalars(
        select(OpportunityStageChange.changed_at)
        .where(OpportunityStageChange.opportunity_id == stored.id)
        .order_by(OpportunityStageChange.changed_at.desc())).first()
    assert last_change == datetime(2025, 11, 20, 16, 0, tzinfo=UTC)
