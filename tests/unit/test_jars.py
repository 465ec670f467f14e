import pytest

from perflake import jars
from perflake.config import load_config


def test_resolution_is_skipped_while_the_poms_are_unchanged(monkeypatch):
    config = load_config("local", {})
    assert jars.is_resolved(config), "run `make setup` first"
    monkeypatch.setattr(jars.subprocess, "run", lambda *a, **k: pytest.fail("Maven ran although nothing changed"))
    assert jars.resolve_jars(config) is False


def test_a_changed_pom_is_resolved_again(monkeypatch):
    config = load_config("local", {})
    monkeypatch.setattr(jars, "poms_digest", lambda _config: "a different pom")
    assert not jars.is_resolved(config)


def test_missing_maven_says_what_to_install(monkeypatch, tmp_path):
    config = load_config("local", {"PERFLAKE__PATHS__JARS_DIR": str(tmp_path)})
    monkeypatch.setattr(jars.shutil, "which", lambda name: None)
    with pytest.raises(jars.JarsError, match=r"Maven \(mvn\) is not installed: install it"):
        jars.resolve_jars(config)


def test_missing_jars_say_how_to_get_them(tmp_path):
    config = load_config("local", {"PERFLAKE__PATHS__JARS_DIR": str(tmp_path)})
    with pytest.raises(jars.JarsError, match=r"no spark jars in .*: run `make setup`"):
        jars.component_jars(config, "spark")
