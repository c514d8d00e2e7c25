"""`aimusicd learn`, model packs at run time, `aimusicd models list|verify|remove` and
`aimusicd calibrate`, through the real command line on real music: ACE-Step 1.5 output and human
music from Debian packages (see tests/support/corpora.py).

Bad input first (seconds: one codec condition, a few short files), then the round trip the issue
asks for (slow): a pack learned on the ACE-Step train+calib prompts catches the test prompts'
tracks under MP3 64 kbps in `aimusicd eval`, while held-out human music stays under 1 % false
positives; thresholds calibrated on one folder hold on another.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.config import load_config
from daemon.config.load import read_thresholds
from daemon.learning.calibrate import Calibration, write_thresholds
from support.corpora import ace_step, package


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str      # what the command printed there, and its log lines


@pytest.fixture
def home(tmp_path, monkeypatch) -> dict:
    """Data, config and cache folders of a user of this test alone."""
    env = {"AIMUSICD_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "AIMUSICD_CACHE": str(tmp_path / "cache"), "AIMUSICD_PRESETS": ""}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def cli(capsys, caplog):
    """The real command line, in this process (one interpreter start for the whole file)."""
    from daemon.cli.main import main

    def run(env: dict, *args: str) -> Ran:
        assert all(os.environ[k] == v for k, v in env.items())
        capsys.readouterr()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err + "".join(f"{r.levelname} {r.getMessage()}\n" for r in caplog.records))
    return run


def excerpts(files: list[Path], folder: Path, seconds: float, per_file: int) -> Path:
    """Cut real music into FLAC excerpts (the unit false positives are counted in)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        with sf.SoundFile(str(f)) as fh:
            total = fh.frames / fh.samplerate
            count = max(1, min(per_file, int(total // seconds)))
            for k, start in enumerate(np.linspace(0, max(total - seconds, 0), count)):
                fh.seek(int(start * fh.samplerate))
                data = fh.read(int(seconds * fh.samplerate), dtype="float32", always_2d=True)
                sf.write(folder / f"{f.stem}_{k}.flac", data, fh.samplerate)
    return folder


def copies(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """Four ACE-Step tracks and four 20-s human excerpts: enough to learn, fast."""
    base = tmp_path_factory.mktemp("small")
    return {"ai": copies(ace_step("train")[:4], base / "ai"),
            "human": excerpts(package("xmoto-data")[:4], base / "human", 20.0, 1)}


def learn(cli, env: dict, small: dict, *extra: str) -> Ran:
    return cli(env, "learn", "--ai", str(small["ai"]), "--human", str(small["human"]), "--name", "ace",
               "--conditions", "as-given", *extra)


def packs_dir(env: dict) -> Path:
    return Path(env["AIMUSICD_DATA"]) / "packs"


def leftovers(env: dict) -> list[str]:
    return sorted(p.name for p in packs_dir(env).glob(".*")) if packs_dir(env).is_dir() else []


def test_learn_writes_a_verified_pack_that_list_verify_and_remove_handle(home, small, cli):
    proc = learn(cli, home, small, "--json")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    folder = packs_dir(home) / "ace"
    assert meta["schema"] == "aimusicd.pack/2" and meta["name"] == "ace"
    assert meta["pieces"] == ["spectrum", "embedding", "images"] and meta["combine"] in ("joint", "max")
    assert {c["label"] for c in meta["comparison"]} == {"joint", "max", "spectrum", "embedding", "images"}
    assert meta["examples"]["ai"]["files"] == 4 and meta["examples"]["human"]["files"] == 4
    assert [m["condition"] for m in meta["metrics"]] == ["as-given"] and 0.5 <= meta["threshold"] < 1
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "SHA256SUMS", "model.json", "pack.json"]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True).returncode == 0
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| as-given |" in card and "## How the evidence combines (measured)" in card and "(kept)" in card

    listed = cli(home, "models", "list")
    line = next(l for l in listed.stdout.splitlines() if l.startswith("pack:ace"))
    sums = dict(reversed(l.split("  ")) for l in (folder / "SHA256SUMS").read_text().splitlines())
    assert " ok " in line and f"sha256 {sums['model.json'][:16]}" in line and "as-given:" in line
    assert "pack:ace" in cli(home, "models", "verify").stdout

    again = learn(cli, home, small)
    assert again.returncode == 2 and "pack ace exists" in again.stderr and "--force" in again.stderr
    # a threshold calibrated for a pack is dropped when the pack is replaced or removed: it was set
    # for a model that is gone
    thresholds = Path(home["XDG_CONFIG_HOME"]) / "aimusicd" / "thresholds.toml"
    calibrated = Calibration(0.93, None, {"ace": 0.61, "ace-step": 0.97}, [], 320, 160.0)
    write_thresholds(thresholds, calibrated, 0.01, [small["human"]], ["as-given"])
    forced = learn(cli, home, small, "--force")
    assert forced.returncode == 0 and "8 files, 8 already measured" in forced.stderr    # the feature cache
    assert "calibrated threshold of the replaced pack ace was dropped" in forced.stderr
    assert read_thresholds(thresholds)[1] == {"ace-step": 0.97}
    assert leftovers(home) == []

    write_thresholds(thresholds, calibrated, 0.01, [small["human"]], ["as-given"])
    removed = cli(home, "models", "remove", "ace")
    assert removed.returncode == 0 and not folder.exists()
    assert "its calibrated threshold was dropped" in removed.stdout
    assert read_thresholds(thresholds)[1] == {"ace-step": 0.97} and load_config().engines.ai_threshold == 0.93
    missing = cli(home, "models", "remove", "ace")
    assert missing.returncode == 2 and "no pack named ace" in missing.stderr


def test_a_thresholds_file_that_cannot_be_written_is_one_line_and_the_pack_stays(home, small, cli, tmpfs):
    config = tmpfs("config", 256)                  # the home's config folder, on its own filesystem
    assert learn(cli, home, small).returncode == 0
    thresholds = config / "aimusicd" / "thresholds.toml"
    write_thresholds(thresholds, Calibration(0.93, None, {"ace": 0.61}, [], 320, 160.0), 0.01,
                     [small["human"]], ["as-given"])
    subprocess.run(["mount", "-o", "remount,ro", str(config)], check=True)
    for args in (("models", "remove", "ace"), ("learn", "--ai", str(small["ai"]), "--human", str(small["human"]),
                                               "--name", "ace", "--conditions", "as-given", "--force")):
        ran = cli(home, *args)
        error = [line for line in ran.stderr.splitlines() if "error" in line]
        assert ran.returncode == 1 and error == [f"aimusicd: error: {thresholds}: cannot be written "
                                                 "(Read-only file system); it is unchanged"], ran.stderr
        assert (packs_dir(home) / "ace" / "pack.json").is_file() and read_thresholds(thresholds)[1] == {"ace": 0.61}


def test_bad_input_is_one_clear_line_and_nothing_is_half_written(home, small, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli(home, "learn", "--ai", str(empty), "--human", str(small["human"]), "--name", "x")
    assert out.returncode == 2 and f"{empty}: no audio files found" in out.stderr

    tiny = copies(sorted(small["ai"].iterdir())[:2], tmp_path / "tiny")
    out = cli(home, "learn", "--ai", str(tiny), "--human", str(small["human"]), "--name", "x",
              "--conditions", "as-given")
    assert out.returncode == 2 and "--ai: 2 distinct readable audio files; learn needs at least 3" in out.stderr

    same = copies([sorted(small["human"].iterdir())[0]], tmp_path / "ai-with-a-human-file")
    copies(sorted(small["ai"].iterdir())[:3], same)
    out = cli(home, "learn", "--ai", str(same), "--human", str(small["human"]), "--name", "x")
    assert out.returncode == 2 and "given as both AI and human music" in out.stderr

    out = cli(home, "learn", "--ai", str(small["ai"]), "--name", "x",
              "--human-reference", str(tmp_path / "absent.json"))
    assert out.returncode == 2 and "pass --human DIR" in out.stderr

    out = cli(home, "learn", "--ai", str(small["ai"]), "--human", str(small["human"]), "--name", "../x")
    assert out.returncode == 2 and "pack name '../x'" in out.stderr

    broken = copies(sorted(small["ai"].iterdir()), tmp_path / "ai-and-a-broken-file")
    (broken / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    out = cli(home, "learn", "--ai", str(broken), "--human", str(small["human"]), "--name", "x",
              "--conditions", "as-given")
    assert out.returncode == 0, out.stderr
    assert "skipped (unreadable):" in out.stderr and "broken.wav" in out.stderr
    assert "(1 unreadable files skipped)" in out.stdout
    assert json.loads((packs_dir(home) / "x" / "pack.json").read_text())["skipped_files"] == 1

    out = cli(home, "calibrate", "--human", str(small["human"]), "--fpr", "0.01", "--conditions", "as-given")
    assert out.returncode == 2
    assert "calibrate --fpr 0.01 needs at least 299 excerpts of human music" in out.stderr
    assert "gave 4" in out.stderr
    assert not (Path(home["XDG_CONFIG_HOME"]) / "aimusicd" / "thresholds.toml").exists()
    assert leftovers(home) == [] and sorted(p.name for p in packs_dir(home).iterdir()) == ["x"]


def test_a_learned_pack_from_a_reference_alone(home, small, tmp_path, cli):
    """Without --human, the packaged human reference (here a small one made from real music)."""
    from daemon.learning.features import measure, sources_of

    measured, _ = measure(sources_of([], sorted(small["human"].iterdir())), ["as-given"], tmp_path / "cache", log=print)
    spectra = np.vstack([m.spectrum for m in measured]).astype(float)
    ref = tmp_path / "human_reference.json"
    ref.write_text(json.dumps({"spectrum": {"mean": spectra.mean(0).tolist(), "std": (spectra.std(0) + 0.5).tolist(),
                                            "n": len(spectra)}}))
    out = cli(home, "learn", "--ai", str(small["ai"]), "--name", "ref", "--human-reference", str(ref),
              "--conditions", "as-given", "--json")
    assert out.returncode == 0, out.stderr
    meta = json.loads(out.stdout)
    assert meta["human_source"] == "reference" and meta["metrics"][0]["n_human"] == 400


def test_a_damaged_or_newer_pack_is_refused_in_one_line_and_analysis_goes_on(home, small, cli):
    assert learn(cli, home, small).returncode == 0
    for name in ("bad", "newer"):
        shutil.copytree(packs_dir(home) / "ace", packs_dir(home) / name)
    bad = packs_dir(home) / "bad"
    model = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**model, "threshold": 0.01}))
    newer = packs_dir(home) / "newer"
    meta = json.loads((newer / "pack.json").read_text())
    for key, value in (("schema", "aimusicd.pack/3"), ("name", "newer")):
        meta[key] = value
    (newer / "pack.json").write_text(json.dumps(meta))
    (newer / "model.json").write_text(json.dumps({**model, "name": "newer"}))
    subprocess.run("sha256sum pack.json model.json MODEL_CARD.md > SHA256SUMS", shell=True, cwd=newer, check=True)

    verify = cli(home, "models", "verify")
    assert verify.returncode == 1
    assert "pack bad: model.json fails its sha256 check" in verify.stdout
    assert "pack newer: written by aimusicd" in verify.stdout and "upgrade to use it" in verify.stdout
    track = sorted(small["ai"].iterdir())[0]
    scan = cli(home, "scan", "--mode", "cnn", "--json", "--no-report", str(track))
    assert scan.returncode == 0, scan.stderr
    refused = [l for l in scan.stderr.splitlines() if "refused" in l]
    assert len(refused) == 2 and all("running without it" in l for l in refused)
    names = [m["name"] for m in json.loads(scan.stdout)["reports"][0]["engines"]["fingerprint"]["matches"]]
    assert "ace" in names and "bad" not in names and "newer" not in names


@pytest.mark.slow
@pytest.mark.weights
@pytest.mark.timeout(1800)
def test_a_pack_learned_with_demucs_scores_only_where_demucs_ran(home, small, cli, real_weights, tmp_path):
    """--demucs adds the Demucs engine's stem features: the pack reads them, so `scan --mode cnn`
    (no Demucs) leaves it out and `--mode full` scores it."""
    Path(home["AIMUSICD_CACHE"]).mkdir(parents=True, exist_ok=True)
    (Path(home["AIMUSICD_CACHE"]) / "htdemucs").symlink_to(real_weights.parent)
    preset = tmp_path / "one-excerpt.toml"
    preset.write_text("[engines]\ndemucs_excerpts = 1\n")     # one separated excerpt a file: minutes, not tens
    out = learn(cli, home, small, "--demucs", "--preset", str(preset), "--json")
    assert out.returncode == 0, out.stderr
    meta = json.loads(out.stdout)
    assert meta["pieces"] == ["spectrum", "embedding", "images", "demucs"] and meta["needs_demucs"]
    assert "demucs" in {c["label"] for c in meta["comparison"]}
    again = learn(cli, home, small, "--demucs", "--preset", str(preset), "--force")
    assert again.returncode == 0 and "Demucs features: 8 files already measured" in again.stderr

    track = str(sorted(small["ai"].iterdir())[0])
    fast = json.loads(cli(home, "scan", "--mode", "cnn", "--json", "--no-report", track).stdout)
    assert "ace" not in [m["name"] for m in fast["reports"][0]["engines"]["fingerprint"]["matches"]]
    full = cli(home, "scan", "--mode", "full", "--preset", str(preset), "--json", "--no-report", track)
    assert full.returncode == 0, full.stderr
    matches = json.loads(full.stdout)["reports"][0]["engines"]["fingerprint"]["matches"]
    assert any(m["name"] == "ace" and m["pack"] for m in matches), matches

    no_human = cli(home, "learn", "--ai", str(small["ai"]), "--name", "x", "--demucs")
    assert no_human.returncode == 2 and "--demucs needs --human DIR" in no_human.stderr


def _row(rows: list[dict], condition: str, engine: str) -> dict:
    return next(r for r in rows if r["condition"] == condition and r["engine"] == engine)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, Path]:
    """ACE-Step train+calib prompts to learn from, its test prompts to catch; human music of calib-
    split packages to learn against and of held-out test-split packages (20-s excerpts) to judge."""
    base = tmp_path_factory.mktemp("real")
    return {"ai_learn": copies(ace_step("train", "calib"), base / "ace-learn"),
            "ai_test": copies(ace_step("test"), base / "ace-test"),
            "human_learn": copies(package("lincity-ng-data") + package("frozen-bubble-data")
                                  + package("extremetuxracer-data"), base / "human-learn"),
            "held_out": excerpts(package("xmoto-data") + package("flare-game"), base / "human-test", 20.0, 10)}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_pack_learned_on_ace_step_catches_its_unseen_prompts_under_mp3_64(home, cli, real, capsys):
    assert len(list(real["held_out"].iterdir())) >= 100
    learned = cli(home, "learn", "--ai", str(real["ai_learn"]), "--human", str(real["human_learn"]),
                  "--name", "ace-step", "--conditions", "as-given", "mp3-64", "--json")
    assert learned.returncode == 0, learned.stderr
    with capsys.disabled():
        print("\nlearn (cross-validated):", *json.loads(learned.stdout)["metrics"], sep="\n")

    evaluated = cli(home, "eval", "--human", str(real["held_out"]), "--ai", str(real["ai_test"]),
                    "--conditions", "mp3-64", "--engines", "cnn", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    rows = json.loads(evaluated.stdout)
    with capsys.disabled():
        print("eval on the test prompts and held-out packages:")
        for r in rows:
            print({k: r[k] for k in ("condition", "engine", "n_ai", "n_human", "ai_recall", "human_fp_rate", "auc")})
    fast_pass = _row(rows, "mp3-64", "cnn+img")           # the verdicts the daemon gives, the pack's included
    assert fast_pass["n_ai"] == len(list(real["ai_test"].iterdir())) and fast_pass["n_human"] >= 100
    assert fast_pass["ai_recall"] >= 0.8 and fast_pass["human_fp_rate"] < 0.01

    caught = cli(home, "scan", "--mode", "cnn", "--no-report", str(sorted(real["ai_test"].iterdir())[0]))
    assert caught.returncode == 0 and "matched: ace-step p=" in caught.stdout


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> dict[str, Path]:
    """One catalogue in two halves: the tracks of four calibration-split packages (orchestral,
    rock, electronic and chiptune), every other track to each half, by package. Calibration reads
    whole tracks (it cuts its own excerpts); the other half is judged in 20-s excerpts."""
    base = tmp_path_factory.mktemp("catalogue")
    halves: tuple[list[Path], list[Path]] = ([], [])
    for name in ("widelands-data", "lincity-ng-data", "frozen-bubble-data", "extremetuxracer-data"):
        for k, track in enumerate(sorted(package(name))):
            halves[k % 2].append(track)
    return {"calibrate": copies(halves[0], base / "calibrate"),
            "judge": excerpts(halves[1], base / "judge", 20.0, 10),
            "ai": copies(ace_step("test")[:3], base / "ai")}     # eval wants both sides; only humans count here


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_thresholds_calibrated_on_one_folder_hold_on_another(home, cli, catalogue, capsys):
    """Thresholds calibrated on half a catalogue hold the rate on its other half, tracks never
    shared, through the real `calibrate` and `eval` commands and the config they write."""
    calibrated = cli(home, "calibrate", "--human", str(catalogue["calibrate"]), "--fpr", "0.05",
                     "--conditions", "as-given", "--json")
    assert calibrated.returncode == 0, calibrated.stderr
    written = json.loads(calibrated.stdout)
    assert written["excerpts"] >= 59 and Path(written["path"]).is_file()
    assert written["path"] in cli(home, "config", "list").stdout
    holds = cli(home, "eval", "--human", str(catalogue["judge"]), "--ai", str(catalogue["ai"]),
                "--conditions", "as-given", "--engines", "cnn", "--json")
    assert holds.returncode == 0, holds.stderr
    row = _row(json.loads(holds.stdout), "as-given", "cnn+img")
    with capsys.disabled():
        print(f"\ncalibrated on {written['excerpts']} excerpts: ai_threshold {written['ai_threshold']}, "
              f"{written['fingerprints']}; held-out half: {row['n_human']} excerpts, "
              f"human false positives {row['human_fp_rate']:.3f}")
    assert row["n_human"] >= 100 and row["human_fp_rate"] <= 0.05, row


def test_calibrated_thresholds_are_merged_under_presets_and_config_list_names_them(home, cli, tmp_path):
    from daemon.config import load_config
    from daemon.errors import ConfigError
    from daemon.learning.calibrate import Calibration, write_thresholds

    assert "thresholds: shipped with the models" in cli(home, "config", "list").stdout
    cal = Calibration(0.93, None, {"ace-step": 0.97}, [], 320, 160.0)
    write_thresholds(Path(home["XDG_CONFIG_HOME"]) / "aimusicd" / "thresholds.toml", cal, 0.01, [tmp_path], ["as-given"])
    cfg = load_config()
    assert cfg.engines.ai_threshold == 0.93 and cfg.fingerprint_thresholds == {"ace-step": 0.97}
    listed = cli(home, "config", "list").stdout
    assert "thresholds.toml (calibrated" in listed and "on 320 excerpts, false-positive rate 0.01)" in listed
    assert "ai_threshold              0.93" in listed and "fingerprint ace-step" in listed
    preset = tmp_path / "mine.toml"
    preset.write_text("[engines]\nai_threshold = 0.99\n")
    assert load_config(str(preset)).engines.ai_threshold == 0.99          # a preset's own value wins
    under = cli(home, "config", "list", "--preset", str(preset)).stdout
    ai = next(l for l in under.splitlines() if l.strip().startswith("ai_threshold"))
    assert "0.99" in ai and f"preset {preset} (over the calibrated value)" in ai, under
    assert f"thresholds: ai_threshold from preset {preset}; the rest: " in under
    assert "thresholds.toml (calibrated" in next(l for l in under.splitlines() if "fingerprint ace-step " in l)
    (Path(home["XDG_CONFIG_HOME"]) / "aimusicd" / "thresholds.toml").write_text("[fingerprints]\nx = 3\n")
    with pytest.raises(ConfigError, match="x = 3 is not a probability"):
        load_config()


def test_a_format_1_pack_still_loads_and_long_names_keep_models_list_aligned(home, cli):
    """A pack written before the other pieces of evidence (fingerprint.json alone) loads as a model
    over the spectrum; a long pack name widens the name column instead of pushing the rest."""
    from daemon.engines.fingerprint import GENERATORS_DIR
    from daemon.engines.packs import load_pack

    name = "a-rather-long-pack-name-for-a-generator-family-v2"
    folder = packs_dir(home) / name
    folder.mkdir(parents=True)
    fp = json.loads(next(GENERATORS_DIR.glob("*.json")).read_text())
    (folder / "fingerprint.json").write_text(json.dumps({**fp, "name": name}))
    (folder / "pack.json").write_text(json.dumps({"schema": "aimusicd.pack/1", "name": name,
                                                  "aimusicd_version": "0.1.0", "metrics": []}))
    subprocess.run("sha256sum pack.json fingerprint.json > SHA256SUMS", shell=True, cwd=folder, check=True)
    pack = load_pack(folder)
    assert pack.model.pieces == ("spectrum",) and pack.model_file == "fingerprint.json"
    listed = cli(home, "models", "list").stdout.splitlines()
    columns = {l.index(" ok ") if " ok " in l else l.index(" MISSING ") for l in listed
               if " ok " in l or " MISSING " in l}
    assert len(columns) == 1, listed
    assert any(l.startswith(f"pack:{name}  ok ") and "reads spectrum" in l for l in listed), listed
