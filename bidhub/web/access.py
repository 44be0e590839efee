"""Who may call which view: every view declares its audience with one of these decorators."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app
from flask_login import current_user

from bidhub.extensions import login_manager
from bidhub.models import Role

ACCESS_ATTRIBUTE = "bidhub_access"
EVERYONE = "everyone"
SIGNED_IN = "signed_in"


def public(view: Callable) -> Callable:
    """Open to anyone, signed in or not (the login page)."""
    setattr(view, ACCESS_ATTRIBUTE, frozenset({EVERYONE}))
    return view


def roles_required(*roles: Role | str) -> Callable[[Callable], Callable]:
    """Signed-in users with one of `roles`; with no roles, any signed-in user."""
    allowed = frozenset(roles) or frozenset({SIGNED_IN})

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if SIGNED_IN not in allowed and current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        setattr(guarded, ACCESS_ATTRIBUTE, allowed)
        return guarded

    return decorate


signed_in = roles_required()
rep_only = roles_required(Role.REP)
managers = roles_required(Role.KA_MANAGER, Role.ADMIN)
admins = roles_required(Role.ADMIN)


def declared_access(view: Callable) -> frozenset[str] | None:
    return getattr(view, ACCESS_ATTRIBUTE, None)


def reachable_endpoint(*names: str) -> str | None:
    """The first of `names` this app serves and the signed-in user may open, by each view's
    declared audience: pages other parts of bidhub add are linked once they exist, and a link
    is offered only to those the page is meant for."""
    for name in names:
        view = current_app.view_functions.get(name)
        access = declared_access(view) if view is not None else None
        if access and (EVERYONE in access or SIGNED_IN in access or current_user.role in access):
            return name
    return None
