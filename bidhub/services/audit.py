"""The audit trail of privileged changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bidhub.models import AuditEvent, User


def record_audit(
    session: Session,
    actor: User | None,
    action: str,
    target: str,
    now: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(AuditEvent(actor_id=actor.id if actor else None, action=action, target=target,
                           before=before, after=after, at=now))
