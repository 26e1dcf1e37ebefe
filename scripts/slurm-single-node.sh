#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying gtmd's slurm
# backend and for its tests: munged, slurmctld and slurmd started by hand
# (no systemd needed), configured so several jobs share the node and scancel
# reaches a whole job's process tree.
#
#   scripts/slurm-single-node.sh start   # install if missing (Debian, as root), configure, start, wait until the node is idle
#   scripts/slurm-single-node.sh stop    # stop the daemons
#   scripts/slurm-single-node.sh status  # sinfo
#
# Everything lives under $SLURM_DIR (default /var/tmp/gtmd-slurm): the
# configuration, the state, the logs and the job-completion log that
# `sacct -c` reads (no slurmdbd).
set -euo pipefail

dir="${SLURM_DIR:-/var/tmp/gtmd-slurm}"
conf="$dir/slurm.conf"

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-single-node.sh: run as root (it starts munged as the munge user and the slurm daemons as root)" >&2
    exit 1
  fi
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  echo "installing slurm (Debian packages) ..." >&2
  local pkgs=(slurmctld slurmd slurm-client munge)
  # A fresh image may have no package lists yet.
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; }
}

configure() {
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  local node host
  host="$(hostname -s)"
  # The node as slurmd sees it (CPUs, sockets, memory); less a little
  # memory so the node is never "too small" after a kernel update.
  node="$(slurmd -C | head -n 1)"
  cat >"$conf" <<CONF
ClusterName=gtmd
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ReturnToService=2
# Several jobs at once on the one node: cores and memory are consumable,
# a job takes 300 MB unless it asks, and up to 16 jobs share a core.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerNode=300
# scancel (and a time limit) reaches every process of a job, even ones
# that left its process group.
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
# Finished jobs: kept in squeue for a while, and in a file sacct -c reads.
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
MinJobAge=300
# sbatch to a running job in about a second.
SchedulerParameters=batch_sched_delay=0
MessageTimeout=10
$node State=UNKNOWN
PartitionName=gtmd Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
CONF
  cat >"$dir/cgroup.conf" <<CONF
CgroupPlugin=cgroup/v1
ConstrainCores=no
ConstrainRAMSpace=no
CONF
}

start() {
  need_root
  install
  configure
  export SLURM_CONF="$conf"
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
  fi
  pgrep -x slurmctld >/dev/null || slurmctld -f "$conf"
  pgrep -x slurmd >/dev/null || slurmd -f "$conf"
  local deadline=$((SECONDS + 60))
  until sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "slurm-single-node.sh: the node did not come up within 60 s; see $dir/log" >&2
      sinfo >&2 || true
      tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
      exit 1
    fi
    # A node that registered before slurmctld knew it stays down: resume it.
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 0.5
  done
  echo "SLURM_CONF=$conf"
}

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  local deadline=$((SECONDS + 20))
  while pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null; do
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.2
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$conf" sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
