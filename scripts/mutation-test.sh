#!/usr/bin/env bash
# The mutation suite: do the step tests catch every plausible student bug? Each bug of
# Tests/Mutants/StepN_*.mutants is a small edit of a task's marked lines in solutions/. They are
# all compiled into one mutant track (generate-exercises --mutants: each behind a switch, so one
# build serves them all); then, for each mutant, the tests that name its task run with that bug
# switched on. A mutant is killed when those tests fail with a message that names the task
# (`Step2.8…`). It survives when they pass; a failure that names no task, or a crash, also counts
# against the suite: a student must be told which task is wrong.
#
# Usage:
#   scripts/mutation-test.sh              every mutant
#   scripts/mutation-test.sh Step2.8      the mutants of one task (any id prefix)
# SCRATCH_PATH overrides the build directory (default .build-mutants).
set -uo pipefail
cd "$(dirname "$0")/.."
only="${1:-}"
scratch="${SCRATCH_PATH:-.build-mutants}"
log="$(mktemp)"; out="$(mktemp)"
trap 'rm -f "$log" "$out"' EXIT

start=$SECONDS
swift build --product generate-exercises >"$log" 2>&1 || { cat "$log"; echo "FAIL: generate-exercises does not build"; exit 1; }
"$(swift build --show-bin-path)/generate-exercises" --mutants ${only:+--partial} || { echo "FAIL: the mutants do not apply"; exit 1; }
export PICOTRON_TRACK=mutants
if ! swift build --build-tests --scratch-path "$scratch" >"$log" 2>&1; then
    grep -E "error:" "$log" | head -20
    echo "FAIL: the mutant track does not compile"
    exit 1
fi
xctest="$(swift build --scratch-path "$scratch" --show-bin-path)/PicotronPackageTests.xctest"
echo "ok: the mutant track builds ($((SECONDS - start)) s)"

# With no mutant switched on the track is the solution: the tests of every task pass.
all="$(cut -f3 mutants/manifest.tsv | tr ',' '\n' | sort -u | paste -sd, -)"
if ! timeout 600 "$xctest" "$all" >"$out" 2>&1; then
    grep -E "error:" "$out" | head -10
    echo "FAIL: the task tests fail on the mutant track with no mutant switched on"
    exit 1
fi

killed=0; survived=0; unnamed=0; declare -A count kill
while IFS=$'\t' read -r id task filter title; do
    [[ -n "$only" && "$id" != "$only"* ]] && continue
    count[$task]=$(( ${count[$task]:-0} + 1 ))
    PICOTRON_MUTANT="$id" timeout 300 "$xctest" "$filter" >"$out" 2>&1
    status=$?
    pattern="${task//./\\.}([^0-9]|$)"
    if [[ $status == 0 ]]; then
        echo "SURVIVED $id ($title): $filter passed"
        survived=$((survived + 1))
    elif grep -E "^.+:[0-9]+: error: " "$out" | grep -E "$pattern" >/dev/null; then   # not -q: the first grep must finish
        kill[$task]=$(( ${kill[$task]:-0} + 1 ))
        killed=$((killed + 1))
    else
        why="$(grep -m1 -E "error: |Fatal error|Precondition failed|signal" "$out" | cut -c1-240)"
        echo "UNNAMED  $id ($title): failed without naming $task (exit $status): ${why:-no message}"
        unnamed=$((unnamed + 1))
    fi
done < mutants/manifest.tsv

printf '%-8s %8s %7s\n' task mutants killed
for task in $(printf '%s\n' "${!count[@]}" | sort -V); do
    printf '%-8s %8d %7d\n' "$task" "${count[$task]}" "${kill[$task]:-0}"
done
echo "mutation suite: $killed killed, $survived survived, $unnamed failed without naming the task ($((SECONDS - start)) s)"
exit $(( survived + unnamed > 0 ))
