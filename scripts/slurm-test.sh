#!/usr/bin/env bash
# End-to-end test of `splatforge batch --slurm` on a real, single-node Slurm cluster started
# here, in a temporary folder, for the length of the test.
#
#   bash scripts/slurm-test.sh [path/to/splatforge]     (default: target/release/splatforge)
#
# Needs root and Debian's slurm-wlm and munge packages (.ci/run installs them). No systemd and
# no cgroups: the script starts munged, slurmctld and slurmd itself (proctrack/linuxproc,
# task/none), on ports 16817/16818 and its own munge socket, so it does not touch a cluster
# the machine may belong to, and stops them on exit. Training runs on whatever Vulkan device
# the jobs see (the software driver in CI: export WGPU_BACKEND=vulkan and XDG_RUNTIME_DIR,
# which sbatch passes on to the jobs).
#
# What it checks:
#  1. `batch <file> --slurm --submit` submits a 2-task job array for a batch of two runs (the
#     demo scene at -r 8, seeds 0 and 1) and a summary job after it; all of them complete,
#     each task trains its own run (shard 0/2 and 1/2), and the summary lists both runs as
#     done with their metrics.
#  2. Submitting again skips both runs (they are done) and completes.
# Takes about a minute on 2 CPU cores with the software Vulkan driver.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/splatforge}")
TIMEOUT_S=${SLURM_TEST_TIMEOUT_S:-900}

fail() {
  echo "slurm-test: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "needs root (it starts munged, slurmctld and slurmd)"
[ -x "$BIN" ] || fail "no splatforge binary at $BIN (cargo build --release)"
for tool in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo runuser; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install slurm-wlm munge)"
done

WORK=$(mktemp -d /tmp/splatforge-slurm.XXXXXX)
chmod 755 "$WORK"
DAEMONS=()
cleanup() {
  local status=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    scancel --quiet --user=root 2>/dev/null || true
  fi
  for pid in "${DAEMONS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$WORK/munge/munged.pid" ]; then kill "$(cat "$WORK/munge/munged.pid")" 2>/dev/null || true; fi
  for pid in "${DAEMONS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    echo "--- slurmctld.log (tail)"; tail -n 20 "$WORK/slurmctld.log" 2>/dev/null || true
    echo "--- slurmd.log (tail)"; tail -n 20 "$WORK/slurmd.log" 2>/dev/null || true
    for log in "$WORK"/study/output/slurm/logs/*.log; do
      [ -f "$log" ] && { echo "--- $log (tail)"; tail -n 30 "$log"; }
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

# Polls `$@` every 0.2 s until it succeeds; fails after $1 seconds naming $2.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

started=$SECONDS

# --- munge: a key and a socket of our own
mkdir -p "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$WORK/munge"
chmod 700 "$WORK/munge"
chmod 400 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
runuser -u munge -- munged --key-file="$WORK/munge/munge.key" --socket="$SOCKET" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
  --seed-file="$WORK/munge/munged.seed"
munge_roundtrip() { munge -n -S "$SOCKET" | unmunge -S "$SOCKET"; }
wait_for 20 "munged" munge_roundtrip
chmod 755 "$WORK/munge" # slurm reaches the socket

# --- slurm: one node (this machine), one partition
HOST=$(hostname -s)
export SLURM_CONF="$WORK/slurm.conf"
mkdir -p "$WORK/state" "$WORK/spool"
cat >"$SLURM_CONF" <<CONF
ClusterName=splatforge-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
MinJobAge=3600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -i >/dev/null 2>&1 &
DAEMONS+=($!)
wait_for 30 "slurmctld" scontrol ping
slurmd -D >/dev/null 2>&1 &
DAEMONS+=($!)
node_idle() { [ "$(sinfo -h -n "$HOST" -o %t)" = "idle" ]; }
wait_for 30 "slurmd (node idle)" node_idle
echo "slurm-test: cluster up in $((SECONDS - started)) s"

# --- the batch: two tiny runs of the demo scene
STUDY="$WORK/study"
mkdir -p "$STUDY"
cat >"$STUDY/study.ron" <<RON
(
    output: "output",
    runs: [(
        config: "$ROOT/configs/demo.ron",
        scenes: ["$ROOT/assets/demo"],
        seeds: [0, 1],
        set: [
            "model.resolution=8",
            "optimization.iterations=200",
            "optimization.position_lr_max_steps=200",
            "optimization.densify_from_iter=50",
            "optimization.densify_until_iter=150",
            "optimization.densification_interval=50",
            "run.test_iterations=[100]",
            "run.save_iterations=[]",
        ],
    )],
)
RON
cd "$STUDY"

# Submits the array and its summary job; waits until both have left the queue and checks
# that every job completed. Prints the array's job id.
submit_and_wait() {
  local out array summary
  out=$("$BIN" batch study.ron --slurm --gpus-per-task 0 --submit) || fail "submission: $out"
  echo "$out" >&2
  array=$(sed -n 's/^Submitted job array \([0-9]*\) and summary job \([0-9]*\)$/\1/p' <<<"$out")
  summary=$(sed -n 's/^Submitted job array \([0-9]*\) and summary job \([0-9]*\)$/\2/p' <<<"$out")
  [ -n "$array" ] && [ -n "$summary" ] || fail "no job ids in: $out"
  queue_empty() { [ -z "$(squeue -h -j "$array,$summary" 2>/dev/null)" ]; }
  wait_for "$TIMEOUT_S" "jobs $array and $summary to finish" queue_empty
  local states
  states=$(scontrol show job "$array" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort | uniq -c)
  [ "$(scontrol show job "$array" | grep -c 'JobState=COMPLETED')" -eq 2 ] ||
    fail "array tasks did not all complete: $states"
  scontrol show job "$summary" | grep -q 'JobState=COMPLETED' || fail "summary job did not complete"
  echo "$array"
}

array=$(submit_and_wait)
logs="$STUDY/output/slurm/logs"
for task in 0 1; do
  log="$logs/${array}_$task.log"
  [ -f "$log" ] || fail "no log $log"
  grep -q "shard $task/2, 1 of 2 runs" "$log" || fail "task $task did not run shard $task/2: $(cat "$log")"
  grep -q "demo/seed$task\$" "$log" || fail "task $task did not train demo/seed$task: $(cat "$log")"
done
csv="$STUDY/output/summary_runs.csv"
[ -f "$csv" ] || fail "the summary job wrote no $csv"
for seed in 0 1; do
  grep -q "^demo/seed$seed,demo,demo,,$seed,done,,200,200,test," "$csv" ||
    fail "summary lacks demo/seed$seed as done: $(cat "$csv")"
done
grep -q '"status": "done"' "$STUDY/output/summary.json" || fail "summary.json has no finished run"
echo "slurm-test: array $array trained both runs, summary lists them ($((SECONDS - started)) s)"

# --- again: both runs are done and are skipped
array=$(submit_and_wait)
for task in 0 1; do
  grep -q "demo/seed$task: done, skipped" "$logs/${array}_$task.log" ||
    fail "task $task did not skip its finished run: $(cat "$logs/${array}_$task.log")"
done
echo "slurm-test: resubmitted array $array skipped both finished runs"
echo "slurm-test: passed in $((SECONDS - started)) s"
