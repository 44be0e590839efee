"""The app's Jinja environment: template globals whose keys an import compares as one set."""

from __future__ import annotations

from bidhub import create_app
from bidhub.web.templating import Environment, TemplateGlobals


def test_keys_are_every_map_s_keys_and_follow_later_globals():
    shared = {"url_for": 1, "keep": 2}
    template_own = {"local": 3}
    found = TemplateGlobals(template_own, shared)
    assert found.keys() == {"url_for", "keep", "local"}
    shared["added_later"] = 4
    assert found.keys() == {"url_for", "keep", "local", "added_later"}
    assert found["added_later"] == 4 and "added_later" in found


def test_the_app_renders_with_this_environment(app):
    assert isinstance(app.jinja_env, Environment)
    assert isinstance(app.jinja_env.get_template("_macros.html").globals, TemplateGlobals)


def test_an_import_reuses_the_module_unless_the_context_brings_new_globals(app):
    environment = app.jinja_env
    macros = environment.get_template("_macros.html")
    page = environment.get_template("manage/round.html")
    with app.test_request_context("/"):
        context = page.new_context({"anything": 1})
        # The rendering context's globals are the environment's: the kept module serves.
        assert macros._get_default_module(context) is macros._get_default_module(context)
        widened = page.new_context({}, shared=False)
        widened.globals_keys = context.globals_keys | {"only_in_this_context"}
        widened.parent["only_in_this_context"] = "seen"
        # A global the imported template lacks makes a module of its own that sees it.
        module = macros._get_default_module(widened)
        assert module is not macros._get_default_module(context)


def test_a_global_added_after_a_template_loaded_is_seen_by_it(app_config):
    app = create_app(app_config)
    template = app.jinja_env.from_string("{{ late_global }}")
    app.jinja_env.globals["late_global"] = "late"
    with app.test_request_context("/"):
        assert template.render() == "late"


def test_a_radio_group_is_a_fieldset_named_by_its_legend(app):
    """A radio group is one question: a fieldset whose legend asks it (a label names one
    control, and a list of radios is none); refused, the group is marked invalid and its error
    is what describes it."""
    import re

    from bidhub.web.forms import DecisionForm

    with app.test_request_context("/", method="POST", data={"kind": ""}):
        form = DecisionForm(meta={"csrf": False})
        form.bid_id.choices = []
        field = app.jinja_env.get_template("_macros.html").module.field
        fresh = str(field(form.kind))
        assert form.validate() is False and form.kind.errors
        refused = str(field(form.kind))
    for markup in (fresh, refused):
        assert re.search(r'<fieldset class="field[^"]*" id="kind"', markup)
        assert "<legend>Decision</legend>" in markup and "<label for=" not in markup
        assert markup.count('type="radio"') == len(form.kind.choices)
        assert markup.count("<label>") == len(form.kind.choices)  # each radio inside its label
    assert "aria-invalid" not in fresh
    assert 'aria-invalid="true" aria-describedby="kind-error"' in refused
    error = re.search(r'<p class="error" id="kind-error">([^<]+)</p>', refused)
    assert error and error.group(1) == form.kind.errors[0]
