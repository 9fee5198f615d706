#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying the project's Slurm sweeps on one
# workstation and for `make test-slurm`. Needs root (munge and slurmd run as root here).
#
#   scripts/slurm_local.sh install   # apt-get install slurmctld slurmd slurm-client munge (Debian/Ubuntu)
#   scripts/slurm_local.sh start     # write the config sized from this machine, start munge (if not
#                                    # running) and the two daemons, wait until the node is idle
#   scripts/slurm_local.sh status    # the daemons this script started, and sinfo
#   scripts/slurm_local.sh stop      # stop exactly the daemons this script started
#   scripts/slurm_local.sh env       # the line to eval so that sbatch/sinfo use this cluster
#
# Everything lives in $SLURM_LOCAL_DIR (default /tmp/rcollapse-slurm): slurm.conf, spool, state,
# logs and the pids of what was started. Clients find the cluster through SLURM_CONF, which
# `eval "$(scripts/slurm_local.sh env)"` exports (the Makefile's test-slurm does it); jobs inherit
# it. Idempotent: start on a running cluster and stop on a stopped one do nothing.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/rcollapse-slurm}"
CONF="$DIR/slurm.conf"
CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-6818}"
HOST="$(hostname -s)"
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "slurm_local: $*" >&2; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        log "packages already installed ($(slurmctld -V))"
        return
    fi
    command -v apt-get >/dev/null || { log "no apt-get: install ${PACKAGES[*]} with your package manager"; exit 1; }
    log "installing ${PACKAGES[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >"$DIR/apt.log" 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >"$DIR/apt.log" 2>&1; } \
        || { log "apt-get failed; see $DIR/apt.log"; exit 1; }
}

write_config() {
    local cpus mem_mb
    cpus="$(nproc)"
    # leave 1 GiB to the system; RealMemory in MB
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF" <<CONF
# written by scripts/slurm_local.sh: a single-node cluster sized from $(hostname)
ClusterName=rcollapse-local
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already serving (ours or the system's): leave it
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged --force
    else
        munged --force
    fi
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    pgrep -n -x munged >"$DIR/munged.started.pid"
    log "munged started (pid $(cat "$DIR/munged.started.pid"))"
}

start() {
    mkdir -p "$DIR"
    command -v slurmctld >/dev/null || { log "Slurm is not installed: run '$0 install' first"; exit 1; }
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        log "already running"
        return
    fi
    write_config
    start_munge
    alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF" -c
    alive "$DIR/slurmd.pid" || slurmd -f "$CONF" -c
    export SLURM_CONF="$CONF"
    for _ in $(seq 60); do
        state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)"
        [[ "$state" == idle ]] && { log "node $HOST idle ($(nproc) CPUs); $(echo_env)"; return; }
        sleep 0.5
    done
    log "the node did not become idle in 30 s (state: ${state:-unknown}); logs in $DIR/log"
    exit 1
}

stop_pidfile() {
    local file="$1" name="$2"
    if alive "$file"; then
        local pid
        pid="$(cat "$file")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        log "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

stop() {
    if [[ -f "$CONF" ]] && alive "$DIR/slurmctld.pid"; then
        SLURM_CONF="$CONF" scancel --user="$(id -un)" 2>/dev/null || true  # no job outlives the cluster
    fi
    stop_pidfile "$DIR/slurmd.pid" slurmd
    stop_pidfile "$DIR/slurmctld.pid" slurmctld
    stop_pidfile "$DIR/munged.started.pid" munged  # only if this script started it
    # job steps started by slurmd (slurmstepd) end with their jobs; a leftover one is ours too
    pkill -f "slurmstepd.*" 2>/dev/null || true
}

status() {
    local running=0
    for name in slurmctld slurmd munged.started; do
        if alive "$DIR/$name.pid"; then
            echo "${name%.started} running (pid $(cat "$DIR/$name.pid"))"
            running=1
        fi
    done
    if (( running )) && [[ -f "$CONF" ]]; then
        SLURM_CONF="$CONF" sinfo
    else
        echo "not running"
    fi
}

echo_env() { echo "export SLURM_CONF=$CONF"; }

case "${1:-}" in
    install) mkdir -p "$DIR"; install_packages ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo_env ;;
    *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
