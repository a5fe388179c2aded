"""Twenty researchers logging in and spawning at once: local spawner, then SlurmSpawner.

For each spawner a real one-machine site is started exactly as the hub tests start it
(``tests/hubsite.py``: munge, slurmctld + slurmd, PAM users with passwords, the proxy and the
hub from ``hub_config/run-local-hub``). Then, over HTTP as browsers would:

* baseline: one user alone logs in, picks the small profile and waits for JupyterLab;
* load: ``--users`` (20) users do the same at the same moment, one thread each.

A spawn time runs from the login request to JupyterLab's page answering through the proxy
(spawn-pending page and OAuth included). Prints failures, p50, p95 and max per spawner, and
the ratio of the load p95 to the lone baseline in the same process. Target: zero failures and
p95 <= 15 s with the local spawner on a 2-core machine.

Needs root (it creates Unix users and starts daemons); everything is removed afterwards.

Usage::

    sudo .venv/bin/python benchmarks/bench_hub.py [--users 20] [--spawners local,slurm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hubsite  # the tests' site: one way to start a hub, shared

TARGET_P95_LOCAL = 15.0


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1))]


def stop_server(site: hubsite.HubSite, session, user: str) -> None:
    """Stop ``user``'s server with the user's own session and wait until it is gone."""
    headers = {"X-XSRFToken": hubsite.xsrf(session)}
    session.delete(f"{site.url}/hub/api/users/{user}/server", headers=headers, timeout=60)

    def gone() -> bool:
        me = session.get(f"{site.url}/hub/api/user", headers=headers, timeout=30).json()
        return me["servers"] == {}

    hubsite.wait_for(gone, 120, f"{user}'s server to stop", interval=0.5)


def one_spawner(kind: str, n: int) -> dict:
    """Start a site with spawner ``kind``; time one lone spawn, then ``n`` at once."""
    users = {f"rttb{i:02d}": [hubsite.RESEARCHERS] for i in range(1, n + 1)}
    base = hubsite.make_base()
    munge_pid = hubsite.start_munge()
    site = None
    try:
        site = hubsite.start_site(base, kind, users)
        names = list(users)
        lone_session, lone = hubsite.spawn(site, names[0])
        stop_server(site, lone_session, names[0])

        def attempt(user: str) -> tuple[str, float | None, str]:
            try:
                _, seconds = hubsite.spawn(site, user, timeout=240)
                return user, seconds, ""
            except Exception as e:  # a failure is a result of the benchmark
                return user, None, f"{type(e).__name__}: {e}"

        t0 = time.monotonic()
        with ThreadPoolExecutor(len(names)) as pool:
            results = list(pool.map(attempt, names))
        wall = time.monotonic() - t0
        times = [s for _, s, _ in results if s is not None]
        failures = {u: err for u, s, err in results if s is None}
        row = {
            "spawner": kind,
            "users": n,
            "lone_s": lone,
            "failures": failures,
            "p50_s": statistics.median(times) if times else None,
            "p95_s": p95(times) if times else None,
            "max_s": max(times) if times else None,
            "wall_s": wall,
        }
        if kind == "slurm":
            row["jobs_running"] = sum(len(site.slurm.squeue(u)) for u in names)
        return row
    finally:
        hubsite.teardown(site, list(users), munge_pid, base, users)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--spawners", default="local,slurm")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench_hub creates Unix users and starts Slurm: run it as root")
    rows = []
    for kind in args.spawners.split(","):
        print(f"{kind}: starting the site and spawning {args.users} servers ...", flush=True)
        rows.append(one_spawner(kind.strip(), args.users))
    print(f"\n{'spawner':8} {'users':>5} {'fail':>4} {'lone s':>7} {'p50 s':>7} {'p95 s':>7} "
          f"{'max s':>7} {'p95/lone':>8}  target")  # fmt: skip
    ok = True
    for r in rows:
        verdict = ""
        if r["spawner"] == "local":
            met = not r["failures"] and r["p95_s"] is not None and r["p95_s"] <= TARGET_P95_LOCAL
            ok &= met
            verdict = f"0 failures, p95 <= {TARGET_P95_LOCAL:.0f} s: {'met' if met else 'MISSED'}"
        else:
            ok &= not r["failures"]
        nan = float("nan")
        p50s, p95s, maxs = (r[k] if r[k] is not None else nan for k in ("p50_s", "p95_s", "max_s"))
        ratio = p95s / r["lone_s"]
        print(f"{r['spawner']:8} {r['users']:5d} {len(r['failures']):4d} {r['lone_s']:7.1f} "
              f"{p50s:7.1f} {p95s:7.1f} {maxs:7.1f} {ratio:8.1f}  {verdict}")  # fmt: skip
        for user, err in r["failures"].items():
            print(f"  {user}: {err}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
