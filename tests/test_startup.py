"""Start-up refuses broken rules with the key and the reason, never silently falling back."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidhub import create_app
from bidhub.services.rule_sets import RuleFileError


def test_a_malformed_rule_file_stops_the_app_with_the_key_and_reason(app_config, tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "default.toml").write_text(
        "[eligibility]\ncapacity_max = 25\ncapacity_target = 30\n", encoding="utf-8")
    with pytest.raises(RuleFileError) as raised:
        create_app({**app_config, "RULES_DIR": str(rules_dir)})
    message = str(raised.value)
    assert "default.toml" in message
    assert "capacity_max" in message


def test_a_rule_file_with_a_syntax_error_names_the_line(app_config, tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "default.toml").write_text("[eligibility]\ncapacity_max = = 40\n",
                                            encoding="utf-8")
    with pytest.raises(RuleFileError, match="line 2"):
        create_app({**app_config, "RULES_DIR": str(rules_dir)})


DEFAULT_TEXT = (Path(__file__).resolve().parents[1] / "rules" / "default.toml").read_text("utf-8")
# The first factor's weight, too small for any contribution to count (rules/README.md).
TINY = DEFAULT_TEXT.replace("weight = 0.35", "weight = 1e-7", 1)


@pytest.mark.parametrize("file_name", ["default.toml", "policy.toml"])
def test_a_rule_file_read_at_start_up_gets_the_checks_new_rules_get(app_config, tmp_path,
                                                                    file_name):
    """The default rule file (or the one configuration names) is the text a new database
    adopts: a weight too small to count stops start-up with its key, as the editor refuses it."""
    assert TINY != DEFAULT_TEXT
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / file_name).write_text(TINY, encoding="utf-8")
    with pytest.raises(RuleFileError) as raised:
        create_app({**app_config, "RULES_DIR": str(rules_dir), "DEFAULT_RULES_FILE": file_name})
    message = str(raised.value)
    assert message.startswith(f"bidhub will not start: the default rule file "
                              f"{rules_dir / file_name} cannot be used: factors[0].weight (line ")
    assert "the weight 1e-7 is too small to count" in message


def test_a_new_database_never_adopts_a_default_text_with_a_weight_too_small(session, clock):
    from sqlalchemy import select

    from bidhub.domain.rules import RuleError
    from bidhub.models import RuleSetVersion
    from bidhub.services.rule_sets import active_rule_set, ensure_active_rule_set

    active_rule_set(session).is_active = False  # as on a database not yet given its rules
    session.commit()
    with pytest.raises(RuleError) as raised:
        ensure_active_rule_set(session, TINY, clock())
    assert [problem.path for problem in raised.value.problems] == ["factors[0].weight"]
    session.rollback()
    assert active_rule_set(session) is None
    assert len(session.scalars(select(RuleSetVersion)).all()) == 1


def test_a_stored_version_with_a_weight_too_small_still_reads_and_starts(app_config, session,
                                                                          clock):
    """Stored before the check: the version keeps its rules, and a database holding it in
    force starts with a valid default file as before."""
    from bidhub.services.rule_sets import adopt_rule_set, parsed

    version = adopt_rule_set(session, None, TINY, "tiny", "stored before the check", clock())
    session.commit()
    assert parsed(version).factors[0].weight == 1e-7
    create_app(app_config)  # the stored version is not the file read at start-up
    assert parsed(session.get(type(version), version.id)).factors[0].weight == 1e-7
