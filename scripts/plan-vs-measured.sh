#!/usr/bin/env bash
# `picotron plan`'s prediction beside a measured run, grid by grid: predicted and measured tokens/s,
# estimated and measured peak memory of the process (in-process ranks: one process holds them all).
# Usage: scripts/plan-vs-measured.sh [BIN_DIR] (default: a release build). Extra grids: GRIDS="--dp 2;--tp 2".
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-$(swift build -c release --show-bin-path)}"
[ -x "$bin/picotron" ] || swift build -c release --product picotron
model="${MODEL:-tiny}"; steps="${STEPS:-6}"
IFS=';' read -r -a grids <<< "${GRIDS:---dp 1;--dp 2;--tp 2;--pp 2 --grad-acc 4;--cp 2;--dp 2 --tp 2 --pp 2 --grad-acc 4}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '%-34s %12s %12s %10s %14s %14s\n' "grid ($model, mbs 4, seq 256)" "predicted" "measured" "ratio" "estimate" "peak RSS"
for grid in "${grids[@]}"; do
  # shellcheck disable=SC2086
  plan=$("$bin/picotron" plan --model "$model" --mbs 4 --seq-len 256 $grid || true)
  predicted=$(grep -E '^  step ' <<< "$plan" | grep -oE '[0-9]+ tokens/s' | grep -oE '[0-9]+')
  estimate=$(grep -E 'ranks? on this machine' <<< "$plan" | sed -E 's/.* = ([0-9.]+ [KMG]iB) of .*/\1/')
  out="$work/run"; rm -rf "$out"
  # shellcheck disable=SC2086
  /usr/bin/time -f '%M' -o "$work/rss" "$bin/picotron" train --model "$model" --mbs 4 --seq-len 256 $grid \
      --steps "$steps" --sample 0 --out-dir "$out" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  # the median tokens/s of the steps after the first (which includes start-up work)
  measured=$(grep -oE '"tokens_per_second":[0-9.]+' "$out/metrics.jsonl" | tail -n +2 | cut -d: -f2 | sort -n \
      | awk '{a[NR]=$1} END {print int(a[int((NR+1)/2)])}')
  rss=$(awk '{printf "%.2f GiB", $1 / 1048576}' "$work/rss")
  ratio=$(awk -v p="$predicted" -v m="$measured" 'BEGIN {printf "%.2f", m / p}')
  printf '%-34s %12s %12s %10s %14s %14s\n' "$grid" "$predicted" "$measured" "$ratio" "$estimate" "$rss"
done
echo "(tokens/s: predicted by picotron plan, measured: median of steps 2-$steps of picotron train; ratio = measured / predicted)"
