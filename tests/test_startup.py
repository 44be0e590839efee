"""Start-up refuses broken rules with the key and the reason, never silently falling back."""

from __future__ import annotations

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
