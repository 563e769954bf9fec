#!/usr/bin/env bash
# Proves the output printed in the lessons is what the commands print today. In a lesson, a
# block of real output is delimited like this:
#
#   <!-- output: swift run lesson-dp --ranks 2 -->
#   ```
#   …what the command prints…
#   ```
#   <!-- end output -->
#
# For each block the script runs the command (`swift run NAME ARGS` runs the already built
# NAME from the build directory, so build chatter never enters the output), then compares with
# the block. Lines that depend on timing start with "~ " (LessonOutput.timingMark): on those,
# numbers become "#", bars between |…| become "|…|" and runs of spaces one space, on both sides,
# before the diff. Every
# other line must match exactly.
#
# Usage:
#   scripts/check-lesson-output.sh                          # every Lessons/*.md
#   scripts/check-lesson-output.sh Lessons/01-data-parallel.md
#   scripts/check-lesson-output.sh --update Lessons/01-data-parallel.md   # rewrite the blocks
# SCRATCH_PATH selects the build directory (default .build); SKIP_BUILD=1 uses it as it is.
set -uo pipefail
cd "$(dirname "$0")/.."

update=0
if [[ "${1:-}" == "--update" ]]; then update=1; shift; fi
lessons=("$@")
((${#lessons[@]} > 0)) || lessons=(Lessons/[0-9]*.md)
scratch="${SCRATCH_PATH:-.build}"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    swift build --scratch-path "$scratch" >/dev/null 2>&1 || { echo "FAIL: swift build failed"; exit 1; }
fi
bin="$(swift build --scratch-path "$scratch" --show-bin-path)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Rounding-level differences (|Δ| printed as 1.2e-08, anything below 1e-4) depend on the CPU's
# BLAS kernel and summation order, not on the code: they are compared as "<1e-4"; the PASS/FAIL
# beside them is still compared exactly.
mask() { sed -E '/^~ /{ s/\|[^|]*\|/|…|/g; s/[0-9]+(\.[0-9]+)?/#/g; s/ +/ /g; }' \
    | sed -E 's/[0-9]\.[0-9]+e-(0[5-9]|[1-9][0-9])/<1e-4/g; s/0\.0e\+00/<1e-4/g' | sed -E 's/[[:space:]]+$//'; }

problems=0
blocks=0
for lesson in "${lessons[@]}"; do
    # Each block's command, one per line.
    mapfile -t commands < <(grep -oE '^<!-- output: .* -->$' "$lesson" | sed -E 's/^<!-- output: (.*) -->$/\1/')
    for i in "${!commands[@]}"; do
        cmd="${commands[$i]}"
        blocks=$((blocks + 1))
        # The expected text: lines of block i, without the ``` fences.
        awk -v want="$((i + 1))" '
            /^<!-- output: .* -->$/ { n++; inside = (n == want); next }
            /^<!-- end output -->$/ { inside = 0; next }
            inside && !/^```/ { print }' "$lesson" >"$tmp/expected"
        read -r -a words <<<"$cmd"
        if [[ "${words[0]}" == swift && "${words[1]}" == run ]]; then
            words=("$bin/${words[2]}" "${words[@]:3}")
        fi
        start=$SECONDS
        "${words[@]}" >"$tmp/actual" 2>"$tmp/stderr"
        status=$?
        if ((status != 0)); then
            sed 's/^/    | /' "$tmp/stderr" | tail -10
            echo "FAIL: $lesson: \`$cmd\` exited $status"
            problems=$((problems + 1))
            continue
        fi
        if ((update)); then
            python3 - "$lesson" "$((i + 1))" "$tmp/actual" <<'PY'
import sys
path, want, actual = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read().rstrip("\n")
lines, out, n, inside = open(path).read().split("\n"), [], 0, False
for line in lines:
    if line.startswith("<!-- output: ") and line.endswith(" -->"):
        n += 1; out.append(line); inside = n == want
        if inside: out += ["```", actual, "```"]
        continue
    if line == "<!-- end output -->": inside = False
    if not inside: out.append(line)
open(path, "w").write("\n".join(out))
PY
            echo "updated: $lesson: \`$cmd\`"
            continue
        fi
        if diff -u <(mask <"$tmp/expected") <(mask <"$tmp/actual") >"$tmp/diff"; then
            echo "ok: $lesson: \`$cmd\` ($(wc -l <"$tmp/actual") lines, $((SECONDS - start)) s)"
        else
            sed 's/^/    /' "$tmp/diff" | head -40
            echo "FAIL: $lesson: \`$cmd\` prints something else than the lesson shows (- lesson, + now);"
            echo "      if the change is intended: scripts/check-lesson-output.sh --update $lesson"
            problems=$((problems + 1))
        fi
    done
done

((blocks > 0)) || { echo "FAIL: no <!-- output: … --> blocks found in ${lessons[*]}"; exit 1; }
((problems == 0)) || { echo "$problems lesson output block(s) differ"; exit 1; }
echo "all $blocks lesson output block(s) match"
