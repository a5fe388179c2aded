"""The Ansible converges three real Debian hosts (systemd-nspawn) into a working platform.

``tests/hosts/hostctl.py`` boots hub, worker1 and worker2 on a private bridge; the session
fixtures run ``ansible/site.yml`` with the test inventory twice (Lustre and InfiniBand off,
everything else real), then these tests check the cluster from outside and inside.
Needs root, systemd-nspawn, debootstrap and apt-cacher-ng (scripts/setup.sh installs them).
Converge times go to ``test-artifacts/converge-times.json``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest
from conftest import ANSIBLE_DIR, CRAWL_STEPS, run_playbook

pytestmark = [pytest.mark.hosts, pytest.mark.slow, pytest.mark.timeout(3600)]

HOSTS = ("hub", "worker1", "worker2")
RESEARCHER, OTHER = "alice", "bob"
PASSWORDS = {"alice": "alice-test-password", "bob": "bob-test-password"}
HUB_PORT = 8443
#: Every top-level playbook of ansible/.
PLAYBOOKS = sorted(p.name for p in ANSIBLE_DIR.glob("*.yml"))

SPARK_JOB = r"""
import socket, sys
if sys.argv[1:] == ["rtofs"]:  # the platform's helper: the secret from spark_secret_file
    from rtofs_lib.jobs.spark import session
    spark = session(app_name="converge-check")
else:  # plain PySpark with whatever spark-defaults.conf and --conf say
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.appName("converge-check").getOrCreate()
rdd = spark.sparkContext.parallelize(range(64), 16)
print("HOSTS", ",".join(sorted(rdd.map(lambda _: socket.gethostname()).distinct().collect())))
spark.stop()
"""
WRITE_JOB = f"cat > /tmp/sparkjob.py <<'EOF'\n{SPARK_JOB}\nEOF\nchmod 644 /tmp/sparkjob.py"


def _reachable(address: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- static checks (no hosts needed) -----------------------------------------------------------


@pytest.mark.parametrize("inventory", ["production", "local", "test"])
def test_every_playbook_passes_the_syntax_check(inventory):
    for playbook in PLAYBOOKS:
        run = run_playbook(
            "--syntax-check", "-e", "backup_file=x", playbook=playbook, inventory=inventory
        )
        assert run.rc == 0, run.tail()


def test_ansible_lint_passes_with_the_production_profile():
    import subprocess
    import sys
    from pathlib import Path

    lint = Path(sys.executable).with_name("ansible-lint")
    r = subprocess.run(
        [str(lint), "--offline", "--nocolor", *PLAYBOOKS, "roles"],
        cwd=ANSIBLE_DIR, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


# --- convergence ----------------------------------------------------------------------------


def test_first_converge_succeeds_on_all_three_hosts(converged):
    assert set(converged.recap) == set(HOSTS), converged.tail()
    for host, counts in converged.recap.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)


def test_second_converge_changes_nothing(reconverged):
    assert reconverged.rc == 0, reconverged.tail()
    changed = {host: c["changed"] for host, c in reconverged.recap.items()}
    assert changed == dict.fromkeys(HOSTS, 0), "\n".join(reconverged.changed_tasks())


def test_check_mode_passes_and_predicts_no_change(reconverged):
    run = run_playbook("--check")
    assert run.rc == 0, run.tail()
    changed = {host: c["changed"] for host, c in run.recap.items()}
    assert changed == dict.fromkeys(HOSTS, 0), "\n".join(run.changed_tasks())


# --- Spark -----------------------------------------------------------------------------------


def test_spark_master_reports_two_alive_workers(cluster):
    master = cluster.address("hub")
    out = cluster.run("worker1", f"curl -sf http://{master}:8080/json/").stdout
    workers = json.loads(out)["workers"]
    alive = sorted(w["host"] for w in workers if w["state"] == "ALIVE")
    assert alive == sorted([cluster.address("worker1"), cluster.address("worker2")])


def test_platform_spark_job_as_the_service_account_runs_tasks_on_both_workers(cluster):
    cluster.run("hub", WRITE_JOB)
    r = cluster.run("hub", "python /tmp/sparkjob.py rtofs", user="spark", timeout=300)
    assert "HOSTS worker1,worker2" in r.stdout, r.stderr[-2000:]


def test_researcher_cannot_submit_to_the_platform_cluster_with_its_helper(cluster):
    cluster.run("hub", WRITE_JOB)
    r = cluster.run(
        "hub", "timeout 150 python /tmp/sparkjob.py rtofs", user=RESEARCHER, check=False
    )
    assert r.returncode != 0 and "HOSTS" not in r.stdout
    assert "/etc/rtofs/spark.secret: cannot read the Spark secret file" in r.stderr, r.stderr


def test_researcher_with_a_copy_of_the_settings_and_a_guessed_secret_is_refused(cluster):
    cluster.run(
        "hub",
        "rm -rf /tmp/copyconf && mkdir -p /tmp/copyconf && cp /etc/spark/* /tmp/copyconf/ && "
        "echo 'spark.authenticate.secret guess' >> /tmp/copyconf/spark-defaults.conf && "
        "chown -R alice /tmp/copyconf && " + WRITE_JOB,
    )
    r = cluster.run(
        "hub",
        "SPARK_CONF_DIR=/tmp/copyconf timeout 150 python /tmp/sparkjob.py",
        user=RESEARCHER,
        check=False,
        timeout=200,
    )
    assert r.returncode != 0 and "HOSTS" not in r.stdout


def test_platform_spark_secret_is_readable_by_the_service_account_only(cluster):
    files = "/etc/rtofs/spark.secret /etc/spark/spark-defaults.conf"
    r = cluster.run("hub", f"stat -c '%U %G %a' {files}")
    assert r.stdout.split("\n")[:2] == ["spark root 400", "root root 644"]
    defaults = cluster.run("hub", "cat /etc/spark/spark-defaults.conf", user=RESEARCHER).stdout
    secret = cluster.run("hub", "cat /etc/rtofs/spark.secret").stdout.strip()
    assert secret and secret not in defaults
    for host in HOSTS:
        r = cluster.run(host, "cat /etc/rtofs/spark.secret", user=RESEARCHER, check=False)
        assert r.returncode != 0 and "Permission denied" in r.stderr, host


def test_platform_secret_is_on_no_command_line(cluster):
    secret = cluster.run("hub", "cat /etc/rtofs/spark.secret").stdout.strip()
    for host in HOSTS:
        assert secret not in cluster.run(host, "ps -eo args", user=RESEARCHER).stdout, host


@pytest.mark.parametrize("port", [6066, 7077, 8080, 18080], ids=["rest", "rpc", "ui", "history"])
def test_spark_ports_are_closed_to_addresses_outside_the_cluster(cluster, port):
    # this machine sits on the same bridge but is not a cluster member
    assert not _reachable(cluster.address("hub"), port)


@pytest.mark.parametrize("port", [7077, 8080, 18080], ids=["rpc", "ui", "history"])
def test_spark_ports_answer_cluster_members(cluster, port):
    hub = cluster.address("hub")
    cluster.run("worker2", f"timeout 5 bash -c 'exec 3<>/dev/tcp/{hub}/{port}'")


def test_spark_rest_submission_server_is_off_even_inside_the_cluster(cluster):
    hub = cluster.address("hub")
    r = cluster.run("worker2", f"timeout 5 bash -c 'exec 3<>/dev/tcp/{hub}/6066'", check=False)
    assert r.returncode != 0


# --- Slurm -----------------------------------------------------------------------------------


def test_sinfo_shows_both_workers_idle(cluster):
    r = cluster.run("hub", "sinfo -h -N -o '%N %T'")
    assert sorted(r.stdout.split("\n")[:-1]) == ["worker1 idle", "worker2 idle"]


def test_researcher_runs_a_slurm_job_on_both_workers(cluster):
    r = cluster.run("hub", "srun -N2 -n2 --mem=100M hostname", user=RESEARCHER, timeout=120)
    assert sorted(r.stdout.split()) == ["worker1", "worker2"]


# --- people and files ------------------------------------------------------------------------


def test_users_have_the_same_ids_on_every_host(cluster):
    ids = {h: cluster.run(h, "id alice; id bob; id slurm; id spark").stdout for h in HOSTS}
    assert ids["hub"] == ids["worker1"] == ids["worker2"]


def test_researcher_cannot_read_another_researchers_home(cluster):
    r = cluster.run("worker1", f"ls /home/{OTHER}", user=RESEARCHER, check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_researcher_cannot_write_the_archive(cluster):
    r = cluster.run("hub", "touch /lustre/rtofs/archive/x", user=RESEARCHER, check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_archive_is_shared_by_all_three_hosts(cluster):
    cluster.run("worker1", "runuser -u rtofs -- touch /lustre/rtofs/archive/.shared-check")
    cluster.run("worker2", "test -f /lustre/rtofs/archive/.shared-check")
    cluster.run("hub", "rm /lustre/rtofs/archive/.shared-check")


# --- timers and the daily job -------------------------------------------------------------------


def test_crawl_timer_is_installed_and_enabled_on_the_hub_only(cluster):
    assert cluster.run("hub", "systemctl is-enabled rtofs-crawl.timer").stdout.strip() == "enabled"
    assert cluster.run("hub", "systemctl is-active rtofs-crawl.timer").stdout.strip() == "active"
    r = cluster.run("worker1", "systemctl cat rtofs-crawl.timer", check=False)
    assert r.returncode != 0


def test_crawl_timer_starts_the_crawl_before_each_publication_wave(cluster):
    r = cluster.run("hub", "systemctl show -p TimersCalendar rtofs-crawl.timer")
    starts = sorted(m.split()[1] for m in r.stdout.split("OnCalendar=")[1:])
    assert starts == ["03:05:00", "09:05:00", "15:05:00"], r.stdout


def test_nothing_follows_the_crawl_and_the_old_rendering_job_is_gone(cluster):
    crawl = cluster.run("hub", "systemctl cat rtofs-crawl.service").stdout
    assert "OnSuccess" not in crawl and "--follow" in crawl
    units = cluster.run("hub", "systemctl list-unit-files --no-legend 'rtofs-*'").stdout
    assert sorted(line.split()[0] for line in units.splitlines()) == [
        "rtofs-crawl.service", "rtofs-crawl.timer", "rtofs-stream.service"
    ]  # fmt: skip


def _stream(cluster) -> dict[str, str]:
    """The hub's stream service: its state, main pid, user and restart count."""
    props = "-p ActiveState -p MainPID -p User -p Group -p NRestarts -p UnitFileState"
    r = cluster.run("hub", f"systemctl show {props} rtofs-stream.service")
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_stream_runs_on_the_hub_only_as_the_maps_owner(cluster):
    unit = _stream(cluster)
    assert (unit["ActiveState"], unit["UnitFileState"]) == ("active", "enabled"), unit
    assert (unit["User"], unit["Group"]) == ("spark", "rtofs")
    ps = cluster.run("hub", f"ps -o user=,args= -p {unit['MainPID']}").stdout
    assert ps.split()[0] == "spark" and " stream " in f"{ps} ", ps
    owners = cluster.run("hub", "stat -c %U /lustre/rtofs/maps /var/lib/rtofs/stream").stdout
    assert owners.split() == ["spark", "spark"]  # one writer of the maps; its own checkpoint
    for worker in ("worker1", "worker2"):
        assert cluster.run(worker, "systemctl cat rtofs-stream.service", check=False).returncode


def test_stream_is_restarted_after_its_main_process_is_killed(cluster):
    before = _stream(cluster)
    cluster.run("hub", f"kill -9 {before['MainPID']}")

    def restarted():
        now = _stream(cluster)
        return now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])

    assert _poll(restarted, True, timeout=240), _stream(cluster)
    assert int(_stream(cluster)["NRestarts"]) == int(before["NRestarts"]) + 1


def _day_index(cluster, day: str) -> dict:
    r = cluster.run("hub", f"cat /lustre/rtofs/maps/{day}/index.json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}


def _steps(cluster, day: str) -> set[str]:
    return {s["step"] for s in _day_index(cluster, day).get("steps", [])}


def test_a_file_published_on_nomads_reaches_the_dashboard_with_nothing_started_by_hand(
    cluster, nomads_source, hostctl, hub_cert, tmp_path
):
    """The crawl's service started as its timer does; the stream is the converge's."""
    import datetime as dt
    import shutil

    from rtofs_lib.testing import sample
    from rtofs_lib.testing.nomads import NomadsServer

    # a follow crawl takes today's UTC cycle: NOAA's day is being published now
    today = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    day = f"rtofs.{today}"
    root = tmp_path / "nomads"
    shutil.copytree(nomads_source, root)  # the older days stay listed
    sample.write_sample(root, today, steps=CRAWL_STEPS, grid="small")
    late = root / day / "rtofs_glo_2ds_f003_prog.nc"
    hidden = late.with_name(f".{late.name}")  # hidden names are neither listed nor served
    late.rename(hidden)
    stream_pid = _stream(cluster)["MainPID"]
    logs = "journalctl -u rtofs-crawl -u rtofs-stream --no-pager | tail -80"
    with NomadsServer(root, host=hostctl.GATEWAY, port=8765):
        cluster.run("hub", "systemctl start --no-block rtofs-crawl.service")
        early = {"n024", "f000", "f001", "f002"}
        got = _poll(lambda: early <= _steps(cluster, day), True, timeout=600)
        assert got, cluster.run("hub", logs).stdout
        hidden.rename(late)  # NOAA publishes the last file while the crawl follows the listing
        got = _poll(lambda: "f003" in _steps(cluster, day), True, timeout=600)
        assert got, cluster.run("hub", logs).stdout
        done = _poll(
            lambda: cluster.run(
                "hub", "systemctl is-active rtofs-crawl.service", check=False
            ).stdout.strip(),
            "inactive",
            timeout=300,
        )
    assert done == "inactive", cluster.run("hub", logs).stdout
    result = cluster.run("hub", "systemctl show -p Result --value rtofs-crawl.service").stdout
    assert result.strip() == "success", cluster.run("hub", logs).stdout
    (entry,) = [s for s in _day_index(cluster, day)["steps"] if s["step"] == "f003"]
    cluster.run("worker1", f"test -s /lustre/rtofs/maps/{day}/{entry['maps']['sst']['low']}")
    assert _stream(cluster)["MainPID"] == stream_pid  # the running stream did it
    # and the hub's dashboard serves it to a logged-in researcher
    base = f"https://{cluster.address('hub')}:{HUB_PORT}"
    s, _ = _login(base, hub_cert, RESEARCHER)
    r = s.get(f"{base}/services/maps/{day}/index.json", timeout=60)
    assert r.status_code == 200 and "f003" in {x["step"] for x in r.json()["steps"]}
    page = s.get(f"{base}/services/maps/", timeout=60)
    assert page.status_code == 200 and "No maps yet" not in page.text, page.url
    png = s.get(f"{base}/services/maps/{day}/{entry['maps']['sst']['low']}", timeout=60)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    # and the map's tiles of that file, drawn by the hub's dashboard from the shared archive
    layers = s.get(f"{base}/services/maps/api/layers.json", timeout=60).json()
    assert "f003" in {x["step"] for d in layers["days"] if d["date"] == today for x in d["steps"]}
    tile = s.get(f"{base}/services/maps/tiles/{today}/f003/sst/0/0/0.png", timeout=120)
    assert tile.status_code == 200 and tile.content.startswith(b"\x89PNG"), tile.text[:300]


# --- researchers' own Spark (inside their Slurm allocation, as themselves) ---------------------

#: What a notebook's ``spark`` does, as a script: ``probe`` runs tasks on every node that
#: report who they run as and try what a researcher must not do; ``hold`` keeps a session with
#: shuffle files until ``/tmp/<user>-release`` exists (or 10 minutes pass).
PERSONAL_JOB = r"""
import glob, json, os, socket, sys, time
t0 = time.monotonic()
from rtofs_lib.notebook.kernel import LazySpark
spark = LazySpark(app_name="converge-personal")
sc = spark.sparkContext
first = sc.parallelize([0], 1).map(lambda _: os.getuid()).collect()
elapsed = time.monotonic() - t0
nodes = int(os.environ["SLURM_JOB_NUM_NODES"])
while sc._jsc.sc().getExecutorMemoryStatus().size() < nodes + 1 and time.monotonic() - t0 < 120:
    time.sleep(0.5)  # every node's executor (and the driver) registered

def first_of(pattern):
    found = sorted(glob.glob(pattern))
    return found[0] if found else None

TARGETS = {
    "remove a map": ("remove", first_of("/lustre/rtofs/maps/rtofs.*/*/*.png")),
    "overwrite the dashboard": ("write", "/lustre/rtofs/maps/index.html"),
    "overwrite a statistics file": (
        "write", first_of("/lustre/rtofs/maps/rtofs.*/region_stats.parquet/part-*.parquet")
    ),
    "overwrite a cache file": ("write", first_of("/lustre/rtofs/cache/*")),
    "add a cache file": ("create", "/lustre/rtofs/cache/index-planted"),
    "read the platform's secret": ("read", "/etc/rtofs/spark.secret"),
    "read bob's home": ("list", "/home/bob"),
    "read bob's scratch": ("list", "/var/tmp/spark/bob"),
}

def probe(_):
    import getpass
    tried = {}
    for name, (how, path) in TARGETS.items():
        if path is None:
            tried[name] = "no such file to try"
            continue
        try:
            if how == "remove":
                os.remove(path)
            elif how == "write":
                open(path, "r+b").close()
            elif how == "create":
                open(path, "xb").close()
            elif how == "read":
                open(path, "rb").read()
            else:
                os.listdir(path)
            tried[name] = "allowed"
        except OSError as e:
            tried[name] = type(e).__name__
    return socket.gethostname(), getpass.getuser(), os.getuid(), tried

if sys.argv[1] == "probe":
    rows = sc.parallelize(range(16), 16).map(probe).collect()
    out = {"first_task_s": elapsed, "rows": rows, "cluster": repr(spark.cluster)}
    print("RESULT " + json.dumps(out))
else:
    rdd = sc.parallelize(range(10000), 8).map(lambda x: (x % 97, x)).groupByKey().cache()
    rdd.count()
    me = os.environ["USER"]
    print("READY", os.getpid(), flush=True)
    open(f"/tmp/{me}-ready", "w").write(str(os.getpid()))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not os.path.exists(f"/tmp/{me}-release"):
        time.sleep(1)
    print("COUNT", rdd.count())
"""
#: A researcher's session as the hub starts it: an allocation on both workers, the server's
#: step on the first, the kernel inside it. ``sleep`` keeps the allocation after the kernel.
PERSONAL_ALLOC = (
    "salloc --quiet -N2 --ntasks-per-node=1 --cpus-per-task=1 --mem=900M --time=15 "
    "srun --nodes=1 --ntasks=1 bash -c 'python /tmp/personal.py {mode}; {after}'"
)


def _write_personal_job(cluster) -> None:
    for host in HOSTS:
        cluster.run(host, f"cat > /tmp/personal.py <<'EOF'\n{PERSONAL_JOB}\nEOF\n"
                    "chmod 644 /tmp/personal.py; rm -f /tmp/*-ready /tmp/*-release")  # fmt: skip


def _spark_processes(cluster, user: str, session: str = "") -> dict[str, str]:
    """Spark JVMs and personal-cluster programs of ``user`` on each worker, each line with
    its folder and command line; only those of personal ``session`` (an id or a part of one:
    its folder and its programs' arguments carry it) when given."""
    cmd = (
        f"for p in $(pgrep -u {user} -f 'java|rtofs_lib.jobs.personal'); do "
        'echo "$p $(readlink /proc/$p/cwd) $(tr "\\0" " " < /proc/$p/cmdline)"; done'
        f" | grep -F -e '{session}' || true"
    )
    return {w: cluster.run(w, cmd).stdout.strip() for w in ("worker1", "worker2")}


@pytest.fixture(scope="class")
def bob_holding_a_session(cluster):
    """bob's own Spark session, with shuffle files, running while alice's tests run."""
    _write_personal_job(cluster)
    cmd = PERSONAL_ALLOC.format(mode="hold", after="true")
    cluster.run("hub", f"nohup {cmd} > /tmp/bob-session.log 2>&1 &", user=OTHER)
    ready = _poll(lambda: _ready_node(cluster, OTHER) != "", True, timeout=240)
    assert ready, cluster.run("hub", "cat /tmp/bob-session.log").stdout[-3000:]
    yield _ready_node(cluster, OTHER)
    cluster.run("hub", f"touch /tmp/{OTHER}-release")
    for w in ("worker1", "worker2"):
        cluster.run(w, f"touch /tmp/{OTHER}-release")
    _poll(lambda: cluster.run("hub", f"squeue -h -u {OTHER}").stdout.strip(), "", timeout=120)
    cluster.run("hub", f"scancel -u {OTHER}")


def _ready_node(cluster, user: str) -> str:
    for w in ("worker1", "worker2"):
        if cluster.run(w, f"test -f /tmp/{user}-ready", check=False).returncode == 0:
            return w
    return ""


@pytest.fixture(scope="class")
def alice_probe(cluster, bob_holding_a_session):
    """alice's own Spark run on both workers while bob's session and the stream run."""
    squeue = []

    def watch_slurm():
        out = cluster.run("hub", f"squeue -h -s -u {RESEARCHER} -o '%i %j %N'").stdout
        if "spark" in out:
            squeue.append(out)

    import threading

    stop = threading.Event()

    def loop():
        while not stop.wait(2):
            watch_slurm()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        r = cluster.run(
            "hub", PERSONAL_ALLOC.format(mode="probe", after="true"), user=RESEARCHER, timeout=400
        )
    finally:
        stop.set()
        t.join()
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, r.stdout[-2000:] + r.stderr[-3000:]
    result = json.loads(line[len("RESULT ") :])
    result["squeue"] = squeue[-1] if squeue else ""
    from conftest import REPO

    out = REPO / "test-artifacts" / "personal-spark.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({k: result[k] for k in ("first_task_s", "cluster", "squeue")}))
    print(f"personal Spark: first task after {result['first_task_s']:.1f} s; {result['squeue']}")
    return result


class TestResearchersSparkBesideAnother:
    """alice's Spark on both workers while bob's session (with shuffle files) and the
    platform's stream run."""

    def test_researchers_spark_tasks_run_as_her_on_both_workers(self, alice_probe):
        who = {(host, user, uid) for host, user, uid, _ in alice_probe["rows"]}
        assert who == {("worker1", "alice", 3001), ("worker2", "alice", 3001)}

    def test_researchers_spark_is_her_own_job_step_spanning_the_allocation(self, alice_probe):
        steps = alice_probe["squeue"].splitlines()
        assert any(s.split()[1] == "spark" and s.split()[2] == "worker[1-2]" for s in steps), steps

    @pytest.mark.parametrize(
        "attempt",
        [
            "remove a map",
            "overwrite the dashboard",
            "overwrite a statistics file",
            "overwrite a cache file",
            "add a cache file",
            "read the platform's secret",
            "read bob's home",
            "read bob's scratch",
        ],
    )
    def test_researchers_spark_task_is_denied(self, alice_probe, attempt):
        outcomes = {tried[attempt] for *_, tried in alice_probe["rows"]}
        assert outcomes == {"PermissionError"}, outcomes

    def test_bobs_shuffle_files_are_in_his_private_scratch(self, cluster, bob_holding_a_session):
        r = cluster.run("worker1", "find /var/tmp/spark/bob -name 'shuffle_*' | head -3; "
                        "stat -c '%U %a' /var/tmp/spark/bob")  # fmt: skip
        r2 = cluster.run("worker2", "find /var/tmp/spark/bob -name 'shuffle_*' | head -3")
        assert "shuffle_" in r.stdout + r2.stdout
        assert r.stdout.strip().splitlines()[-1] == "bob 700"

    def test_platform_stream_keeps_running_beside_researchers_spark(self, cluster, alice_probe):
        unit = _stream(cluster)
        assert unit["ActiveState"] == "active", unit


#: Change the last bytes of every grid index in the shared cache, keeping each file's size.
TAMPER = r"""
import pathlib
for p in sorted(pathlib.Path("/lustre/rtofs/cache").glob("index-*.index")):
    data = bytearray(p.read_bytes())
    data[-4096:] = bytes(b ^ 0x5A for b in data[-4096:])
    p.write_bytes(bytes(data))
    print(p.name)
"""


def test_a_tampered_grid_index_is_detected_not_used_and_the_maps_stay_right(cluster):
    found = cluster.run("hub", "ls /lustre/rtofs/archive/rtofs.*/rtofs_glo_2ds_*_prog.nc").stdout
    nc = found.split()[0]
    render = (
        f"rm -rf /tmp/{{out}} && runuser -u spark -- /opt/rtofs/venv/bin/rtofs render {nc} "
        f"--size low --out /tmp/{{out}} && md5sum $(find /tmp/{{out}} -name '*.png')"
    )
    clean = cluster.run("hub", render.format(out="clean"))
    tampered = cluster.run("hub", f"python3 - <<'EOF'\n{TAMPER}\nEOF")
    assert tampered.stdout.split(), "no index in the shared cache to tamper with"
    again = cluster.run("hub", render.format(out="again"))
    assert "content does not match its digest" in again.stderr, again.stderr
    lines = (clean.stdout + again.stdout).splitlines()  # the maps' paths, then their md5sums
    digests = {line.split()[0] for line in lines if len(line.split()) == 2}
    assert len(digests) == 1, clean.stdout + again.stdout  # the same map, byte for byte
    third = cluster.run("hub", render.format(out="third"))
    assert "does not match" not in third.stderr  # the rebuilt index was written back


#: The units of the layout before the stream: the crawl's OnSuccess= started this job.
OLD_RENDER_UNIT = """[Unit]
Description=Render Global RTOFS maps from the archive (rtofs run)
After=rtofs-crawl.service

[Service]
Type=oneshot
User=spark
Group=rtofs
ExecStart=/opt/rtofs/venv/bin/rtofs run
"""


def test_converging_the_old_layout_removes_its_rendering_job_and_the_onsuccess_chain(cluster):
    system = "/etc/systemd/system"
    cluster.run(
        "hub",
        f"cat > {system}/rtofs-render.service <<'EOF'\n{OLD_RENDER_UNIT}EOF\n"
        f"mkdir -p {system}/rtofs-render.service.d && "
        f"printf '[Service]\\nUser=spark\\n' > {system}/rtofs-render.service.d/10-user.conf && "
        f"sed -i '/^After=network-online.target/a OnSuccess=rtofs-render.service' "
        f"{system}/rtofs-crawl.service && systemctl daemon-reload",
    )
    assert "OnSuccess=rtofs-render" in cluster.run("hub", "systemctl cat rtofs-crawl").stdout
    upgrade = run_playbook("--tags", "rtofs_timers", "--limit", "hub")
    assert upgrade.rc == 0, upgrade.tail()
    left = cluster.run("hub", f"ls -d {system}/rtofs-render.service*", check=False)
    assert left.stdout == "", left.stdout
    assert cluster.run("hub", "systemctl cat rtofs-render.service", check=False).returncode
    assert "OnSuccess" not in cluster.run("hub", "systemctl cat rtofs-crawl.service").stdout
    again = run_playbook("--tags", "rtofs_timers", "--limit", "hub")
    assert again.rc == 0 and again.recap["hub"]["changed"] == 0, "\n".join(again.changed_tasks())


# --- JupyterHub ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_cert(cluster, tmp_path_factory):
    """The hub's (self-signed) certificate, to verify HTTPS against."""
    path = tmp_path_factory.mktemp("hub-tls") / "hub.crt"
    path.write_text(cluster.run("hub", "cat /etc/rtofs/tls/hub.crt").stdout)
    return str(path)


def test_hub_login_page_answers_over_https(cluster, hub_cert):
    import requests

    r = requests.get(
        f"https://{cluster.address('hub')}:{HUB_PORT}/hub/login", verify=hub_cert, timeout=30
    )
    assert r.status_code == 200 and "password" in r.text.lower()


def _login(base: str, cert: str, user: str):
    import requests

    s = requests.Session()
    s.verify = cert
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify; no proxies either
    s.get(f"{base}/hub/login", timeout=30)
    xsrf = s.cookies.get("_xsrf", "")
    r = s.post(
        f"{base}/hub/login",
        data={"username": user, "password": PASSWORDS[user], "_xsrf": xsrf},
        timeout=60,
    )
    assert r.status_code == 200 and "/hub/login" not in r.url, f"{user} could not log in: {r.url}"
    return s, xsrf


@pytest.fixture(scope="module")
def running_server(cluster, hub_cert):
    """alice logged in over HTTPS with her server started (a Slurm job on a worker)."""
    base = f"https://{cluster.address('hub')}:{HUB_PORT}"
    s, xsrf = _login(base, hub_cert, RESEARCHER)
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", xsrf), "Referer": f"{base}/hub/home"}
    r = s.post(
        f"{base}/hub/api/users/{RESEARCHER}/server",
        json={"profile": "small"},
        headers=headers,
        timeout=60,
    )
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 300
    model = {}
    while time.monotonic() < deadline:
        model = s.get(f"{base}/hub/api/users/{RESEARCHER}", headers=headers, timeout=30).json()
        if model.get("servers", {}).get("", {}).get("ready"):
            break
        time.sleep(3)
    else:
        log = cluster.run("hub", "journalctl -u jupyterhub --no-pager | tail -40").stdout
        pytest.fail(f"alice's server did not start: {model}\n{log}")
    # the first visit completes the server's OAuth login (API calls are not redirected)
    lab = s.get(f"{base}/user/{RESEARCHER}/lab", timeout=60)
    assert lab.status_code == 200, lab.url
    return base, s


def test_proxy_runs_as_its_own_unprivileged_user(cluster):
    pid = cluster.run("hub", "systemctl show -p MainPID --value jupyterhub-proxy").stdout.strip()
    r = cluster.run("hub", f"ps -o uid=,args= -p {pid}")
    uid, args = r.stdout.split(maxsplit=1)
    assert uid == cluster.run("hub", "id -u jupyterhub-proxy").stdout.strip() != "0"
    assert "configurable-http-proxy" in args, r.stdout


def test_proxy_user_cannot_read_the_hubs_state_or_tls_key(cluster):
    for path in ("/var/lib/rtofs-hub/jupyterhub.sqlite", "/etc/rtofs/tls/hub.key"):
        r = cluster.run("hub", f"runuser -u jupyterhub-proxy -- cat {path}", check=False)
        assert r.returncode != 0 and "Permission denied" in r.stderr, path


def test_researchers_server_runs_as_her_slurm_job_on_a_worker(cluster, running_server):
    r = cluster.run("hub", f"squeue -h -u {RESEARCHER} -n spawner-jupyterhub -o '%T %N'")
    state, node = r.stdout.split()
    assert state == "RUNNING" and node in ("worker1", "worker2")
    procs = cluster.run(node, f"ps -u {RESEARCHER} -o args=").stdout
    assert "singleuser" in procs, procs


def test_researchers_server_answers_through_the_proxy(running_server):
    base, s = running_server
    r = s.get(f"{base}/user/{RESEARCHER}/api/status", timeout=60)
    assert r.status_code == 200 and "started" in r.json()


def test_hub_restart_keeps_the_running_server(cluster, running_server):
    base, s = running_server
    job = cluster.run("hub", f"squeue -h -u {RESEARCHER} -o %i").stdout.strip()
    cluster.run("hub", "systemctl restart jupyterhub")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = s.get(f"{base}/user/{RESEARCHER}/api/status", timeout=30)
        if r.status_code == 200:
            break
        time.sleep(2)
    assert r.status_code == 200
    assert cluster.run("hub", f"squeue -h -u {RESEARCHER} -o %i").stdout.strip() == job
    # and the restarted hub (once it answers again) still knows the server
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}

    def ready():
        r = s.get(f"{base}/hub/api/users/{RESEARCHER}", headers=headers, timeout=30)
        return r.json()["servers"][""]["ready"] if r.status_code == 200 else r.status_code

    assert _poll(ready, True) is True


# --- a researcher's own Spark from her notebook, through the hub --------------------------------

#: A cell of the shared kernel: the first use of ``spark`` (timed), then tasks on every node.
NOTEBOOK_SPARK_CELL = """
import json, os, socket, time
t0 = time.monotonic()
sc = spark.sparkContext
sc.parallelize([0], 1).collect()
first = time.monotonic() - t0
while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() - t0 < 120:
    time.sleep(0.5)  # both workers' executors and the driver
rows = sc.parallelize(range(16), 16).map(lambda _: (socket.gethostname(), os.getuid()))
print(json.dumps({"rows": sorted(set(rows.collect())), "first_task_s": first,
                  "kernel": [socket.gethostname(), os.getpid()], "ui": spark.ui_url}))
"""


@pytest.fixture(scope="class")
def bob_notebook(cluster, hub_cert):
    """bob's server with the two-worker profile, and a kernel that used ``spark`` once."""
    from hubsite import NotebookKernel

    base = f"https://{cluster.address('hub')}:{HUB_PORT}"
    s, xsrf = _login(base, hub_cert, OTHER)
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", xsrf), "Referer": f"{base}/hub/home"}
    r = s.post(f"{base}/hub/api/users/{OTHER}/server", json={"profile": "spark2"}, headers=headers)
    assert r.status_code in (201, 202), r.text

    def ready():
        model = s.get(f"{base}/hub/api/users/{OTHER}", headers=headers, timeout=30).json()
        return bool(model.get("servers", {}).get("", {}).get("ready"))

    assert _poll(ready, True, timeout=300), cluster.run("hub", "squeue").stdout
    assert s.get(f"{base}/user/{OTHER}/lab", timeout=60).status_code == 200
    kernel = NotebookKernel(s, base, OTHER, sslopt={"ca_certs": hub_cert})
    try:
        # the kernel's start-up began his master and workers: he runs his cell once they are up
        t0 = time.monotonic()
        prestarted = kernel.run("print(spark.wait_prestarted())").strip().splitlines()[-1]
        ready_s = time.monotonic() - t0
        result = json.loads(kernel.run(NOTEBOOK_SPARK_CELL).strip().splitlines()[-1])
        from conftest import REPO

        out = REPO / "test-artifacts" / "notebook-spark.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(
            json.dumps({"daemons_ready_s": ready_s, "first_task_s": result["first_task_s"]})
        )
        yield {**result, "prestarted": prestarted, "session": s, "base": base}
    finally:
        with contextlib.suppress(Exception):
            kernel.close()
        s.delete(f"{base}/hub/api/users/{OTHER}/server", headers=headers, timeout=60)
        _poll(lambda: cluster.run("hub", f"squeue -h -u {OTHER}").stdout.strip(), "", timeout=120)


class TestNotebookSparkThroughTheHub:
    """bob's notebook on the two-worker profile: his ``spark`` is his own cluster."""

    def test_notebook_spark_runs_as_the_researcher_on_both_workers(self, bob_notebook):
        hosts = {(host, uid) for host, uid in bob_notebook["rows"]}
        assert hosts == {("worker1", 3002), ("worker2", 3002)}
        print(f"notebook spark: first task after {bob_notebook['first_task_s']:.1f} s")

    def test_his_kernel_started_his_master_and_workers_before_he_used_spark(self, bob_notebook):
        assert bob_notebook["prestarted"] == "True"

    def test_his_spark_ui_is_his_through_the_hub_with_both_executors(self, bob_notebook):
        s, ui = bob_notebook["session"], f"{bob_notebook['base']}{bob_notebook['ui']}"
        assert bob_notebook["ui"].startswith(f"/user/{OTHER}/spark-ui/")
        assert s.get(f"{ui}jobs/", timeout=60).status_code == 200
        assert s.get(f"{ui}executors/", timeout=60).status_code == 200
        (app,) = s.get(f"{ui}api/v1/applications", timeout=60).json()
        executors = s.get(f"{ui}api/v1/applications/{app['id']}/allexecutors", timeout=60)
        hosts = sorted(e["hostPort"].split(":")[0] for e in executors.json() if e["id"] != "driver")
        assert len(hosts) == 2, executors.text

    def test_another_researcher_gets_nothing_from_his_spark_ui(self, bob_notebook, hub_cert):
        base = bob_notebook["base"]
        port = bob_notebook["ui"].rstrip("/").rsplit("/", 1)[1]
        alice, _ = _login(base, hub_cert, RESEARCHER)
        r = alice.get(f"{base}/user/{OTHER}/spark-ui/{port}/jobs/", timeout=60)
        assert r.status_code in (403, 404) or "/hub/" in r.url  # not bob's page
        assert "Spark Jobs" not in r.text

    def test_killing_the_notebook_kernel_leaves_none_of_his_spark_processes(
        self, cluster, bob_notebook
    ):
        host, pid = bob_notebook["kernel"]
        job = cluster.run("hub", f"squeue -h -u {OTHER} -o %i").stdout.strip()
        session = f"{job}-{pid}-"  # his kernel's cluster (rtofs_lib.jobs.personal.session_id)
        assert any("java" in v for v in _spark_processes(cluster, OTHER, session).values())
        cluster.run(host, f"kill -9 {pid}")
        # (Jupyter restarts a kernel that died: the new one begins a cluster of its own)
        gone = _poll(lambda: _spark_processes(cluster, OTHER, session),
                     {"worker1": "", "worker2": ""}, timeout=90)  # fmt: skip
        assert gone == {"worker1": "", "worker2": ""}
        state = cluster.run("hub", f"squeue -h -u {OTHER} -o %T").stdout.strip()
        assert state == "RUNNING"  # his server goes on; only its Spark is gone


# --- the shared kernel -------------------------------------------------------------------------


def test_shared_kernel_is_installed_on_every_host(cluster):
    for host in HOSTS:
        r = cluster.run(host, "jupyter kernelspec list --json", user=RESEARCHER)
        assert "rtofs" in json.loads(r.stdout)["kernelspecs"], host


def test_upgrading_rtofs_lib_rewrites_the_kernel_spec(cluster):
    spec = "/usr/local/share/jupyter/kernels/rtofs/kernel.json"
    cluster.run("worker1", f"echo '{{\"stale\": true}}' > {spec}")
    # an upgrade in place: rtofs_lib reinstalled (its dependencies left as they are)
    run = run_playbook(
        "--tags", "rtofs", "--limit", "worker1",
        "-e", "rtofs_venv_package_state=forcereinstall",
        "-e", "rtofs_pip_extra_args='--no-index --find-links /srv/wheelhouse --no-deps'",
    )  # fmt: skip
    assert run.rc == 0, run.tail()
    assert "Reinstall the shared kernel" in run.output
    assert (
        cluster.run("worker1", f"cat {spec}").stdout == cluster.run("worker2", f"cat {spec}").stdout
    )


def test_example_notebooks_are_published_read_only_with_a_shared_collab_folder(cluster):
    shared = "/lustre/rtofs/notebooks"
    r = cluster.run("worker2", f"ls {shared}/examples", user=RESEARCHER)
    assert "01_quick_start.ipynb" in r.stdout.split()
    r = cluster.run("worker2", f"touch {shared}/examples/mine.ipynb", user=RESEARCHER, check=False)
    assert r.returncode != 0
    cluster.run("worker2", f"touch {shared}/collab/alice-notes.ipynb", user=RESEARCHER)
    cluster.run("worker1", f"test -r {shared}/collab/alice-notes.ipynb", user=OTHER)
    cluster.run("worker1", f"touch {shared}/collab/bob-notes.ipynb", user=OTHER)


# --- backup and restore (last: it rebuilds the hub) --------------------------------------------


def _hub_users(cluster) -> list[str]:
    """Users in the hub's database (read-only: never creates the file)."""
    db = "file:/var/lib/rtofs-hub/jupyterhub.sqlite?mode=ro"
    code = (
        f"import sqlite3; c = sqlite3.connect({db!r}, uri=True); "
        "print(' '.join(sorted(r[0] for r in c.execute('select name from users'))))"
    )
    return cluster.run("hub", f'python3 -c "{code}"').stdout.split()


def _secrets(cluster) -> list[str]:
    """Checksums of the secrets made once on the hub: the Spark secret and the munge key."""
    sums = cluster.run("hub", "sha256sum /etc/rtofs/spark.secret /etc/munge/munge.key").stdout
    return [line.split()[0] for line in sums.splitlines()]


def test_backup_restores_onto_a_freshly_rebuilt_hub(cluster, hostctl, hub_cert, tmp_path):
    base = f"https://{cluster.address('hub')}:{HUB_PORT}"
    _login(base, hub_cert, OTHER)  # bob exists in the hub's database from now on
    users, secrets = _hub_users(cluster), _secrets(cluster)
    assert OTHER in users
    backup = run_playbook("-e", f"backup_dir={tmp_path}", playbook="backup.yml")
    assert backup.rc == 0, backup.tail()
    (archive,) = tmp_path.glob("rtofs-hub-*.tar.gz")

    hostctl.reset("hub")  # the hub is lost: a new one from bare Debian, converged
    fresh = run_playbook()
    assert fresh.rc == 0, fresh.tail()
    assert _secrets(cluster) != secrets  # a new hub made new ones

    restore = run_playbook("-e", f"backup_file={archive}", playbook="restore.yml")
    assert restore.rc == 0, restore.tail()
    assert _secrets(cluster) == secrets
    assert _hub_users(cluster) == users
    # the restored secrets reached the workers: Spark and Slurm work again
    master = f"http://{cluster.address('hub')}:8080/json/"
    alive = _poll(
        lambda: json.loads(cluster.run("worker1", f"curl -sf {master}").stdout)["aliveworkers"], 2
    )
    assert alive == 2
    nodes = _poll(lambda: cluster.run("hub", "sinfo -h -o %T").stdout.split(), ["idle"])
    assert nodes == ["idle"]
    cluster.run("hub", "srun -N2 -n2 --mem=100M true", user=RESEARCHER, timeout=180)


def _poll(probe, want, timeout: float = 120.0):
    """Call ``probe`` until it returns ``want`` or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value == want or time.monotonic() > deadline:
            return value
        time.sleep(2)


# --- admin playbooks (after the restore: they run on the restored cluster) ---------------------

#: A researcher the inventory does not have yet (password "dave-test-password").
NEW_RESEARCHER = {
    "name": "dave",
    "uid": 3010,
    "comment": "Dave Researcher",
    "password": "$6$rtofstestdave$83LgLIiu51Own0DxLt9ltI6StCpUSGWUkqS60cFID9FvnrZ.Oy7J7nnvCaZhzi"
    ".stAC.fllCnbcg7.3paTdKs1",
}


def test_people_playbook_adds_a_researcher_with_one_uid_everywhere(cluster, hub_cert, tmp_path):
    import yaml

    group_vars = yaml.safe_load((ANSIBLE_DIR / "inventories/test/group_vars/all.yml").read_text())
    extra = tmp_path / "people.json"
    extra.write_text(
        json.dumps({"common_researchers": [*group_vars["common_researchers"], NEW_RESEARCHER]})
    )
    run = run_playbook("-e", f"@{extra}", playbook="people.yml")
    assert run.rc == 0, run.tail()
    for host in HOSTS:
        ids = cluster.run(host, "id -u dave; id -nG dave").stdout.split("\n")
        assert ids[0] == "3010"
        assert "researchers" in ids[1].split()
    PASSWORDS["dave"] = "dave-test-password"
    _login(f"https://{cluster.address('hub')}:{HUB_PORT}", hub_cert, "dave")  # PAM, no restart


def test_rotating_the_spark_secret_reaches_every_host_and_spark_still_runs(cluster):
    def sums() -> set[str]:
        return {
            cluster.run(h, "sha256sum /etc/rtofs/spark.secret").stdout.split()[0] for h in HOSTS
        }

    (before,) = sums()
    run = run_playbook("-e", "rotate=spark", playbook="rotate_secrets.yml")
    assert run.rc == 0, run.tail()
    (after,) = sums()  # one secret, the same on all three hosts
    assert after != before
    master = f"http://{cluster.address('hub')}:8080/json/"
    alive = _poll(
        lambda: json.loads(cluster.run("worker1", f"curl -sf {master}").stdout)["aliveworkers"], 2
    )
    assert alive == 2
    cluster.run("hub", WRITE_JOB)
    r = cluster.run("hub", "python /tmp/sparkjob.py rtofs", user="spark", timeout=300)
    assert "HOSTS worker1,worker2" in r.stdout, r.stderr[-2000:]


def test_rotate_refuses_an_unknown_secret_name(cluster):
    run = run_playbook("-e", "rotate=spark,cookies", playbook="rotate_secrets.yml")
    assert run.rc != 0
    assert "rotate must be a comma-separated subset of spark,munge,hub" in run.output


def test_adding_a_worker_is_a_site_converge_with_it_in_the_inventory(cluster, hostctl, tmp_path):
    """Last: the cluster has three workers from here on (README: "Add a worker")."""
    import yaml

    address = hostctl.SPARE_HOSTS["worker3"]
    hostctl.add("worker3")
    extra = tmp_path / "worker3.yml"
    extra.write_text(
        yaml.safe_dump(
            {"all": {"children": {"workers": {"hosts": {
                "worker3": {"ansible_host": address, "cluster_address": address}
            }}}}}
        )
    )  # fmt: skip
    run = run_playbook("-i", str(extra))
    assert run.rc == 0, run.tail()
    master = f"http://{cluster.address('hub')}:8080/json/"
    alive = _poll(
        lambda: json.loads(cluster.run("worker1", f"curl -sf {master}").stdout)["aliveworkers"], 3
    )
    assert alive == 3
    nodes = _poll(lambda: cluster.run("hub", "sinfo -h -N -o '%N %T'").stdout.splitlines(), [
        "worker1 idle", "worker2 idle", "worker3 idle"
    ])  # fmt: skip
    assert nodes == ["worker1 idle", "worker2 idle", "worker3 idle"]
    r = cluster.run("hub", "srun -N3 -n3 --mem=100M hostname", user=RESEARCHER, timeout=180)
    assert sorted(r.stdout.split()) == ["worker1", "worker2", "worker3"]
