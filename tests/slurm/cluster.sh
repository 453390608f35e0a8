#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost, for the integration test (tests/test_slurm.py).
#   cluster.sh install     apt-get the Debian packages (munge, slurmctld, slurmd, slurmdbd, mariadb); root only
#   cluster.sh start DIR   write the configs into DIR and start munged, mariadbd, slurmdbd, slurmctld, slurmd;
#                          every daemon's state, socket, log and PID file lives in DIR, so each start is clean
#                          (a stale /var/spool/slurmctld would keep an old DRAIN reason). Clients find the
#                          cluster through /etc/slurm/slurm.conf, a link to DIR/slurm.conf: the executor's
#                          job step drops SLURM_CONF from the environment of its nested srun.
#   cluster.sh stop DIR    stop every daemon that `start DIR` started, by the PIDs in DIR/*.pid
# The node has 2 fake GPUs (gres needs one device file per GPU: /dev/null clones made with mknod) and
# declares 8 CPUs and 32 GB (SlurmdParameters=config_overrides), so profiles/slurm's requests fit on a laptop.
set -euo pipefail
PACKAGES="munge slurmctld slurmd slurmdbd slurm-client mariadb-server"
CLUSTER=mer
PARTITION=gpu      # the partition profiles/slurm asks for
GPUS=2

die() { echo "cluster.sh: $*" >&2; exit 1; }
cannot() { echo "cluster.sh: this machine cannot host the test cluster: $*" >&2; exit 3; }  # the test skips

install() {
  [ "$(id -u)" = 0 ] || cannot "installing packages needs root"
  command -v apt-get >/dev/null || cannot "no apt-get on this machine"
  # Keep the packages' maintainer scripts from starting the services: there is no systemd, and the
  # test starts its own daemons with their state in a fresh directory.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $PACKAGES
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.5 s
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what did not come up within ${secs} s; logs in $DIR"
}

start() {
  [ "$(id -u)" = 0 ] || cannot "starting the cluster needs root (the daemons run as root)"
  for exe in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sacctmgr; do
    command -v "$exe" >/dev/null || cannot "$exe not found; run: bash $0 install"
  done
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  chmod 700 "$DIR"
  mkdir -p "$DIR/ctld" "$DIR/d" "$DIR/db" "$DIR/munge"
  local host db_port=${MER_SLURM_DB_PORT:-16819}
  host=$(hostname -s)
  export SLURM_CONF=$DIR/slurm.conf

  # Clients read /etc/slurm/slurm.conf; never replace a real cluster's file.
  if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    cannot "/etc/slurm/slurm.conf exists and is not ours: this machine already belongs to a cluster"
  fi

  # munge: a new key of our own, on the default socket (sacctmgr ignores AuthInfo=socket=)
  mkdir -p /run/munge
  head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
  chmod 400 "$DIR/munge/munge.key"
  chmod 700 "$DIR/munge"
  munged --force --key-file="$DIR/munge/munge.key" --socket=/run/munge/munge.socket.2 \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munged.seed"
  wait_for 10 munged test -S /run/munge/munge.socket.2

  # mariadb for slurmdbd, on loopback TCP only
  mariadb-install-db --user=root --datadir="$DIR/db" --auth-root-authentication-method=normal \
    > "$DIR/mariadb-install.log" 2>&1
  mariadbd --user=root --datadir="$DIR/db" --socket="$DIR/db.sock" --port="$db_port" \
    --bind-address=127.0.0.1 --pid-file="$DIR/mariadb.pid" --log-error="$DIR/mariadb.log" &
  wait_for 30 mariadbd mariadb --socket="$DIR/db.sock" -uroot -e "select 1"
  mariadb --socket="$DIR/db.sock" -uroot -e \
    "create user 'slurm'@'localhost' identified by 'mer'; grant all on slurm_acct_db.* to 'slurm'@'localhost';
     create user 'slurm'@'127.0.0.1' identified by 'mer'; grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1';"

  # StorageHost is 127.0.0.1: 'localhost' would mean mariadb's default socket, not ours.
  cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=${MER_SLURM_DBD_PORT:-16820}
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=mer
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"

  cat > "$DIR/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${MER_SLURMCTLD_PORT:-16817}
SlurmdPort=${MER_SLURMD_PORT:-16818}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# No cgroups or systemd here: track job processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=${MER_SLURM_DBD_PORT:-16820}
AccountingStorageTRES=gres/gpu
# sacct shows the rule and wildcards that the executor puts in --comment
AccountingStoreFlags=job_comment
# Keep finished jobs visible to squeue too, should a user pick it as the status command.
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=32000 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # One device file per fake GPU (a single /dev/null with Count>1 is fatal; without File= the node drains).
  : > "$DIR/gres.conf"
  for i in $(seq 0 $((GPUS - 1))); do
    mknod -m 666 "$DIR/gpu$i" c 1 3
    echo "NodeName=$host Name=gpu File=$DIR/gpu$i" >> "$DIR/gres.conf"
  done

  mkdir -p /etc/slurm
  ln -sfn "$DIR/slurm.conf" /etc/slurm/slurm.conf
  slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -i add account mer Description=mer Organization=mer >/dev/null
  sacctmgr -i add user "$(id -un)" Account=mer >/dev/null
  slurmctld -f "$DIR/slurm.conf"
  wait_for 30 slurmctld scontrol ping
  slurmd -f "$DIR/slurm.conf"
  wait_for 30 "slurmd (node idle)" sh -c "sinfo -h -N -o %T | grep -qx idle"
  echo "cluster.sh: SLURM cluster '$CLUSTER' up: partition $PARTITION, node $host, $GPUS fake GPUs; SLURM_CONF=$DIR/slurm.conf"
}

stop() {
  local pidfile pid
  # reverse start order; a daemon that never started has no PID file
  for name in slurmd slurmctld slurmdbd mariadb munged; do
    pidfile=$DIR/$name.pid
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$DIR/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
  fi
}

case "${1:-}" in
  install) install ;;
  start) DIR=${2:?usage: cluster.sh start DIR}; start ;;
  stop) DIR=$(cd "${2:?usage: cluster.sh stop DIR}" && pwd); stop ;;
  *) die "usage: cluster.sh install | start DIR | stop DIR" ;;
esac
