#!/usr/bin/env bash
# CI for the exercise track: the student's starting point must compile, and its tests must fail
# only at the TODOs. Builds with PICOTRON_TRACK=exercises (each Step module from exercises/) in
# its own scratch path, runs the given step test targets, and passes only if
#   - the build succeeds,
#   - at least one test fails (the TODOs are still there), and
#   - every failure message is a TODO message ("… is not written yet — read Lessons/…"),
#     and no test crashed.
#
# Usage:
#   scripts/check-exercises.sh                                   # Step1_DataParallelTests
#   scripts/check-exercises.sh Step2_TensorParallelTests          # another lesson
#   scripts/check-exercises.sh Step1_DataParallelTests Step2_TensorParallelTests
# On a student's own track (exercises/ edited, so it differs from what the solutions generate)
# it instead reports which tasks still fail, and passes when every test passes.
# SCRATCH_PATH overrides the build directory (default .build-exercises).
set -uo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
((${#targets[@]} > 0)) || targets=(Step1_DataParallelTests)
scratch="${SCRATCH_PATH:-.build-exercises}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# A student's track: exercises/ is no longer what the solutions generate (TODOs were filled). Then
# this is not CI's check of the untouched track but the student's: report each step's tests and
# which tasks still fail, and pass when they all pass.
swift build --product generate-exercises >"$log" 2>&1 || { cat "$log"; exit 1; }
if ! "$(swift build --show-bin-path)/generate-exercises" >"$log" 2>&1 && grep -q "^stale: " "$log"; then
    export PICOTRON_TRACK=exercises
    echo "exercises/ holds your work (it differs from the untouched track): checking it against the tests"
    swift build --build-tests --scratch-path "$scratch" >"$log" 2>&1 || { grep -E "error:" "$log" | head -20;
        echo "your exercise track does not compile"; exit 1; }
    failed=0
    for target in "${targets[@]}"; do
        swift test --skip-build --scratch-path "$scratch" --filter "$target" >"$log" 2>&1
        summary="$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 | sed -E 's/^[[:space:]]+//')"
        tasks="$(grep -E "^.+:[0-9]+: error: " "$log" | grep -oE "Step[0-9]+\.[0-9]+" | sort -uV | paste -sd' ' -)"
        if grep -qE "^.+:[0-9]+: error: |Exited with (unexpected )?signal|Fatal error" "$log"; then
            echo "not yet: $target: $summary; tasks to look at: ${tasks:-see the messages below}"
            grep -E "^.+:[0-9]+: error: |Fatal error" "$log" | head -5 | sed 's/^/    | /'
            failed=1
        else
            echo "done: $target: $summary, every task passes"
        fi
    done
    exit $failed
fi
export PICOTRON_TRACK=exercises

start=$SECONDS
if ! swift build --build-tests --scratch-path "$scratch" >"$log" 2>&1; then
    grep -E "error:" "$log" | head -20
    echo "FAIL: the exercise track does not compile (PICOTRON_TRACK=exercises swift build --build-tests)"
    exit 1
fi
echo "ok: the exercise track compiles ($((SECONDS - start)) s)"

problems=0
for target in "${targets[@]}"; do
    start=$SECONDS
    # swift test exits non-zero whenever a test fails, which is the expected case here.
    swift test --skip-build --scratch-path "$scratch" --filter "$target" >"$log" 2>&1
    status=$?
    summary="$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 | sed -E 's/^[[:space:]]+//')"
    # XCTest prints one line per failure: "<file>:<line>: error: <Class>.<test> : <message…>".
    failures="$(grep -E "^.+:[0-9]+: error: " "$log")"
    todo="$(grep -c "is not written yet" <<<"$failures")"
    other="$(grep -v "is not written yet" <<<"$failures" | grep -c .)"
    if [[ -z "$summary" ]] || grep -qE "Exited with (unexpected )?signal|Fatal error|fatal error" "$log"; then
        tail -20 "$log" | sed 's/^/    | /'
        echo "FAIL: $target: the test run crashed or printed no summary (exit $status): a TODO must return a harmless value"
        problems=$((problems + 1))
    elif [[ -z "$failures" ]]; then
        echo "FAIL: $target: no test failed ($summary): are the TODOs still in exercises/?"
        problems=$((problems + 1))
    elif ((other > 0)); then
        grep -v "is not written yet" <<<"$failures" | head -10 | sed 's/^/    | /'
        echo "FAIL: $target: $other failure(s) are not TODO messages: the exercise fails somewhere else than at a TODO"
        problems=$((problems + 1))
    else
        tasks="$(grep -oE "Step[0-9]+\.[0-9]+: [^ ]+ " <<<"$failures" | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')"
        echo "ok: $target: $summary, every failure at a TODO ($tasks) ($((SECONDS - start)) s)"
    fi
done

((problems == 0)) || { echo "$problems exercise check(s) failed"; exit 1; }
echo "all exercise checks passed"
