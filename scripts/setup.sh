#!/usr/bin/env bash
# Install everything the platform and its tests need on a fresh Debian machine:
# Debian packages (Java for Spark, and the services the tests start), then a venv.
set -euo pipefail
venv=${1:-.venv}
here=$(cd "$(dirname "$0")/.." && pwd)

apt_packages=(
  openjdk-17-jre-headless   # Spark (pyspark's bin/spark-class)
  curl                      # crawler benchmark baseline
  slurmctld slurmd slurm-client munge   # the hub's SlurmSpawner (tests start them as daemons)
  libpam-modules libpam-runtime python3-venv   # PAM login; python3-venv for the tests' user env
  chromium fonts-liberation             # viewer browser test (Playwright drives /usr/bin/chromium)
  nodejs                                # configurable-http-proxy for the hub (nodesource nodejs ships npm)
  systemd-container debootstrap apt-cacher-ng   # tests/hosts: three booted Debian hosts for Ansible
)
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
"$venv/bin/python" -m pip install -q -e "$here[dev]"
npm install --silent --prefix "$here/.node" configurable-http-proxy@^4.6.3  # hub proxy (hub_config/README.md)
