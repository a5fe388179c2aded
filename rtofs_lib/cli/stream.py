"""``rtofs stream``: the live pipeline (Spark Structured Streaming over landed files)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``stream`` sub-command."""
    p = subparsers.add_parser(
        "stream",
        help="render and publish each file seconds after it lands (Spark Structured Streaming)",
        description=(
            "Watch the archive's landed records (written by `rtofs crawl`) and render each "
            "new file's maps and statistics as it lands, one Spark task per file, publishing "
            "it into the day's index.json and the dashboard. Checkpointed: after a restart "
            "no file is missed and none is rendered twice. Runs until SIGTERM/Ctrl-C, or with "
            "--once until everything landed so far is done. Exit status: 0, or 1 when the "
            "query failed. Defaults come from the rtofs configuration."
        ),
    )
    p.add_argument("--archive", help="archive root (default: config)")
    p.add_argument("--maps", help="maps folder (default: config)")
    p.add_argument("--cache", help="grid-index cache folder (default: config)")
    p.add_argument("--fields", help="fields to draw, e.g. sst,sss (default: config)")
    p.add_argument(
        "--master", help="Spark master URL (spark://host:7077) or local[N] (default: config)"
    )
    p.add_argument("--checkpoint", help="checkpoint folder (default: config stream_checkpoint)")
    p.add_argument(
        "--trigger", help="seconds between micro-batches, e.g. 1 or 2s (default: config, 1s)"
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="process everything landed and not yet done, then exit (Trigger.AvailableNow)",
    )
    p.set_defaults(func=run_stream)


def run_stream(args: argparse.Namespace) -> int:
    """Run the stream until SIGTERM/SIGINT (or caught up, with --once)."""
    import signal
    import threading

    from rtofs_lib.cli.run import print_progress
    from rtofs_lib.jobs import stream

    if args.trigger is not None:
        stream.parse_trigger(args.trigger)  # a bad value is a usage error before Spark starts
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        print(f"rtofs stream: {signal.Signals(signum).name}: stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def on_batch(batch_id: int, report) -> None:
        print(f"batch {batch_id}: {report.summary()}", flush=True)

    report = stream.stream(
        archive=args.archive,
        maps=args.maps,
        master=args.master,
        checkpoint=args.checkpoint,
        trigger=args.trigger,
        once=args.once,
        fields=args.fields,
        cache_dir=args.cache,
        progress=print_progress,
        on_batch=on_batch,
        stop=stop,
    )
    if report.error:
        print(f"rtofs stream: error: {report.error}", flush=True)
    return report.exit_status
