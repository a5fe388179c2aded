"""``rtofs sample``: write real-format synthetic RTOFS files into an archive folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _grid(text: str) -> str:
    from rtofs_lib.testing import SampleError, grid_shape

    try:
        grid_shape(text)
    except SampleError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _date(text: str) -> str:
    from rtofs_lib.fetch.names import NotRtofsNameError, parse_date

    try:
        return f"{parse_date(text):%Y%m%d}"
    except NotRtofsNameError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sample`` sub-command."""
    p = subparsers.add_parser(
        "sample",
        help="write synthetic RTOFS files with the real structure",
        description=(
            "Write synthetic Global RTOFS netCDF files, structurally identical to NOMADS' "
            "(names, variables, attributes, compression, chunks, grid), into "
            "DEST/rtofs.YYYYMMDD/. Prints the paths written."
        ),
    )
    p.add_argument("dest", type=Path, metavar="DEST", help="archive root folder")
    p.add_argument("--date", required=True, type=_date, help="cycle date, YYYYMMDD")
    p.add_argument(
        "--steps",
        default="n024",
        metavar="SPEC",
        help="steps such as n024,f000-f072, or 'all' (default: n024)",
    )
    p.add_argument(
        "--products",
        default="prog",
        metavar="SPEC",
        help="products such as prog,diag,ice,3ztio,US_east, or 'all' (default: prog)",
    )
    p.add_argument(
        "--grid",
        default="small",
        type=_grid,
        help="full (3298x4500, ~160 MB per prog file), small (330x450) or NYxNX (default: small)",
    )
    p.add_argument(
        "--legacy",
        action="store_true",
        help="pre-2020 form: NETCDF3_CLASSIC, uncompressed, names with a cadence tag",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the files and print their paths; 2 for a bad step or product spec."""
    from rtofs_lib.fetch import names
    from rtofs_lib.status import ExitStatus
    from rtofs_lib.testing.sample import SampleError, steps_by_product, write_sample

    try:
        products = names.expand_products(args.products)
        steps_by_product(args.steps, products)
        if args.legacy and any(names.family(p) != "2ds" for p in products):
            raise SampleError(
                "--legacy exists only for 2-D products (prog, diag, ice); "
                "drop it or choose --products prog,diag,ice"
            )
    except (names.NotRtofsNameError, SampleError) as e:
        print(f"rtofs sample: error: {e}", file=sys.stderr)
        return ExitStatus.USAGE
    paths = write_sample(
        args.dest,
        args.date,
        steps=args.steps,
        products=products,
        grid=args.grid,
        legacy=args.legacy,
    )
    for path in paths:
        print(path, flush=True)
    return ExitStatus.OK
