#!/usr/bin/env bash
# `picotron train` under mpirun prints the losses of a single process on the same global batch:
# data parallel (dp 2), tensor parallel (tp 2) and both (dp 2 × tp 2 on 4 processes); pipeline
# parallel (pp 2 with each engine, 2 micro-batches of 4) and dp 2 × pp 2; context parallel (cp 2,
# zigzag ring attention) and cp 2 × dp 2; three 3D grids on 8 processes (dp 2 × pp 2 × tp 2 with 1f1b, cp 2 × pp 2
# × tp 2, cp 2 × dp 2 × tp 2 with the contiguous layout) and dp 2 × tp 2 over TCP alone (`--mca btl tcp,self`: what
# two machines without shared memory use); sequence parallelism with tp 2 and in dp 2 × pp 2 × tp 2;
# ZeRO-1 (dp 2, dp 2 × pp 2 × tp 2 on 8 processes, and with sequence parallelism); a checkpoint of 8 processes resumed in one. scripts/grid-matrix.sh
# runs every grid.
# Usage: scripts/ci-train-mpi.sh BUILD_DIR   (the folder holding the built picotron)
set -euo pipefail
bin="${1:?usage: scripts/ci-train-mpi.sh BUILD_DIR}/picotron"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"

# 4 steps of 8 sequences × 32 bytes; the parallel runs split the same 8 sequences.
common=(train --steps 4 --seq-len 32 --sample 0 --log-every 1)
"$bin" "${common[@]}" --mbs 8 --out-dir "$out/single" >/dev/null
losses() { sed -E 's/.*"loss":([-0-9.e+]+).*/\1/' "$out/$1/metrics.jsonl"; }

status=0
mpi_flags=()
check() {   # name, np, flags…
  local name=$1 np=$2; shift 2
  timeout 300 mpirun -np "$np" --oversubscribe "${mpi_flags[@]}" "$bin" "${common[@]}" "$@" --out-dir "$out/$name" >"$out/$name.log" 2>&1 \
    || { echo "FAIL: mpirun -np $np ${mpi_flags[*]:+${mpi_flags[*]} }picotron train $*: exit $?"; tail -5 "$out/$name.log"; status=1; return; }
  # Same float32 terms summed in another order: within 1e-5 relative (a missing average or a
  # wrong shard is off by 1e-2).
  if paste <(losses "$name") <(losses single) | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1 } END { exit bad }'; then
    echo "ok: mpirun -np $np ${mpi_flags[*]:+${mpi_flags[*]} }picotron train $* prints the single-process losses: $(losses "$name" | tr '\n' ' ')"
  else
    echo "FAIL: mpirun -np $np ${mpi_flags[*]:+${mpi_flags[*]} }picotron train $*: losses $(losses "$name" | tr '\n' ' ') vs single $(losses single | tr '\n' ' ')"
    status=1
  fi
}
check dp 2 --dp 2 --mbs 4
check tp 2 --tp 2 --mbs 8
check dptp 4 --dp 2 --tp 2 --mbs 4
check pp 2 --pp 2 --mbs 4 --grad-acc 2
check ppafab 2 --pp 2 --pp-engine afab --mbs 4 --grad-acc 2
check ppinterleaved 2 --pp 2 --pp-engine interleaved --mbs 4 --grad-acc 2
check ppzb 4 --dp 2 --pp 2 --pp-engine zb --mbs 2 --grad-acc 2
check dppp 4 --dp 2 --pp 2 --mbs 2 --grad-acc 2
check cp 2 --cp 2 --mbs 8
check cpdp 4 --cp 2 --dp 2 --mbs 4
check dppptp 8 --dp 2 --pp 2 --tp 2 --pp-engine 1f1b --mbs 2 --grad-acc 2
check cppptp 8 --cp 2 --pp 2 --tp 2 --mbs 4 --grad-acc 2
check cpdptp 8 --cp 2 --dp 2 --tp 2 --cp-layout contiguous --mbs 4
check tpsp 2 --tp 2 --sequence-parallel --mbs 8
check dppptpsp 8 --dp 2 --pp 2 --tp 2 --sequence-parallel --mbs 2 --grad-acc 2
check zero 2 --dp 2 --zero 1 --mbs 4
check zerodppptp 8 --dp 2 --pp 2 --tp 2 --zero 1 --mbs 2 --grad-acc 2
check zerosp 4 --dp 2 --tp 2 --zero 1 --sequence-parallel --mbs 4
mpi_flags=(--mca btl tcp,self)
check dptptcp 4 --dp 2 --tp 2 --mbs 4
mpi_flags=()

# A checkpoint written by 8 processes (each parameter assembled over its tp group and sent from its
# stage to rank 0, one at a time) resumes in one process with the losses of the uninterrupted run.
echo '{"checkpoint": {"save_frequency": 2}}' > "$out/every2.json"
timeout 300 mpirun -np 8 --oversubscribe "$bin" "${common[@]}" --dp 2 --pp 2 --tp 2 --mbs 2 --grad-acc 2 \
    --config "$out/every2.json" --out-dir "$out/save3d" >"$out/save3d.log" 2>&1 \
  || { echo "FAIL: the 8-process run that saves checkpoints"; tail -5 "$out/save3d.log"; status=1; }
"$bin" "${common[@]}" --mbs 4 --grad-acc 2 --config "$out/every2.json" --load-path "$out/save3d/ckpt/step-000002" \
    --out-dir "$out/resumed" >"$out/resumed.log" 2>&1 || { echo "FAIL: resuming the 8-process checkpoint"; tail -5 "$out/resumed.log"; status=1; }
if [ "$(losses resumed | wc -l)" = 2 ] && paste <(losses resumed) <(losses save3d | tail -n +3) \
    | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1 } END { exit bad }'; then
  echo "ok: one process resumes the dp 2 × pp 2 × tp 2 checkpoint with its losses: $(losses resumed | tr '\n' ' ')"
else
  echo "FAIL: resumed losses $(losses resumed | tr '\n' ' ') vs the 8-process run's $(losses save3d | tail -n +3 | tr '\n' ' ')"
  status=1
fi
exit $status
