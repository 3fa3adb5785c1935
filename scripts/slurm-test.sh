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
# What it checks, with a batch of two runs (the demo scene at -r 8 for 200 steps, seeds 0 and
# 1) submitted by `splatforge batch <file> --slurm --submit` as a 2-task job array plus a
# summary job that runs after it:
#  1. Task 0 gets SIGTERM while training (what Slurm sends on preemption): it finishes the
#     step, saves a checkpoint and exits with 143; task 1 trains its run (shard 1/2) to the
#     end; the summary job lists one run stopped and one done.
#  2. Submitted again, task 0 resumes its run from the checkpoint, task 1 skips its finished
#     run, every job completes and the summary lists both runs as done with final metrics.
# Takes 2-3 minutes on 2 CPU cores with the software Vulkan driver (measured 169 s on a busy
# 2-core machine).
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
chmod 755 "$WORK/munge" # munged wants the socket's folder searchable by all
chmod 400 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
runuser -u munge -- munged --key-file="$WORK/munge/munge.key" --socket="$SOCKET" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
  --seed-file="$WORK/munge/munged.seed"
munge_roundtrip() { munge -n -S "$SOCKET" | unmunge -S "$SOCKET"; }
wait_for 20 "munged" munge_roundtrip

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
            "run.save_iterations=[10]",
        ],
    )],
)
RON
cd "$STUDY"
logs="$STUDY/output/slurm/logs"
csv="$STUDY/output/summary_runs.csv"

# Submits the array and its summary job; sets $array and $summary.
submit() {
  local out
  out=$("$BIN" batch study.ron --slurm --gpus-per-task 0 --submit) || fail "submission: $out"
  echo "$out"
  array=$(sed -n 's/^Submitted job array \([0-9]*\) and summary job \([0-9]*\)$/\1/p' <<<"$out")
  summary=$(sed -n 's/^Submitted job array \([0-9]*\) and summary job \([0-9]*\)$/\2/p' <<<"$out")
  [ -n "$array" ] && [ -n "$summary" ] || fail "no job ids in: $out"
}
queue_empty() { [ -z "$(squeue -h -j "$array,$summary" 2>/dev/null)" ]; }
job_state() { scontrol show job "$1" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1; }
expect_state() {
  local state
  state=$(job_state "$1")
  [ "$state" = "$2" ] || fail "job $1 is $state, expected $2: $(cat "$3" 2>/dev/null)"
}
expect_row() { grep -q "^demo/seed$1,demo,demo,,$1,$2," "$csv" || fail "summary lacks demo/seed$1 $2: $(cat "$csv")"; }

# 1. Task 0 gets SIGTERM mid-run (as on preemption): it saves its run and exits 143; task 1
#    trains its run to the end; the summary job, after both, lists one stopped, one done.
submit
marker="$STUDY/output/demo/seed0/point_cloud/iteration_10/point_cloud.ply"
wait_for "$TIMEOUT_S" "task 0 to start training" test -f "$marker"
scancel --batch --signal=TERM "${array}_0"
wait_for "$TIMEOUT_S" "jobs $array and $summary to finish" queue_empty
log0="$logs/${array}_0.log"
log1="$logs/${array}_1.log"
expect_state "${array}_0" FAILED "$log0"
scontrol show job "${array}_0" | grep -q "ExitCode=143:0" || fail "task 0 did not exit with 143"
grep -q "Terminated (SIGTERM): finishing this step" "$log0" || fail "task 0 log: $(cat "$log0")"
ls "$STUDY"/output/demo/seed0/chkpnt*.sfck >/dev/null || fail "task 0 saved no checkpoint"
expect_state "${array}_1" COMPLETED "$log1"
expect_state "$summary" COMPLETED "$logs/summary_$summary.log"
for task in 0 1; do
  log="$logs/${array}_$task.log"
  grep -q "shard $task/2, 1 of 2 runs" "$log" || fail "task $task did not run shard $task/2: $(cat "$log")"
  grep -q "demo/seed$task\$" "$log" || fail "task $task did not train demo/seed$task: $(cat "$log")"
done
expect_row 0 stopped
expect_row 1 done
echo "slurm-test: array $array: task 0 stopped by SIGTERM and saved, task 1 done ($((SECONDS - started)) s)"

# 2. Again: task 0 resumes its run from the checkpoint, task 1 skips its finished run, and
#    the summary lists both as done.
submit
wait_for "$TIMEOUT_S" "jobs $array and $summary to finish" queue_empty
for task in 0 1; do expect_state "${array}_$task" COMPLETED "$logs/${array}_$task.log"; done
expect_state "$summary" COMPLETED "$logs/summary_$summary.log"
grep -q "demo/seed0: resuming from .*chkpnt[0-9]*.sfck" "$logs/${array}_0.log" ||
  fail "task 0 did not resume: $(cat "$logs/${array}_0.log")"
grep -q "demo/seed1: done, skipped" "$logs/${array}_1.log" ||
  fail "task 1 did not skip its finished run: $(cat "$logs/${array}_1.log")"
expect_row 0 done
expect_row 1 done
grep -q "^demo/seed0,demo,demo,,0,done,,200,200,test," "$csv" || fail "no final metrics: $(cat "$csv")"
echo "slurm-test: array $array resumed the stopped run and skipped the finished one"
echo "slurm-test: passed in $((SECONDS - started)) s"
