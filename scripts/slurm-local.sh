#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying `picotron submit-slurm` without a cluster.
#
# Installs Debian's Slurm (slurmctld, slurmd, the client commands, the PMIx plugin) and MUNGE, writes a
# munge key and /etc/slurm/slurm.conf, starts munged, slurmctld and slurmd as plain background daemons
# (no systemd needed: it works in a container), and waits until `sinfo` shows the node idle.
# The node claims 8 CPUs whatever the machine has (SlurmdParameters=config_overrides), so a job of
# 8 ranks fits a 2-core laptop: the ranks share the cores, as `mpirun --oversubscribe` does.
# Safe to run again: it installs only what is missing, keeps the key, and starts only what is not running.
# Needs root (or sudo).  Usage: scripts/slurm-local.sh        Stop: scripts/slurm-local.sh --stop
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: slurm-local.sh needs root or sudo (it installs and starts daemons)" >&2; exit 1; }
  sudo="sudo"
fi
node="$(hostname -s)"
conf=/etc/slurm/slurm.conf

running() { [ -f "$1" ] && $sudo kill -0 "$(cat "$1")" 2>/dev/null; }   # a pid file whose process lives

if [ "${1:-}" = "--stop" ]; then
  for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    running "$pidfile" || continue
    echo "stopping $(basename "$pidfile" .pid) (pid $(cat "$pidfile"))"
    $sudo kill "$(cat "$pidfile")"
  done
  exit 0
fi

# 1. Packages. slurm-wlm-basic-plugins holds mpi/pmix (srun --mpi=pmix); slurm-client holds sbatch, srun, sinfo.
packages=(munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "packages present: ${packages[*]}"
fi

# 2. MUNGE: Slurm's daemons and commands authenticate each other with a shared key.
$sudo mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  echo "writing a munge key: /etc/munge/munge.key"
  $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$sudo chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
$sudo chmod 0400 /etc/munge/munge.key
$sudo chmod 0755 /run/munge
if running /run/munge/munged.pid; then
  echo "munged is running (pid $(cat /run/munge/munged.pid))"
else
  echo "starting munged"
  $sudo runuser -u munge -- /usr/sbin/munged
fi

# 3. slurm.conf: one node, one partition, no accounting, no cgroups (containers rarely allow them).
cpus=8
memory_mb=$(( $(awk '/^MemTotal/ { print $2 }' /proc/meminfo) / 1024 * 9 / 10 ))
new_conf="$(cat <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster for trying picotron submit-slurm.
ClusterName=picotron
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# Processes are tracked through /proc and tasks are not bound: no cgroups needed.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# The node is what this file says (8 CPUs), not what slurmd finds: 8 ranks fit a 2-core machine.
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)"
$sudo mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf_changed=0
if [ "$(cat "$conf" 2>/dev/null)" != "$new_conf" ]; then
  echo "writing $conf: node $node with $cpus CPUs and ${memory_mb} MB, partition local"
  printf '%s\n' "$new_conf" | $sudo tee "$conf" >/dev/null
  conf_changed=1
else
  echo "$conf is current"
fi

# 4. The daemons. A changed config restarts them, so they never run an older one.
for daemon in slurmctld slurmd; do
  pidfile=/run/$daemon.pid
  if running "$pidfile" && [ $conf_changed = 1 ]; then
    echo "restarting $daemon (the config changed)"
    $sudo kill "$(cat "$pidfile")"
    for _ in $(seq 50); do running "$pidfile" || break; sleep 0.2; done
  fi
  if running "$pidfile"; then
    echo "$daemon is running (pid $(cat "$pidfile"))"
  else
    echo "starting $daemon"
    if ! $sudo "/usr/sbin/$daemon"; then
      echo "error: $daemon did not start; its log:" >&2
      $sudo tail -20 "/var/log/slurm/$daemon.log" >&2
      exit 1
    fi
  fi
done

# 5. Wait until the node takes jobs. A node left down by an earlier run is resumed.
state=""
for _ in $(seq 60); do
  state="$(sinfo -h -n "$node" -o %t 2>/dev/null | head -1 || true)"
  case "$state" in
    idle|mix|alloc) break ;;
    down*|drain*) $sudo scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
case "$state" in
  idle|mix|alloc) ;;
  *) echo "error: node $node is '${state:-not known}' after 60 s; the logs:" >&2
     $sudo tail -10 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2
     exit 1 ;;
esac
sinfo
echo "Slurm is up: partition local, node $node ($cpus CPUs). Try: srun -n 2 hostname"
