"""Configuration: defaults, the TOML file and RTOFS_* overrides (rtofs_lib.config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtofs_lib import config
from rtofs_lib.errors import ConfigError


def test_defaults_live_under_rtofs_home(tmp_path):
    s = config.load(env={"RTOFS_HOME": str(tmp_path)})
    assert s.spark_master == "local[*]"
    assert s.base_url == config.NOMADS_ROOT


def test_file_settings_are_read(tmp_path):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text('archive = "/lustre/rtofs/archive"\nspark_master = "spark://hub:7077"\n')
    s = config.load(cfg, env={})
    assert s.archive == Path("/lustre/rtofs/archive")
    assert s.spark_master == "spark://hub:7077"


def test_environment_overrides_the_file(tmp_path):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text('spark_master = "spark://hub:7077"\ncrawl_parallel = 4\n')
    s = config.load(cfg, env={"RTOFS_SPARK_MASTER": "local[2]", "RTOFS_CRAWL_PARALLEL": "1"})
    assert (s.spark_master, s.crawl_parallel) == ("local[2]", 1)


def test_rtofs_config_variable_names_the_file(tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text('maps = "/srv/maps"\n')
    assert config.load(env={"RTOFS_CONFIG": str(cfg)}).maps == Path("/srv/maps")


def test_unknown_key_is_named_with_the_known_ones(tmp_path):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text('archiv = "/x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'archiv'.*archive"):
        config.load(cfg, env={})


def test_badly_typed_variable_names_the_variable():
    with pytest.raises(
        ConfigError, match=r"RTOFS_CRAWL_PARALLEL: crawl_parallel must be a whole number, not .two."
    ):
        config.load(env={"RTOFS_CRAWL_PARALLEL": "two"})


def test_broken_toml_names_the_file(tmp_path):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text("archive = \n")
    with pytest.raises(ConfigError, match=r"rtofs\.toml: not valid TOML"):
        config.load(cfg, env={})


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="unset RTOFS_CONFIG"):
        config.load(env={"RTOFS_CONFIG": str(tmp_path / "nope.toml")})
