"""Animations of a day's steps: GIF with Pillow, MP4 through ffmpeg when it is installed.

Global frames reuse the day's low-resolution maps when the rendering job has made
them; a region (a name from :data:`rtofs_lib.jobs.stats.REGIONS` or ``"LON0,LON1,LAT0,LAT1"``)
is rendered from the archive files with :func:`rtofs_lib.maps.render.render_array`.

Examples
--------
>>> animate("20260708", "gulf.gif", region="gulf_stream")  # doctest: +SKIP
PosixPath('gulf.gif')
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from rtofs_lib import config
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names

#: Widest frame written; larger maps are scaled down (GIFs of 4500-px frames are huge).
MAX_WIDTH = 1200


def find_ffmpeg() -> str | None:
    """Return an ffmpeg executable: ``$PATH``'s, else imageio-ffmpeg's bundled one, else None."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return None
    # IMAGEIO_FFMPEG_EXE may name a file that is not there: treat it as no ffmpeg
    return exe if os.access(exe, os.X_OK) else None


def region_box(region: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """Return the lon/lat box of a region name or ``"LON0,LON1,LAT0,LAT1"`` (None: global).

    Raises
    ------
    RtofsError
        For an unknown name or a malformed box; the message lists the known names.
    """
    from rtofs_lib.jobs import stats
    from rtofs_lib.maps import render

    if region is None or region == "global":
        return None
    if isinstance(region, str) and region in stats.REGIONS:
        return stats.REGIONS[region].box
    try:
        return render.parse_region(region)
    except ValueError as e:
        raise RtofsError(
            f"unknown region {region!r}; use a name ({', '.join(stats.REGIONS)}) or "
            f"LON0,LON1,LAT0,LAT1 ({e})"
        ) from None


def frames(
    date: str | dt.date,
    *,
    field: str = "sst",
    region: str | Sequence[float] | None = None,
    archive: str | Path | None = None,
    maps: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
):
    """Yield one RGB :class:`PIL.Image.Image` per step of the day, in step order.

    Raises
    ------
    RtofsError
        If the day has no files.
    """
    from PIL import Image

    from rtofs_lib.fetch import catalog
    from rtofs_lib.fields import reader
    from rtofs_lib.maps import render

    s = config.load()
    archive = Path(archive or s.archive).expanduser()
    maps = Path(maps or s.maps).expanduser()
    cache = Path(cache_dir or s.cache).expanduser()
    files = catalog.day_files(archive, date)
    if not files:
        raise RtofsError(
            f"{catalog.day_dir(archive, date)}: no prog files to animate; fetch the day "
            "with `rtofs crawl` or make a sample with `rtofs sample`"
        )
    box = region_box(region)
    day = maps / names.day_folder(date)
    grid = None
    for i, path in enumerate(files, 1):
        png = render.output_path(day, path, field, "low")
        if box is None and png.exists() and png.stat().st_mtime >= path.stat().st_mtime:
            with Image.open(png) as im:
                image = im.convert("RGB")
        else:
            data = reader.read_field(path, field, grid=grid is None)
            if grid is None:
                grid = (data.lat, data.lon)
            image = render.render_array(
                data.values,
                grid[0],
                grid[1],
                field=field,
                size="low",
                region=box,
                valid_time=data.valid_time,
                step=data.step,
                cache_dir=cache,
            ).convert("RGB")
        if image.width > MAX_WIDTH:
            h = round(image.height * MAX_WIDTH / image.width)
            image = image.resize((MAX_WIDTH, h), Image.Resampling.LANCZOS)
        if progress:
            progress(i, len(files), path.name)
        yield image


def animate(
    date: str | dt.date,
    out: str | Path,
    *,
    field: str = "sst",
    region: str | Sequence[float] | None = None,
    fps: float = 4.0,
    archive: str | Path | None = None,
    maps: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write an animation of a day's steps of ``field`` to ``out`` (``.gif`` or ``.mp4``).

    Parameters
    ----------
    date
        Cycle day.
    out
        Output file; the suffix picks the format. Written atomically.
    field
        Field to draw.
    region
        A region name, ``"LON0,LON1,LAT0,LAT1"`` or None for the globe.
    fps
        Frames per second.
    archive, maps, cache_dir
        Folders (default from :mod:`rtofs_lib.config`).
    progress
        Called as ``progress(i, n, file_name)`` per frame.

    Raises
    ------
    RtofsError
        For an unsupported suffix, MP4 without ffmpeg, or a day without files.
    """
    out = Path(out).expanduser()
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise RtofsError(f"{out}: write the animation as .gif or .mp4")
    ffmpeg = find_ffmpeg() if suffix == ".mp4" else None
    if suffix == ".mp4" and ffmpeg is None:
        raise RtofsError(
            f"{out}: MP4 needs ffmpeg, which is not installed; write a .gif instead, or "
            "install ffmpeg (apt install ffmpeg, or pip install imageio-ffmpeg)"
        )
    if fps <= 0:
        raise RtofsError(f"fps must be positive, not {fps}")
    images = frames(
        date,
        field=field,
        region=region,
        archive=archive,
        maps=maps,
        cache_dir=cache_dir,
        progress=progress,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{suffix}")
    try:
        if suffix == ".gif":
            _write_gif(list(images), tmp, fps)
        else:
            _write_mp4(images, tmp, fps, ffmpeg)  # type: ignore[arg-type]
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write_gif(images: list, path: Path, fps: float) -> None:
    from PIL import Image

    # One shared palette keeps colours steady from frame to frame.
    first = images[0].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    rest = [im.quantize(palette=first, dither=Image.Dither.NONE) for im in images[1:]]
    first.save(
        path,
        format="GIF",
        save_all=True,
        append_images=rest,
        duration=round(1000 / fps),
        loop=0,
        optimize=False,
    )


def _write_mp4(images, path: Path, fps: float, ffmpeg: str) -> None:
    proc = None
    try:
        for im in images:
            if proc is None:
                w, h = im.size
                cmd = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
                cmd += ["-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
                cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p"]
                cmd += ["-c:v", "libx264", "-f", "mp4", str(path)]
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdin is not None
            proc.stdin.write(im.tobytes())
    finally:
        if proc is not None:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RtofsError(f"{path}: ffmpeg failed: {err.decode(errors='replace').strip()}")
