#!/usr/bin/env bash
# The equivalence matrix: every way to factor 2, 4 and 8 processes into dp × pp × cp × tp that the micro preset
# allows, each pipeline engine, each context-parallel layout, run under mpirun and checked against the losses of
# one process on the same global batch. Writes the table to docs/grids.md and prints `N passed, N failed`.
#
# The micro preset bounds the grid: 4 layers (pp ≤ 4; interleaved needs 2 chunks per stage, so pp ≤ 2 there),
# 4 heads and 2 kv heads (tp ∈ {1, 2}), sequences of 32 (zigzag cuts them into 2·cp chunks: cp ∈ {1, 2, 4, 8}).
# The global batch is 8 sequences: mbs × grad_acc × dp = 8, with grad_acc = pp when pp > 1 so that each stage
# has pp micro-batches in flight (a pipeline with one micro-batch has no schedule to compare).
# Usage: scripts/grid-matrix.sh BUILD_DIR   (the folder holding the built picotron; a release build is faster)
set -euo pipefail
bin="${1:?usage: scripts/grid-matrix.sh BUILD_DIR}/picotron"
root="$(cd "$(dirname "$0")/.." && pwd)"
table="$root/docs/grids.md"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

common=(train --steps 4 --seq-len 32 --sample 0 --log-every 1)
"$bin" "${common[@]}" --mbs 8 --out-dir "$out/single" >/dev/null
losses() { sed -E 's/.*"loss":([-0-9.e+]+).*/\1/' "$out/$1/metrics.jsonl" 2>/dev/null | tr '\n' ' '; }
single="$(losses single)"

rows=() passed=0 failed=0 n=0
run() {   # np, dp, pp, cp, tp, engine, layout
  local np=$1 dp=$2 pp=$3 cp=$4 tp=$5 engine=$6 layout=$7
  local ga=1; [ "$pp" -gt 1 ] && ga=$pp
  local mbs=$((8 / (dp * ga)))
  local flags=(--dp "$dp" --pp "$pp" --cp "$cp" --tp "$tp" --mbs "$mbs" --grad-acc "$ga")
  local what=()
  [ "$pp" -gt 1 ] && { flags+=(--pp-engine "$engine"); what+=("$engine"); }
  [ "$cp" -gt 1 ] && { flags+=(--cp-layout "$layout"); what+=("$layout"); }
  n=$((n + 1))
  local name="run$n" start=$SECONDS result
  if timeout 300 mpirun -np "$np" --oversubscribe "$bin" "${common[@]}" "${flags[@]}" --out-dir "$out/$name" \
       >"$out/$name.log" 2>&1; then
    # Same float32 terms summed in another order: within 1e-5 relative (a missing average or a wrong
    # shard is off by 1e-2).
    if paste <(losses "$name" | tr ' ' '\n' | sed '/^$/d') <(echo "$single" | tr ' ' '\n' | sed '/^$/d') \
         | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) bad = 1; k++ } END { exit bad || k != 4 }'; then
      result=pass
    else
      result="FAIL (losses differ)"
    fi
  else
    result="FAIL (exit $?)"
  fi
  local seconds=$((SECONDS - start)) grid="dp $dp × pp $pp × cp $cp × tp $tp"
  local detail="${what[*]:-–}"
  if [ "$result" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); tail -5 "$out/$name.log"; fi
  echo "$result: $grid ${what[*]} (mpirun -np $np, mbs $mbs, grad-acc $ga): $(losses "$name")(${seconds}s)"
  rows+=("| $grid | ${detail// / · } | $np | $result | $(losses "$name" | sed 's/ $//; s/ / | /g') | $seconds |")
}

for np in 2 4 8; do
  for tp in 1 2; do for cp in 1 2 4 8; do for pp in 1 2 4; do
    [ $((np % (tp * cp * pp))) -eq 0 ] || continue
    dp=$((np / (tp * cp * pp)))
    engines=(1f1b); [ "$pp" -gt 1 ] && engines=(afab 1f1b zb) && [ $((pp * 2)) -le 4 ] && engines+=(interleaved)
    layouts=(zigzag); [ "$cp" -gt 1 ] && layouts=(zigzag contiguous)
    for engine in "${engines[@]}"; do for layout in "${layouts[@]}"; do
      run "$np" "$dp" "$pp" "$cp" "$tp" "$engine" "$layout"
    done; done
  done; done; done
done

{
  echo "# The equivalence matrix"
  echo
  echo "Every factorisation of 2, 4 and 8 processes into dp × pp × cp × tp that the micro preset allows, each"
  echo "pipeline engine and each context-parallel layout, trained for 4 steps under \`mpirun\` on the same global batch"
  echo "of 8 sequences × 32 bytes (mbs × grad-acc × dp = 8, grad-acc = pp when pp > 1). A grid passes when it prints"
  echo "the losses of one process within 1e-5 relative: $(echo "$single" | sed 's/ $//; s/ /, /g')."
  echo
  echo "Reproduce it with \`swift build -c release && scripts/grid-matrix.sh .build/release\`; it rewrites this file."
  echo "Seconds are wall-clock on a 2-core machine, processes oversubscribed."
  echo
  echo "| grid | engine · layout | ranks | result | loss 1 | loss 2 | loss 3 | loss 4 | seconds |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "$passed passed, $failed failed."
} >"$table"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
