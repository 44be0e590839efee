"""The inbox: every signed-in user's notifications, the header's unread count, and how a
notification reads outside the app (e-mail and webhook), in the recipient's language."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, flash, request, url_for
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.routing import BuildError
from wtforms import EmailField
from wtforms.validators import Optional

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import InvalidRequest
from bidhub.domain.text import Text
from bidhub.models import Notification
from bidhub.services import notifications
from bidhub.web.access import admins, signed_in
from bidhub.web.forms import Form, TextLength
from bidhub.web.i18n import translate
from bidhub.web.params import control_characters, int_arg
from bidhub.web.rendering import localtime, redirect_after_post, render

blueprint = Blueprint("notifications", __name__, url_prefix="/notifications")
READ_EVENT = "notifications-read"  # htmx event: the header's badge counts again


class EmailForm(Form):
    email = EmailField(_l("E-mail address for notifications"),
                       validators=[Optional(), TextLength(max=notifications.MAX_EMAIL_LENGTH)])


def message_of(notification: Notification, format_instant=localtime) -> str:
    """The item's text in the current language; `_at` parameters are shown in local time."""
    params = {name: format_instant(datetime.fromisoformat(value))
              if name.endswith("_at") and isinstance(value, str) else value
              for name, value in (notification.params or {}).items()}
    return Text(notification.msgid, params).render(_)


def link_of(notification: Notification) -> str:
    """The page to act on; the inbox when that page no longer exists."""
    try:
        return url_for(notification.link_endpoint, **(notification.link_args or {}))
    except (BuildError, TypeError, ValueError):
        return url_for("notifications.inbox")


def view_of(notification: Notification) -> dict[str, Any]:
    return {"id": notification.id, "text": message_of(notification),
            "created_at": notification.created_at, "is_unread": notification.read_at is None}


def inbox_page(form: EmailForm | None = None, status: int = 200):
    session = get_session()
    page = notifications.inbox(session, current_user,
                               int_arg(request.args, "page", minimum=1) or 1)
    channels = session.info.get(notifications.CHANNELS_INFO_KEY) or notifications.Channels()
    if form is None and channels.email:
        form = EmailForm(email=current_user.email or "")
    return render("notifications/inbox.html", status=status, page=page,
                  items=[view_of(item) for item in page.items], email_form=form)


@blueprint.route("", endpoint="inbox")
@signed_in
def inbox():
    return inbox_page()


@blueprint.route("/unread-count")
@signed_in
def unread_count():
    count = notifications.unread_count(get_session(), current_user)
    return render("notifications/_unread_count.html", count=count)


@blueprint.route("/<int:notification_id>/open", methods=["POST"])
@signed_in
def open_notification(notification_id: int):
    """Opening an item marks it read and goes to its page (a POST: GET never changes state)."""
    notification = notifications.mark_read(get_session(), current_user, notification_id, now())
    return redirect_after_post(link_of(notification), event=READ_EVENT)


@blueprint.route("/<int:notification_id>/read", methods=["POST"])
@signed_in
def mark_read(notification_id: int):
    session = get_session()
    notification = notifications.mark_read(session, current_user, notification_id, now())
    if request.headers.get("HX-Request") == "true":
        response = render("notifications/_read_response.html", item=view_of(notification),
                          unread=notifications.unread_count(session, current_user))
        response.headers["HX-Trigger"] = READ_EVENT
        return response
    return redirect_after_post(url_for("notifications.inbox"))


@blueprint.route("/read-all", methods=["POST"])
@signed_in
def mark_all_read():
    count = notifications.mark_all_read(get_session(), current_user, now())
    flash(ngettext("Marked %(num)d notification read.", "Marked %(num)d notifications read.",
                   count), "success")
    return redirect_after_post(url_for("notifications.inbox"), event=READ_EVENT)


@blueprint.route("/email", methods=["POST"])
@signed_in
def set_email():
    form = EmailForm()
    if form.validate_on_submit():
        try:
            notifications.set_notification_email(get_session(), current_user, current_user.id,
                                                 form.email.data or "", now())
        except InvalidRequest as error:
            form.add_error(error)
            return inbox_page(form, status=422)
        flash(_("Saved. Notifications will be e-mailed there too.") if form.email.data
              else _("Saved. Notifications stay in the inbox only."), "success")
        return redirect_after_post(url_for("notifications.inbox"))
    return inbox_page(form, status=422)


@blueprint.route("/users/<int:user_id>/email", methods=["POST"])
@admins
def set_user_email(user_id: int):
    """An admin sets the address of anyone (the user edit page shows the form)."""
    form = EmailForm()
    back = url_for("admin.edit_user", user_id=user_id)
    if form.validate_on_submit():
        try:
            user = notifications.set_notification_email(get_session(), current_user, user_id,
                                                        form.email.data or "", now())
        except InvalidRequest as error:
            flash(translate(error), "error")
            return redirect_after_post(back)
        flash(_("E-mail address of %(name)s saved.", name=user.username), "success")
        return redirect_after_post(back)
    if control_characters(request.form.get("email", "")):
        # The form's own words point at the field it shows again; this page shows the address
        # stored, so say what happened instead.
        flash(_("An e-mail address cannot contain control characters (such as NUL); nothing "
                "was saved."), "error")
    else:
        flash(" ".join(form.email.errors)
              or _("The form expired. Reload the page and try again."), "error")
    return redirect_after_post(back)


# --- outside the app --------------------------------------------------------------------------

def outgoing_renderer(app: Flask):
    """Renders a notification for e-mail and the webhook, in the recipient's saved language
    (else the default), with an absolute link when PUBLIC_URL is set. Runs in an app context."""
    adapter = app.url_map.bind("localhost")
    base = (app.config.get("PUBLIC_URL") or "").rstrip("/")

    def outgoing(notification: Notification) -> notifications.Outgoing:
        recipient = notification.recipient
        try:
            path = adapter.build(notification.link_endpoint, notification.link_args or {})
        except (BuildError, TypeError, ValueError):
            path = adapter.build("notifications.inbox")
        link = base + path
        locale = recipient.locale or app.config["DEFAULT_LOCALE"]
        with force_locale(locale):
            text = message_of(notification)
            subject = _("bidhub: %(message)s", message=text)
            body = _("%(message)s\n\nOpen: %(link)s\n\nbidhub KA bidding", message=text,
                     link=link)
        return notifications.Outgoing(
            subject=subject[:200], body=body,
            webhook_text=f"@{recipient.display_name} {text}\n{link}")

    return outgoing


def transport_of(config) -> notifications.Transport:
    smtp = None
    if config.get("SMTP_HOST"):
        smtp = notifications.SmtpSettings(
            host=config["SMTP_HOST"], port=int(config.get("SMTP_PORT") or 25),
            user=config.get("SMTP_USER") or None, password=config.get("SMTP_PASSWORD") or None,
            sender=config.get("SMTP_FROM") or "bidhub@localhost",
            starttls=bool(config.get("SMTP_STARTTLS")))
    return notifications.Transport(smtp=smtp, webhook_url=config.get("WEBHOOK_URL") or None)


def channels_of(config) -> notifications.Channels:
    return notifications.Channels(email=bool(config.get("SMTP_HOST")),
                                  webhook=bool(config.get("WEBHOOK_URL")))


@blueprint.record_once
def configure_delivery(state) -> None:
    """Every session of the app writes the outbox rows its configuration asks for."""
    app: Flask = state.app
    notifications.configure_channels(app.extensions["bidhub_sessionmaker"],
                                     channels_of(app.config))


def send_deliveries(app: Flask, when: datetime) -> notifications.DeliveryReport:
    """Send what is due in the outbox (the scheduler calls this, never a request)."""
    return notifications.send_due_deliveries(get_session(), when, transport_of(app.config),
                                             outgoing_renderer(app))
