"""bidhub: fair, rule-based bidding for a company's key client accounts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    from bidhub.web.templating import Environment

    app = Flask(__name__, instance_relative_config=True)
    app.jinja_environment = Environment  # before anything makes app.jinja_env
    configure(app, config)
    register_request_logging(app)
    register_database(app)
    register_ledger_anchor(app)
    register_rules(app)
    register_extensions(app)
    register_auth(app)
    register_templates(app)
    register_security_headers(app)
    register_error_pages(app)
    register_url_converters(app)
    register_blueprints(app)
    register_cli(app)
    register_scheduler(app)
    return app


def configure(app: Flask, config: Mapping[str, Any] | None) -> None:
    from bidhub.config import Defaults, environment_config, instance_secret_key

    app.config.from_object(Defaults)
    app.config.update(environment_config())
    if config:
        app.config.update(config)
    configure_languages(app)
    check_timezone(app.config["TIMEZONE"])
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)


def configure_languages(app: Flask) -> None:
    from bidhub.config import ConfigError
    from bidhub.web.i18n import best_language, translation_directories

    wanted = app.config["DEFAULT_LOCALE"]
    default = best_language([(wanted, 1.0)], app.config["LANGUAGES"])
    if default is None:
        raise ConfigError(f"BIDHUB_DEFAULT_LOCALE is {wanted!r}; bidhub speaks "
                         f"{', '.join(app.config['LANGUAGES'])}.")
    app.config["DEFAULT_LOCALE"] = app.config["BABEL_DEFAULT_LOCALE"] = default
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = translation_directories(app)


def check_timezone(name: str) -> None:
    """ConfigError unless `name` is a time zone: every date shown or entered goes through it,
    so an unknown one would fail later, in the middle of a command or a request."""
    from zoneinfo import ZoneInfo

    from bidhub.config import ConfigError, Defaults

    try:
        ZoneInfo(name)
    except (ValueError, LookupError, OSError):  # ZoneInfoNotFoundError is a LookupError
        raise ConfigError(f"BIDHUB_TIMEZONE is {name!r}, which is not a time zone: give one "
                          f"such as {Defaults.TIMEZONE}.") from None


def register_request_logging(app: Flask) -> None:
    from bidhub import logs

    logs.init_app(app)


def register_database(app: Flask) -> None:
    from bidhub import db

    db.init_app(app)


def register_ledger_anchor(app: Flask) -> None:
    from bidhub.services.ledger import ledger_anchor_of_config

    ledger_anchor_of_config(app)


def register_rules(app: Flask) -> None:
    from bidhub.services.rule_sets import load_default_rules

    # Parsed at start so that a broken rule file stops the app with the key and the reason.
    app.extensions["bidhub_default_rules"] = load_default_rules(app.config)


def register_extensions(app: Flask) -> None:
    from bidhub.extensions import babel, csrf, htmx
    from bidhub.web import i18n

    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    i18n.init_app(app)


def register_auth(app: Flask) -> None:
    from bidhub.web import auth

    auth.init_app(app)


def register_templates(app: Flask) -> None:
    from bidhub.web import frame, nav, rendering

    rendering.init_app(app)
    nav.init_app(app)
    frame.init_app(app)


def register_security_headers(app: Flask) -> None:
    from bidhub.web import cookie_session, security

    cookie_session.init_app(app)
    security.init_app(app)


def register_error_pages(app: Flask) -> None:
    from bidhub.web import errors

    errors.init_app(app)


def register_url_converters(app: Flask) -> None:
    from bidhub.web import params

    params.init_app(app)


def register_blueprints(app: Flask) -> None:
    from bidhub.web import (
        accountability,
        accounts,
        admin,
        application_reviews,
        audit_log,
        auth,
        board,
        fairness,
        health,
        imports,
        language,
        manage,
        market,
        notifications,
        profiles,
        reviews,
        round_reviews,
        rules_admin,
        sponsors,
    )

    app.register_blueprint(health.blueprint)
    app.register_blueprint(auth.blueprint)
    app.register_blueprint(language.blueprint)
    app.register_blueprint(market.blueprint)
    app.register_blueprint(manage.blueprint)
    app.register_blueprint(round_reviews.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(rules_admin.blueprint)
    app.register_blueprint(imports.blueprint)
    app.register_blueprint(accountability.blueprint)
    app.register_blueprint(profiles.blueprint)
    app.register_blueprint(notifications.blueprint)
    app.register_blueprint(reviews.blueprint)
    app.register_blueprint(accounts.blueprint)
    app.register_blueprint(board.blueprint)
    app.register_blueprint(sponsors.blueprint)
    app.register_blueprint(fairness.blueprint)
    app.register_blueprint(audit_log.blueprint)
    app.register_blueprint(application_reviews.blueprint)


def register_cli(app: Flask) -> None:
    from bidhub import cli

    cli.init_app(app)


def register_scheduler(app: Flask) -> None:
    from bidhub import scheduler

    scheduler.init_app(app)
