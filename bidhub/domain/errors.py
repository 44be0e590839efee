"""Errors the use cases raise; the web layer turns each into a clear answer."""

from __future__ import annotations

from bidhub.domain.text import N_, Joined, Text


class BidhubError(Exception):
    """Base of the errors a person can act on.

    `message` is what to show: a `Text` (translated where it is shown) or plain text; `str()`
    gives it in English.
    """

    def __init__(self, message: Text | Joined | str = "") -> None:
        super().__init__(message)
        self.message = message

    @property
    def refusals(self) -> list[BidhubError]:
        """Each refusal this one stands for, for whoever shows every field's problem: itself,
        or each of several refused at once (InvalidFields)."""
        return [self]


class NotFound(BidhubError):
    pass


class PermissionDenied(BidhubError):
    pass


class Conflict(BidhubError):
    """Someone else changed or decided this first; reload and try again."""


class InvalidRequest(BidhubError):
    """The request is well-formed but not allowed in the current state, with the reason.

    `field` names the form field the problem belongs to, when there is one.
    """

    def __init__(self, message: Text | Joined | str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidFields(InvalidRequest):
    """Several fields of one request refused at once, each with its own message: a form shows
    every one of them in one answer instead of the first alone. The message and field are the
    first refusal's, for whoever shows one message."""

    def __init__(self, refusals: list[InvalidRequest]) -> None:
        super().__init__(refusals[0].message, field=refusals[0].field)
        self._refusals = refusals

    @property
    def refusals(self) -> list[BidhubError]:
        return self._refusals


def refuse_together(refusals: list[InvalidRequest]) -> None:
    """Raise the one refusal, or every refusal at once; nothing when there is none."""
    if len(refusals) == 1:
        raise refusals[0]
    if refusals:
        raise InvalidFields(refusals)


class BidRejected(InvalidRequest):
    pass


class NotEligible(BidRejected):
    def __init__(self, reasons: list[Text | str]) -> None:
        super().__init__(N_("Not eligible for this account: %(reasons)s", reasons=Joined(reasons)))
        self.reasons = reasons


class TransferRefused(InvalidRequest):
    pass


class OwnerChangeRefused(InvalidRequest):
    """An ownership change is refused and nothing moved.

    `problems` lists each change refused, when several were asked for at once.
    """

    def __init__(self, message: Text | Joined | str, field: str | None = None,
                 problems: list | None = None) -> None:
        super().__init__(message, field)
        self.problems = problems or []


class CapacityExceeded(OwnerChangeRefused):
    """An ownership change would take a rep past the accounts-per-rep limit."""


class ReceiverUnavailable(OwnerChangeRefused):
    """The rep an account would go to may no longer hold accounts: they left the company or
    were deactivated (or are no rep any more)."""
