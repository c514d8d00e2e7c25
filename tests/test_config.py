"""Config: packaged defaults, presets merged over them, one clear error per bad key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import available_presets, load_config, to_toml
from daemon.config.load import config_sections, packaged_defaults
from daemon.errors import ConfigError

DEFAULTS_TEXT = (Path(__file__).parents[1] / "daemon" / "config" / "defaults.toml").read_text()


def test_packaged_defaults_are_the_one_source_of_every_default():
    """defaults.toml names every key of the schema (the optional ones only in a comment), with a
    value the schema accepts, and the schema holds no default of its own beside it."""
    data = packaged_defaults()
    cfg = load_config()
    sections = config_sections()
    assert set(data) == set(sections)
    for name, section_type in sections.items():
        fields = {f.name: f for f in dataclasses.fields(section_type)}
        optional = {k for k, f in fields.items() if f.default is None}
        assert set(data[name]) == set(fields) - optional, name
        for key, field in fields.items():
            assert field.default_factory is dataclasses.MISSING, f"[{name}].{key}"
            if key in optional:
                assert getattr(getattr(cfg, name), key) is None, f"[{name}].{key}"
                assert f"# {key} = " in DEFAULTS_TEXT, f"[{name}].{key} is not described"
            else:
                assert field.default is dataclasses.MISSING, f"[{name}].{key} has a schema default"
                assert getattr(getattr(cfg, name), key) == data[name][key], f"[{name}].{key}"


def test_defaults_load():
    cfg = load_config()
    assert cfg.osc.port == 9431 and cfg.osc.reply_port == 9432
    assert cfg.engines.mode == "auto" and cfg.watch.mode == "full"
    assert cfg.osc.allowed_senders == ["127.0.0.1", "::1"]
    assert cfg.engines.ai_threshold is None  # unset: the models' calibrated value


def test_preset_merges_over_defaults_key_by_key(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[osc]\nport = 9999\n[watch]\nfolders = ["/tmp/x"]\n')
    cfg = load_config(str(p))
    assert cfg.osc.port == 9999
    assert cfg.osc.reply_port == 9432            # untouched keys keep the default
    assert cfg.watch.folders == ["/tmp/x"]       # lists replace, they do not append
    assert cfg.source == str(p)


@pytest.mark.parametrize("text, needle", [
    ("[osc]\nprot = 1\n", "unknown key [osc].prot; allowed: enabled, host, port"),
    ("[oscc]\nport = 1\n", "unknown section [oscc]"),
    ("[osc]\nport = 70000\n", "[osc.port] = 70000 is invalid; expected a whole number from 0 to 65535"),
    ("[engines]\nmode = \"fast\"\n", "expected one of 'auto', 'full', 'cnn', 'demucs'"),
    ("[engines]\ndemucs_device = \"gpu\"\n", "expected one of 'auto', 'cpu', 'cuda', 'mps'"),
    ("[watch]\npolling = \"yes\"\n", "expected true or false"),
    ("[watch]\nfolders = \"/music\"\n", "expected a list of strings"),
    ("[engines]\nai_threshold = 0.2\nhuman_threshold = 0.5\n", "must be below ai_threshold"),
    ("[osc\nport = 1\n", "invalid TOML"),
])
def test_bad_preset_gives_one_clear_error_naming_file_and_key(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(p))
    msg = str(err.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_unknown_preset_name_lists_the_available_ones():
    with pytest.raises(ConfigError, match="not found.*default"):
        load_config("no-such-preset")


def test_every_shipped_preset_loads_and_validates():
    presets = available_presets()
    expected = {"default", "reaper-bounces", "ableton-exports", "bitwig-exports", "logic-bounces",
                "submissions-inbox", "live-monitor"}
    assert expected <= set(presets)
    for name in presets:
        cfg = load_config(name)
        assert to_toml(cfg)


def test_submissions_inbox_pins_the_strictest_ai_threshold_calibration_can_pick():
    from daemon.training.calibrate import AI_THRESHOLD_RANGE

    assert load_config("submissions-inbox").engines.ai_threshold == AI_THRESHOLD_RANGE[1]


def test_config_check_prints_the_merged_result_and_rejects_bad_presets(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "daemon", "config", "check", "submissions-inbox"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "polling = true" in ok.stdout and "[reports]" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[live]\nhop_s = -1\n")
    out = subprocess.run([sys.executable, "-m", "daemon", "config", "check", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "[live.hop_s]" in out.stderr


def test_reports_folder_keeps_watch_sub_folders_apart(tmp_path):
    from daemon.config import reports_path_for

    watch, reports = tmp_path / "inbox", tmp_path / "reports"
    cfg = load_config(overrides={"watch": {"folders": [str(watch)]}, "reports": {"dir": str(reports)}})
    a = reports_path_for(cfg, watch / "alice" / "mix.wav")
    b = reports_path_for(cfg, watch / "bob" / "mix.wav")
    assert a == reports / "alice" / "mix.wav.aimusic.json" and a != b
    assert reports_path_for(cfg, tmp_path / "elsewhere" / "x.wav") == reports / "x.wav.aimusic.json"
    plain = load_config(overrides={"watch": {"folders": [str(watch)]}})
    assert reports_path_for(plain, watch / "mix.wav") == watch / "mix.wav.aimusic.json"
