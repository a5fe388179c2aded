#!/usr/bin/env bash
# Managed by Ansible (RTOFS platform); local changes are overwritten.
# Sourced by every Spark launcher on this host (daemons, spark-submit, pyspark drivers).
# Bind RPC, block manager and web UIs to the cluster address only.
export SPARK_LOCAL_IP=10.20.0.11
export SPARK_PUBLIC_DNS=10.20.0.11
export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
export PYSPARK_PYTHON=/opt/rtofs/venv/bin/python
export SPARK_LOG_DIR=/var/log/spark
export SPARK_NO_DAEMONIZE=1
# The cluster's secret, for the daemons (and their executors) of the service account only:
# the file is readable by spark and root; in the environment, not on a command line.
if [ -r /etc/rtofs/spark.secret ]; then
  _SPARK_AUTH_SECRET="$(cat /etc/rtofs/spark.secret)"
  export _SPARK_AUTH_SECRET
fi
