"""sovra.toml: the minimisation rules per jurisdiction and purpose, and their errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sovra.config import Config, render_default_config
from sovra.errors import BadRequest, ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sovra.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_config_has_a_billing_rule_over_the_base_rule(tmp_path: Path) -> None:
    config = Config.load(_write(tmp_path, render_default_config("sovra.test/log", ["PL", "VN"])))
    pl = config.jurisdiction("PL")
    assert pl.rules_for(None) == {
        "email": "keep",
        "phone": "keep",
        "pl_pesel": "tokenize",
        "iban": "redact",
    }
    assert pl.rules_for("billing") == {**pl.rules_for(None), "iban": "seal"}
    assert pl.rules_for("customer-support") == pl.rules_for(None)
    with pytest.raises(BadRequest, match="not 'marketing'"):
        pl.rules_for("marketing")
    assert config.jurisdiction("VN").rules_for("billing") == {}


# The default PL section without its billing rule, so each case adds its own.
BASE = re.sub(
    r"\n\[jurisdictions\.PL\.minimisation_for\.billing\]\n#[^\n]*\n[^\n]*\n",
    "\n",
    render_default_config("sovra.test/log", ["PL"]),
)

# name -> (text appended to the default config, message)
BAD = {
    "unknown-purpose": (
        '\n[jurisdictions.PL.minimisation_for.marketing]\nemail = "redact"\n',
        "'marketing' is not one of PL's purposes",
    ),
    "unknown-action": (
        '\n[jurisdictions.PL.minimisation_for.billing]\nemail = "shred"\n',
        "[jurisdictions.PL.minimisation_for.billing] email = 'shred'",
    ),
    "not-a-table": (
        "\n[jurisdictions.PL.minimisation_for]\nbilling = 3\n",
        "must be a table of kind = action",
    ),
}


@pytest.mark.parametrize(("extra", "message"), BAD.values(), ids=BAD.keys())
def test_bad_purpose_rules_name_the_setting(tmp_path: Path, extra: str, message: str) -> None:
    text = (
        BASE.replace("[jurisdictions.PL.minimisation_for.billing]\n", "[unused]\n")
        if ("billing]" in extra)
        else BASE
    )
    with pytest.raises(ConfigError) as info:
        Config.load(_write(tmp_path, text + extra))
    assert message in info.value.message


def test_log_publication_defaults_and_settings(tmp_path: Path) -> None:
    text = render_default_config("sovra.test/log", ["PL"])
    config = Config.load(_write(tmp_path, text))
    assert (config.log_publish_every_s, config.log_publish_after_batch) == (1.0, False)
    changed = text.replace("publish_every_s = 1\n", "publish_every_s = 0.5\n").replace(
        "publish_after_batch = false", "publish_after_batch = true"
    )
    config = Config.load(_write(tmp_path, changed))
    assert (config.log_publish_every_s, config.log_publish_after_batch) == (0.5, True)
    head, _, tail = text.partition("\n[log]\n")
    without = head + "\n" + tail[tail.index("\n[") :]
    assert "[log]" not in without
    config = Config.load(_write(tmp_path, without))
    assert (config.log_publish_every_s, config.log_publish_after_batch) == (1.0, False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("publish_every_s = 0", "publish_every_s must be seconds in (0, 86400], got 0"),
        ("publish_every_s = -3", "publish_every_s must be seconds"),
        ("publish_every_s = 86401", "publish_every_s must be seconds"),
        ('publish_every_s = "10"', "publish_every_s must be seconds"),
        ("publish_every_s = true", "publish_every_s must be seconds"),
        ('publish_after_batch = "yes"', "publish_after_batch must be true or false"),
        ("publish_after_batch = 1", "publish_after_batch must be true or false"),
        ("publish_every = 10", "[log] has unknown key(s) publish_every"),
    ],
)
def test_bad_log_settings_name_the_setting(tmp_path: Path, line: str, message: str) -> None:
    text = render_default_config("sovra.test/log", ["PL"]).replace("[log]\n", f"[log]\n{line}\n", 1)
    text = text.replace("publish_every_s = 1\n", "", 1) if "every_s" in line else text
    text = text.replace("publish_after_batch = false\n", "", 1) if "after" in line else text
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.load(_write(tmp_path, text))


def test_small_blob_threshold_default_setting_and_absence(tmp_path: Path) -> None:
    text = render_default_config("sovra.test/log", ["PL"])
    assert Config.load(_write(tmp_path, text)).small_blob_bytes == 65536
    changed = text.replace("small_blob_bytes = 65536", "small_blob_bytes = 4096")
    assert Config.load(_write(tmp_path, changed)).small_blob_bytes == 4096
    # A sovra.toml written before the setting existed loads with the default.
    older = re.sub(r"small_blob_bytes = 65536[^\n]*\n", "", text)
    assert "small_blob_bytes" not in older
    assert Config.load(_write(tmp_path, older)).small_blob_bytes == 65536


@pytest.mark.parametrize("value", ["0", "-1", '"64k"', "true", "1.5"])
def test_bad_small_blob_threshold_names_the_setting(tmp_path: Path, value: str) -> None:
    text = render_default_config("sovra.test/log", ["PL"])
    text = text.replace("small_blob_bytes = 65536", f"small_blob_bytes = {value}")
    with pytest.raises(ConfigError, match="small_blob_bytes must be a positive integer"):
        Config.load(_write(tmp_path, text))
