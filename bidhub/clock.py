"""The app's clock: services take `now`; web code and the CLI read the configured CLOCK."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import current_app


def system_now() -> datetime:
    return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to; tests and demos set it to exact instants."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def advance(self, **delta: float) -> datetime:
        self.at = self.at + timedelta(**delta)
        return self.at


def now() -> datetime:
    """The current instant (aware UTC) according to the app's configured clock."""
    clock: Callable[[], datetime] = current_app.config["CLOCK"]
    return clock()
