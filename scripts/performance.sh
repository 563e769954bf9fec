#!/usr/bin/env bash
# Throughput of each grid on this machine, beside PyTorch eager and picotron, in one sitting and
# interleaved (the machine kind is shared: its speed moves between days, so only numbers measured
# together compare). Prints the table docs/performance.md shows and writes docs/performance.svg.
#
# Workload: the `tiny` preset, micro-batch 4, grad-acc 2, seq 256, float32 (picotron's own
# measurement setting); and smollm-135m in one process (batch 4 × seq 256) against PyTorch eager.
# Ours: `picotron bench` on each grid (in-process ranks; the 8-rank grid also
# under mpirun). PyTorch eager: scripts/torch_llama_bench.py, one process, 2 threads, measured
# before and after our grids in each round. picotron: its tokens/s relative to its own single
# process, measured on this machine kind with huggingface/picotron (torch + gloo, CPU):
# dp 2 0.95, tp 2 0.535, pp 2 (1f1b) 0.626 (afab 0.66, its best schedule: our zb is compared with
# that), cp 2 0.68, dp 2 × tp 2 × pp 2 on 8 processes 0.614,
# its single process 0.98 × PyTorch eager; so picotron's tokens/s today ≈ ratio × 0.98 × eager now.
#
# Usage: scripts/performance.sh [ROUNDS]   (default 2; needs python3, makes a PyTorch venv once:
# about 2 minutes and 5.6 GB, in ~/.cache/picotron/torch-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/picotron/torch-venv"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "making a PyTorch venv in $venv (once)" >&2
  python3 -m venv "$venv" && "$venv/bin/pip" install -q torch numpy >&2
fi
swift build -c release --product picotron >/dev/null
bin="$(swift build -c release --show-bin-path)/picotron"
export OMPI_MCA_pml=ob1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
common=(bench --preset tiny --batch 4 --grad-acc 2 --seq-len 256 --steps 6 --json)
# name | our flags | picotron's ratio | mpirun processes (0: in-process)
grids='single|--ranks 1|1.0|0
dp 2|--dp 2|0.95|0
tp 2|--tp 2|0.535|0
pp 2 (1f1b)|--pp 2 --pp-engine 1f1b|0.626|0
pp 2 (zb)|--pp 2 --pp-engine zb|0.66|0
cp 2|--cp 2|0.68|0
dp 2 × tp 2|--dp 2 --tp 2||0
dp 2 × tp 2 × pp 2|--dp 2 --tp 2 --pp 2|0.614|0
dp 2 × tp 2 × pp 2 (zb)|--dp 2 --tp 2 --pp 2 --pp-engine zb|0.614|0
dp 2 × tp 2 × pp 2, mpirun|--dp 2 --tp 2 --pp 2|0.614|8'
eager() { "$venv/bin/python" scripts/torch_llama_bench.py --preset tiny --batch 4 --grad-acc 2 --seq-len 256 --threads 2 \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])'; }
for round in $(seq "$rounds"); do
  echo "round $round" >&2
  eager >> "$out/eager"
  while IFS='|' read -r name flags ratio np; do
    # shellcheck disable=SC2086
    if [ "$np" -gt 0 ]; then line=$(timeout 900 mpirun -np "$np" --oversubscribe "$bin" "${common[@]}" $flags | grep '^{')
    else line=$(timeout 900 "$bin" "${common[@]}" $flags | grep '^{'); fi
    echo "$name|$ratio|$line" >> "$out/ours"
    echo "  $name: $(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["tokens_per_second"]))' "$line") tokens/s" >&2
  done <<< "$( [ $((round % 2)) = 1 ] && echo "$grids" || echo "$grids" | tac )"   # every other round in reverse: no grid always first
  eager >> "$out/eager"
  # The step's matrix products alone, OpenBLAS beside PyTorch's BLAS (MKL), in one process.
  "$venv/bin/python" scripts/matmul_ceiling.py --preset tiny --batch 4 --seq-len 256 --threads 2 >> "$out/gemm"
  # The other preset, single process: PyTorch eager, ours, PyTorch eager.
  for who in eager ours eager; do
    if [ "$who" = eager ]; then
      "$venv/bin/python" scripts/torch_llama_bench.py --preset smollm-135m --batch 4 --seq-len 256 --steps 3 --threads 2 \
        | python3 -c 'import json,sys; print("eager", json.load(sys.stdin)["tokens_per_second"])' >> "$out/smol"
    else
      "$bin" bench --preset smollm-135m --steps 3 --json | grep '^{' \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); print("ours", r["tokens_per_second"], r["mfu"])' >> "$out/smol"
    fi
  done
done
python3 - "$out" "$(nproc) cores,$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2)" <<'PY'
import json, statistics, sys, collections
out = sys.argv[1]
eager = [float(x) for x in open(f"{out}/eager")]
now = statistics.median(eager)
runs = collections.OrderedDict()
for line in open(f"{out}/ours"):
    name, ratio, js = line.rstrip("\n").split("|", 2)
    runs.setdefault((name, ratio), []).append(json.loads(js))
print(f"PyTorch eager, one process, 2 threads: {min(eager):.0f}–{max(eager):.0f} tokens/s (median {now:.0f}) "
      f"over {len(eager)} runs between ours\n")
print("| grid | ranks | ours, tokens/s | MFU | picotron, tokens/s (≈ ratio × 0.98 × eager) | ours ÷ picotron |")
print("|---|---|---|---|---|---|")
bars = []
for (name, ratio), rs in runs.items():
    tps = statistics.median(r["tokens_per_second"] for r in rs)
    mfu = statistics.median(r["mfu"] for r in rs)
    spread = f" ({min(r['tokens_per_second'] for r in rs):.0f}–{max(r['tokens_per_second'] for r in rs):.0f})" if len(rs) > 1 else ""
    pico = float(ratio) * 0.98 * now if ratio else None
    print(f"| {name} | {rs[0]['ranks']} | {tps:.0f}{spread} | {100*mfu:.0f}% | "
          + (f"{pico:.0f} | {tps/pico:.2f}× |" if pico else "not measured | — |"))
    bars.append((name, tps, pico))
# docs/performance.svg: ours and picotron's tokens/s per grid, horizontal bars.
w, row, left = 760, 34, 210
top = max(max(t, p or 0) for _, t, p in bars)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{70 + row * len(bars)}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="20" font-size="14">tokens/s per grid, tiny (mbs 4 × grad-acc 2 × seq 256), {sys.argv[2]}</text>',
       '<rect x="10" y="30" width="12" height="10" fill="#2b6cb0"/><text x="26" y="39">Picotron.swift</text>',
       '<rect x="130" y="30" width="12" height="10" fill="#dd8452"/><text x="146" y="39">picotron (ratio × PyTorch eager measured now)</text>']
for i, (name, tps, pico) in enumerate(bars):
    y = 55 + i * row
    scale = (w - left - 70) / top
    svg.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{name}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{tps * scale:.1f}" height="12" fill="#2b6cb0"/>')
    svg.append(f'<text x="{left + tps * scale + 4:.1f}" y="{y + 10}">{tps:.0f}</text>')
    if pico:
        svg.append(f'<rect x="{left}" y="{y + 13}" width="{pico * scale:.1f}" height="12" fill="#dd8452"/>')
        svg.append(f'<text x="{left + pico * scale + 4:.1f}" y="{y + 23}">{pico:.0f}</text>')
svg.append('</svg>')
smol = [l.split() for l in open(f"{out}/smol")]
e = [float(x[1]) for x in smol if x[0] == "eager"]
o = [float(x[1]) for x in smol if x[0] == "ours"]
m = [float(x[2]) for x in smol if x[0] == "ours"]
print(f"\nsmollm-135m, one process, batch 4 × seq 256: ours {min(o):.0f}–{max(o):.0f} tokens/s "
      f"(MFU {100*min(m):.0f}–{100*max(m):.0f}%), PyTorch eager {min(e):.0f}–{max(e):.0f}: "
      f"{statistics.median(o)/statistics.median(e):.2f}× eager (medians)")
g = [json.loads(l) for l in open(f"{out}/gemm")]
ob = statistics.median(x["openblas_ms"] for x in g); mk = statistics.median(x["torch_ms"] for x in g)
each = ", ".join("%.2f×" % x["torch_over_openblas"] for x in g)
print(f"\nthe matrix products of a tiny step (forward, input and weight gradients of every linear layer, "
      f"{g[0]['gflop']} GFLOP per micro-batch), best of 7 each: OpenBLAS {ob:.0f} ms "
      f"({g[0]['gflop'] / ob * 1e3:.0f} GFLOP/s), PyTorch's BLAS {mk:.0f} ms ({g[0]['gflop'] / mk * 1e3:.0f} GFLOP/s): "
      f"{ob / mk:.2f}× (medians of {len(g)} rounds; rounds {each})")
open("docs/performance.svg", "w").write("\n".join(svg) + "\n")
print("\n(wrote docs/performance.svg)")
PY
