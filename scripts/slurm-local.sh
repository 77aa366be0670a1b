#!/usr/bin/env bash
# A single-node Slurm on this machine for the Slurm executor's tests (as root; idempotent): installs
# Debian's slurm-wlm and munge, writes slurm.conf for this host (its real CPUs and memory, no
# accounting database, linuxproc process tracking, no task plugin), starts munged, slurmctld and
# slurmd, and waits until `sinfo` shows the node idle. `scripts/slurm-local.sh down` stops them.
set -euo pipefail

if [[ ${1:-up} == down ]]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        [[ -s $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    echo "slurm-local.sh: needs root (apt-get and the Slurm daemons)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-local: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq slurm-wlm munge </dev/null >/dev/null
fi

host=$(hostname -s)
# What slurmd sees on this machine (CPUs, sockets, cores, memory), so the node registers as valid.
hardware=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
memory=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$hardware")
# Leave some memory out of the node's configured total: jobs asking for all of it never start.
hardware=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((memory * 9 / 10))/" <<<"$hardware")

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
conf=$(cat <<CONF
# Written by nic's scripts/slurm-local.sh: a one-node test cluster.
ClusterName=nic-local
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MaxArraySize=10001
MinJobAge=300
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host $hardware State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
)
if [[ ! -f /etc/slurm/slurm.conf ]] || [[ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]]; then
    printf '%s\n' "$conf" > /etc/slurm/slurm.conf
    changed=1
fi

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
chmod 0700 /etc/munge

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged
fi
# A controller started before this configuration (by the package's own service, say) must restart.
if [[ ${changed:-0} == 1 ]] || { running /run/slurmctld.pid && [[ /etc/slurm/slurm.conf -nt /proc/$(cat /run/slurmctld.pid) ]]; }; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        [[ -s $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 2
fi
running /run/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 1 60); do
    state=$(sinfo --noheader --nodes="$host" --format=%t 2>/dev/null | head -1 || true)
    case $state in
        idle|mix|alloc) echo "slurm-local: node $host $state"; exit 0 ;;
        down*|drain*|fail*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "slurm-local: the node did not become idle (sinfo: ${state:-nothing}); see /var/log/slurm/" >&2
exit 1
