#!/usr/bin/env bash
# Install what the platform needs on a fresh Debian machine, then a venv.
#   scripts/setup.sh VENV demo   Java (Spark) and the platform's Python packages: `make demo`
#   scripts/setup.sh VENV test   also the services and tools the tests start: `make test`
set -euo pipefail
venv=${1:-.venv}
profile=${2:-test}
here=$(cd "$(dirname "$0")/.." && pwd)

apt_packages=(
  openjdk-17-jre-headless   # Spark (pyspark's bin/spark-class)
  python3-venv              # the venv below
)
extras=demo
if [ "$profile" = test ]; then
  apt_packages+=(
    curl                      # crawler benchmark baseline
    slurmctld slurmd slurm-client munge   # the hub's SlurmSpawner (tests start them as daemons)
    libpam-modules libpam-runtime         # PAM login
    chromium fonts-liberation             # browser tests (Playwright drives /usr/bin/chromium)
    nodejs                                # configurable-http-proxy for the hub (nodesource nodejs ships npm)
    systemd-container debootstrap apt-cacher-ng   # tests/hosts: three booted Debian hosts for Ansible
  )
  extras=dev
elif [ "$profile" != demo ]; then
  echo "setup: profile must be 'demo' or 'test', not '$profile'" >&2
  exit 2
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e "$here[$extras]"
# An editable install leaves out the package's data files (setuptools#3399); a wheel puts this
# one in place itself: it enables the Spark UI route of every Jupyter server in the venv.
install -D -m 0644 "$here/jupyter-config/jupyter_server_config.d/rtofs-spark-ui.json" \
  "$venv/etc/jupyter/jupyter_server_config.d/rtofs-spark-ui.json"
if [ "$profile" = test ]; then
  # Spark's classes for the personal clusters' JVMs (rtofs_lib/jobs/classdata.py): kept when current
  "$venv/bin/python" -m rtofs_lib.jobs.classdata build
  npm install --silent --prefix "$here/.node" configurable-http-proxy@^4.6.3  # hub proxy (hub_config/README.md)
fi
