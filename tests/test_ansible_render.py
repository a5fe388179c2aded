"""The roles' files, rendered without a host, match the reviewed copies.

Two sets: the release-dependent files (apt sources, Java, cgroup.conf) for every Debian
release, and, from the production inventory, what the roles write for hardware this machine
lacks (LNet module options, the Lustre fstab line, the IPoIB network) plus slurm.conf,
spark-defaults.conf, rtofs.toml and, on the scheduler host, the crawl timer and the stream
units (``tests/data/ansible/render_cluster.yml``; golden copies in
``tests/data/golden/ansible/production/<host>/``). There is no separate lnet.conf: LNet is
configured by its module options.

Debian 10 buster cannot be booted here (its archive is not reachable), so its apt sources,
its Java repository and its Java settings are checked this way; the other releases too, so
a template change shows up for every release at once. The reviewed copies are in
``tests/data/golden/ansible/<release>/``; after a deliberate change, regenerate them with
``tests/data/ansible/render_release.yml`` (its header shows the command) and review the diff.
"""

from __future__ import annotations

import pytest
from conftest import REPO, run_playbook

GOLDEN = REPO / "tests" / "data" / "golden" / "ansible"
RELEASES = ("buster", "bullseye", "bookworm", "trixie")


@pytest.fixture(scope="module", params=RELEASES)
def rendered(request, tmp_path_factory):
    """(release, folder) with the files render_release.yml wrote for that release."""
    out = tmp_path_factory.mktemp(f"render-{request.param}")
    run = run_playbook(
        "-e", f"release={request.param}", "-e", f"out_dir={out}",
        playbook=str(REPO / "tests" / "data" / "ansible" / "render_release.yml"),
        inventory="localhost,", timeout=300,
    )  # fmt: skip
    assert run.rc == 0, run.tail()
    return request.param, out


def test_rendered_files_match_the_reviewed_copies(rendered):
    release, out = rendered
    got = {p.name: p.read_text() for p in sorted(out.iterdir())}
    want = {p.name: p.read_text() for p in sorted((GOLDEN / release).iterdir())}
    assert got == want


def test_buster_takes_its_packages_from_the_archive_without_point_release_updates():
    sources = (GOLDEN / "buster" / "sources.list").read_text()
    lines = [line for line in sources.splitlines() if line.startswith("deb ")]
    assert lines == [
        "deb http://archive.debian.org/debian buster main",
        "deb http://archive.debian.org/debian-security buster/updates main",
    ]


def test_only_buster_gets_a_java_repository_outside_debian():
    have = {r for r in RELEASES if (GOLDEN / r / "java.list").exists()}
    assert have == {"buster"}
    assert "temurin-17" in (GOLDEN / "buster" / "settings.txt").read_text()


# --- the hardware this machine lacks, and the cluster-wide files -------------------------------

PRODUCTION = GOLDEN / "production"


@pytest.fixture(scope="module")
def cluster_files(tmp_path_factory):
    """Folder with one sub-folder per production host, written by render_cluster.yml."""
    out = tmp_path_factory.mktemp("render-cluster")
    run = run_playbook(
        "-e", f"out_dir={out}",
        playbook=str(REPO / "tests" / "data" / "ansible" / "render_cluster.yml"),
        inventory="production", timeout=300,
    )  # fmt: skip
    assert run.rc == 0, run.tail()
    return out


@pytest.mark.parametrize("host", ["hub", "worker1", "worker2"])
def test_cluster_files_match_the_reviewed_copies(cluster_files, host):
    got = {p.name: p.read_text() for p in sorted((cluster_files / host).iterdir())}
    want = {p.name: p.read_text() for p in sorted((PRODUCTION / host).iterdir())}
    assert got == want


def test_lnet_runs_over_the_infiniband_interface():
    lines = (PRODUCTION / "worker1" / "modprobe-lustre.conf").read_text().splitlines()
    assert 'options lnet networks="o2ib0(ib0)"' in lines


def test_lustre_mount_waits_for_lnet_and_the_network_and_has_flock():
    fields = (PRODUCTION / "worker1" / "fstab-line").read_text().split()
    assert fields[:3] == ["10.20.0.1@o2ib0:10.20.0.2@o2ib0:/ocean", "/lustre", "lustre"]
    options = fields[3].split(",")
    assert {"_netdev", "flock", "x-systemd.requires=lnet.service"} <= set(options)


def test_ipoib_address_is_the_hosts_cluster_address_with_no_route_out():
    text = (PRODUCTION / "worker2" / "ipoib.network").read_text()
    assert "Name=ib0" in text and "Address=10.20.0.12/24" in text
    assert "Gateway" not in text


def test_every_host_gets_the_same_slurm_conf_listing_both_workers():
    texts = {(PRODUCTION / h / "slurm.conf").read_text() for h in ("hub", "worker1", "worker2")}
    assert len(texts) == 1
    (text,) = texts
    assert "SlurmctldHost=hub(10.20.0.10)" in text
    assert "NodeName=worker1 NodeAddr=10.20.0.11" in text
    assert "NodeName=worker2 NodeAddr=10.20.0.12" in text


def test_spark_defaults_authenticate_encrypt_and_keep_rest_off():
    conf = dict(
        line.split(None, 1)
        for line in (PRODUCTION / "hub" / "spark-defaults.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert conf["spark.authenticate"] == "true"
    assert conf["spark.network.crypto.enabled"] == "true"
    assert conf["spark.master.rest.enabled"] == "false"
    assert conf["spark.master"] == "spark://10.20.0.10:7077"


def test_spark_defaults_hold_no_secret_and_spark_env_reads_it_only_where_readable():
    defaults = (PRODUCTION / "hub" / "spark-defaults.conf").read_text()
    assert "spark.authenticate.secret" not in defaults
    env = (PRODUCTION / "hub" / "spark-env.sh").read_text()
    assert "if [ -r /etc/rtofs/spark.secret ]; then" in env


def _unit_lines(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_the_crawl_starts_before_each_publication_wave_and_starts_nothing_after_it():
    timer = (PRODUCTION / "hub" / "rtofs-crawl.timer").read_text()
    assert _unit_lines(timer, "OnCalendar") == [
        "*-*-* 03:05 UTC", "*-*-* 09:05 UTC", "*-*-* 15:05 UTC"
    ]  # fmt: skip
    crawl = (PRODUCTION / "hub" / "rtofs-crawl.service").read_text()
    assert "--follow" in _unit_lines(crawl, "ExecStart")[0].split()
    assert "OnSuccess" not in crawl


def test_the_stream_runs_its_driver_on_the_hub_against_the_cluster_as_the_maps_owner():
    stream = (PRODUCTION / "hub" / "rtofs-stream.service").read_text()
    assert _unit_lines(stream, "ExecStart") == [
        "/opt/rtofs/venv/bin/rtofs stream --master spark://10.20.0.10:7077"
    ]
    assert _unit_lines(stream, "User") == ["spark"]
    assert _unit_lines(stream, "Restart") == ["on-failure"]
    assert "spark.cores.max=8" in stream


def test_only_the_scheduler_host_gets_the_crawl_and_the_stream():
    for worker in ("worker1", "worker2"):
        assert not list((PRODUCTION / worker).glob("rtofs-*"))


def test_every_host_keeps_the_streams_checkpoint_on_local_disk():
    texts = {(PRODUCTION / h / "rtofs.toml").read_text() for h in ("hub", "worker1", "worker2")}
    assert len(texts) == 1
    (text,) = texts
    assert 'stream_checkpoint = "/var/lib/rtofs/stream"' in text.splitlines()
