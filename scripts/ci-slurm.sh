#!/usr/bin/env bash
# `picotron submit-slurm` on a real Slurm: starts a one-node cluster here (scripts/slurm-local.sh), writes two
# 4-rank runs (dp 2 × tp 2) with `picotron create-config`, submits one started by `srun --mpi=pmix` and one by
# `mpirun`, waits until each run's status.txt says completed, then checks that `picotron extract-metrics` lists
# both as completed with a positive tokens/s. On a failure it prints the job's log. Needs root (it installs Slurm).
# Usage: scripts/ci-slurm.sh BUILD_DIR   (the folder holding the built picotron)
set -euo pipefail
bin="$(cd "${1:?usage: scripts/ci-slurm.sh BUILD_DIR}" && pwd)/picotron"
cd "$(dirname "$0")/.."
bash scripts/slurm-local.sh

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cd "$out"
# What the ranks need under MPI on one machine (README, "Running on many processes and machines");
# submit-slurm writes these into the job scripts.
export OMPI_MCA_pml=ob1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

status=0
for launcher in srun mpirun; do
  run="runs/$launcher/dp2_tp2"
  "$bin" create-config --out_dir "runs/$launcher" --exp_name dp2_tp2 --dp 2 --tp 2 --model_name micro --mbs 2 \
      --seq_len 32 >/dev/null
  # create-config has no step count (as picotron's): 4 steps keep the job short.
  sed -i 's/"total_train_steps" : [0-9]*/"total_train_steps" : 4/' "$run/config.json"
  "$bin" submit-slurm --inp_dir "runs/$launcher" --launcher "$launcher" --time 00:05:00
  if [ "$(cat "$run/status.txt")" = init ]; then
    echo "FAIL: $launcher: status.txt still says init after submitting"; status=1; continue
  fi

  deadline=$((SECONDS + 600))
  while :; do
    state="$(cat "$run/status.txt")"
    case "$state" in completed|fail|oom|timeout) break ;; esac
    if [ $SECONDS -ge $deadline ]; then echo "FAIL: $launcher: still $state after 10 minutes"; squeue; break; fi
    sleep 2
  done
  if [ "$state" = completed ]; then
    steps=$(grep -c '^{' "$run/metrics.jsonl")
    echo "ok: $launcher: the job ran picotron train on 4 ranks; status.txt says completed; $steps steps in metrics.jsonl"
  else
    echo "FAIL: $launcher: status $state; the job's log:"
    cat "$run"/log_*.out || true
    status=1
  fi
done

"$bin" extract-metrics --inp_dir runs
cat runs/global_metrics.csv
for launcher in srun mpirun; do
  # run,status,...: the run's status (column 2) and tokens/s (column 14).
  row="$(grep "^$launcher/dp2_tp2," runs/global_metrics.csv || true)"
  if echo "$row" | awk -F, '$2 == "completed" && $12 == 4 && $14 > 0 { ok = 1 } END { exit !ok }'; then
    echo "ok: global_metrics.csv: $launcher/dp2_tp2 completed, 4 steps, $(echo "$row" | cut -d, -f14) tokens/s"
  else
    echo "FAIL: global_metrics.csv has no completed row of 4 steps with positive tokens/s for $launcher/dp2_tp2: '$row'"
    status=1
  fi
done
exit $status
