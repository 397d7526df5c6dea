"""A small local ABR ladder made with ffmpeg: HLS (fMP4) for hls.js, DASH for dash.js, and
one progressive MP4 for a bare <video>.

Media is generated at setup or test time into a directory outside git, never committed. The
ladder is tiny on purpose (a few seconds, low resolutions) so that a real-browser test of
rebuffers and downshifts stays within the test budget. A stamp file records the recipe, so a
second call with the same recipe reuses what is there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path


class LadderError(RuntimeError):
    """ffmpeg is missing or could not make the ladder."""


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder."""

    name: str
    width: int
    height: int
    kbps: int


@dataclass(frozen=True)
class LadderSpec:
    """What to make: renditions, duration and segment length."""

    renditions: tuple[Rendition, ...] = (
        Rendition("low", 192, 108, 150),
        Rendition("mid", 320, 180, 400),
        Rendition("high", 640, 360, 1000),
    )
    seconds: int = 12
    segment_seconds: int = 1
    fps: int = 24
    recipe: int = field(default=3)  # bump when the ffmpeg arguments change


@dataclass(frozen=True)
class Ladder:
    """Where the made ladder is."""

    root: Path
    spec: LadderSpec

    @property
    def hls_master(self) -> Path:
        """The HLS multivariant playlist."""
        return self.root / "hls" / "master.m3u8"

    @property
    def dash_manifest(self) -> Path:
        """The DASH MPD."""
        return self.root / "dash" / "manifest.mpd"

    @property
    def progressive(self) -> Path:
        """One progressive MP4 (the middle rendition), for a bare <video>."""
        return self.root / "plain.mp4"


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise LadderError("ffmpeg not found: install the Debian package (make setup does)")
    return path


def _encode_args(spec: LadderSpec) -> list[str]:
    # One synthetic source, split per rendition; closed GOPs on segment boundaries so that
    # every rendition switches cleanly at every segment. Constant-ish bitrate (maxrate and a
    # small VBV buffer) so the declared bandwidth is what a throttled link really carries.
    n = len(spec.renditions)
    gop = spec.fps * spec.segment_seconds
    splits = "".join(f"[v{i}]" for i in range(n))
    scales = ";".join(
        f"[v{i}]scale={r.width}:{r.height}[o{i}]" for i, r in enumerate(spec.renditions)
    )
    args = [
        _ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i",
        f"testsrc2=size=640x360:rate={spec.fps}:duration={spec.seconds}",
        "-filter_complex", f"[0:v]split={n}{splits};{scales}",
    ]  # fmt: skip
    for i, r in enumerate(spec.renditions):
        args += [
            "-map", f"[o{i}]",
            f"-c:v:{i}", "libx264", f"-b:v:{i}", f"{r.kbps}k",
            f"-maxrate:v:{i}", f"{r.kbps}k", f"-bufsize:v:{i}", f"{r.kbps // 2}k",
        ]  # fmt: skip
    args += [
        "-preset", "veryfast", "-profile:v", "main", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
    ]  # fmt: skip
    return args


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LadderError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _make_hls(spec: LadderSpec, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stream_map = " ".join(f"v:{i},name:{r.name}" for i, r in enumerate(spec.renditions))
    _run(
        [
            *_encode_args(spec),
            "-f",
            "hls",
            "-hls_time",
            str(spec.segment_seconds),
            "-hls_playlist_type",
            "vod",
            "-hls_segment_type",
            "fmp4",
            "-hls_segment_filename",
            str(out / "%v" / "seg_%03d.m4s"),
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            stream_map,
            str(out / "%v" / "index.m3u8"),
        ]
    )


def _make_dash(spec: LadderSpec, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _run(
        [
            *_encode_args(spec),
            "-f",
            "dash",
            "-seg_duration",
            str(spec.segment_seconds),
            "-use_template",
            "1",
            "-use_timeline",
            "0",
            # One adaptation set, so that dash.js's ABR can switch between the renditions.
            "-adaptation_sets",
            "id=0,streams=v",
            "-init_seg_name",
            "init-$RepresentationID$.m4s",
            "-media_seg_name",
            "seg-$RepresentationID$-$Number%03d$.m4s",
            str(out / "manifest.mpd"),
        ]
    )


def _make_progressive(spec: LadderSpec, out: Path) -> None:
    mid = spec.renditions[len(spec.renditions) // 2]
    one = LadderSpec(renditions=(mid,), seconds=spec.seconds, fps=spec.fps,
                     segment_seconds=spec.segment_seconds)  # fmt: skip
    _run([*_encode_args(one), "-movflags", "+faststart", str(out)])


def build(root: Path, spec: LadderSpec | None = None) -> Ladder:
    """Make (or reuse) the ladder under `root`: `hls/master.m3u8` and `dash/manifest.mpd`."""
    spec = spec or LadderSpec()
    ladder = Ladder(root, spec)
    stamp = root / "ladder.json"
    recipe = json.dumps(asdict(spec), sort_keys=True)
    if (
        stamp.is_file()
        and stamp.read_text() == recipe
        and ladder.hls_master.is_file()
        and ladder.dash_manifest.is_file()
        and ladder.progressive.is_file()
    ):
        return ladder
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _make_hls(spec, root / "hls")
    _make_dash(spec, root / "dash")
    _make_progressive(spec, ladder.progressive)
    stamp.write_text(recipe)
    return ladder
