"""Animations of a day's steps: GIF with Pillow, MP4 through ffmpeg when it is installed.

Global frames reuse the day's low-resolution maps when the rendering job has made
them; a region (a name from :data:`rtofs_lib.fields.regions.REGIONS` or ``"LON0,LON1,LAT0,LAT1"``)
is rendered from the archive files with :func:`rtofs_lib.maps.render.render_array`.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> tmp = tempfile.mkdtemp()
>>> _ = sample.write_sample(tmp + "/archive", "20260708", steps="f001,f002", grid="24x24")
>>> animate("20260708", tmp + "/gulf.gif", region="gulf_stream", archive=tmp + "/archive",
...         maps=tmp + "/maps", cache_dir=tmp + "/cache").name
'gulf.gif'
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rtofs_lib import config
from rtofs_lib.atomic import atomic_path
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import netcdf
from rtofs_lib.fields.grid import Grid
from rtofs_lib.fields.regions import REGIONS
from rtofs_lib.maps import render
from rtofs_lib.maps.rasters import parse_region

if TYPE_CHECKING:
    from PIL import Image as PILImage

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

    Examples
    --------
    >>> region_box("160,-150,-10,20")
    (160.0, -150.0, -10.0, 20.0)
    >>> region_box("global") is None
    True
    """
    if region is None or region == "global":
        return None
    if isinstance(region, str) and region in REGIONS:
        return REGIONS[region].box
    try:
        return parse_region(region)
    except ValueError as e:
        raise RtofsError(
            f"unknown region {region!r}; use a name ({', '.join(REGIONS)}) or "
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
) -> Iterator[PILImage.Image]:
    """Yield one RGB :class:`PIL.Image.Image` per step of the day, in step order.

    Raises
    ------
    RtofsError
        If the day has no files.
    """
    from rtofs_lib.fetch import catalog

    s = config.load()
    archive = Path(archive or s.archive).expanduser()
    day = Path(maps or s.maps).expanduser() / names.day_folder(date)
    cache = Path(cache_dir or s.cache).expanduser()
    files = catalog.day_files(archive, date)
    if not files:
        raise RtofsError(
            f"{catalog.day_dir(archive, date)}: no prog files to animate; fetch the day "
            "with `rtofs crawl` or make a sample with `rtofs sample`"
        )
    box = region_box(region)
    for i, path in enumerate(files, 1):
        png = render.output_path(day, path, field, "low")
        if box is None and png.exists() and png.stat().st_mtime >= path.stat().st_mtime:
            image = _read_map(png)
        else:
            image = _draw_map(path, field, box, cache)
        if progress:
            progress(i, len(files), path.name)
        yield _fit(image)


def _read_map(png: Path) -> PILImage.Image:
    """A map the rendering job wrote, as RGB."""
    from PIL import Image

    with Image.open(png) as im:
        return im.convert("RGB")


def _draw_map(path: Path, field: str, box: Sequence[float] | None, cache: Path) -> PILImage.Image:
    """Render ``field`` of ``path`` (low size, ``box`` or the globe) as RGB."""
    data = netcdf.read_field(path, field, grid=False)
    return render.render_array(
        data.values,
        Grid.of_file(path, cache),
        field=field,
        size="low",
        region=box,
        valid_time=data.valid_time,
        step=data.step,
    ).convert("RGB")


def _fit(image: PILImage.Image) -> PILImage.Image:
    """Scale ``image`` down to :data:`MAX_WIDTH` pixels wide (unchanged when narrower)."""
    from PIL import Image

    if image.width <= MAX_WIDTH:
        return image
    h = round(image.height * MAX_WIDTH / image.width)
    return image.resize((MAX_WIDTH, h), Image.Resampling.LANCZOS)


def _ffmpeg_for(out: Path, fps: float) -> str | None:
    """Check the output format and frame rate; return ffmpeg for an MP4 (None for a GIF)."""
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
    return ffmpeg


def animate(  # noqa: PLR0913 - keyword options, one per `rtofs animate` flag
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
    ffmpeg = _ffmpeg_for(out, fps)
    images = frames(
        date,
        field=field,
        region=region,
        archive=archive,
        maps=maps,
        cache_dir=cache_dir,
        progress=progress,
    )
    with atomic_path(out, suffix=out.suffix.lower()) as tmp:
        if ffmpeg is None:
            _write_gif(list(images), tmp, fps)
        else:
            _write_mp4(images, tmp, fps, ffmpeg)
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
