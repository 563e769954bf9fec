#!/usr/bin/env bash
# The MPI half of CI: runs `picotron selftest comm` under mpirun with 2, 4 and 8 ranks, and
# checks that a rank that fails on purpose (throws, or exits) ends the whole job quickly
# with a non-zero status and a message naming the rank, and that a rank that stalls is caught
# by the communication timeout. Exits non-zero if any case fails.
#
# Usage:
#   scripts/ci-mpi.sh                      # builds (debug), then uses $(swift build --show-bin-path)
#   scripts/ci-mpi.sh .build/debug         # a build directory holding picotron
#   scripts/ci-mpi.sh path/to/picotron     # the executable itself
# SWIFT_BUILD_FLAGS (e.g. "--scratch-path .build-ci") is passed to swift build.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ge 1 ]]; then
    bin="$1"
    [[ -d "$bin" ]] && bin="$bin/picotron"
else
    # shellcheck disable=SC2086
    swift build --product picotron ${SWIFT_BUILD_FLAGS:-} || exit 1
    # shellcheck disable=SC2086
    bin="$(swift build --show-bin-path ${SWIFT_BUILD_FLAGS:-})/picotron"
fi
[[ -x "$bin" ]] || { echo "error: no picotron executable at $bin" >&2; exit 1; }

# OpenMPI refuses to run as root unless told; ob1 makes MPI_Init ~10x faster on one machine.
if [[ "$(id -u)" == 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"
cores="$(nproc)"
failures=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# np_args N: mpirun's arguments for N ranks, oversubscribing when N exceeds the cores.
np_args() {
    args=(-np "$1")
    if (($1 > cores)); then args+=(--oversubscribe); fi
}

fail() {
    echo "FAIL: $*"
    sed 's/^/    | /' "$log" | tail -20
    failures=$((failures + 1))
}

for np in 2 4 8; do
    start=$SECONDS
    np_args "$np"
    timeout 600 mpirun "${args[@]}" "$bin" selftest comm >"$log" 2>&1
    status=$?
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)"
    if [[ $status -eq 0 && "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
        echo "ok: mpirun -np $np selftest comm: $summary ($((SECONDS - start)) s)"
    else
        fail "mpirun -np $np selftest comm: exit $status, '${summary:-no summary line}'"
    fi
done

# A failing rank must end the job: non-zero exit, within the time bound, naming the rank.
for case in "2 1 throw" "2 1 exit" "4 3 throw" "4 2 exit"; do
    read -r np rank mode <<<"$case"
    start=$SECONDS
    np_args "$np"
    timeout 60 mpirun "${args[@]}" "$bin" selftest comm --fail-rank "$rank" --fail-mode "$mode" >"$log" 2>&1
    status=$?
    elapsed=$((SECONDS - start))
    if [[ $status -eq 124 ]]; then
        fail "np $np --fail-rank $rank --fail-mode $mode: still running after 60 s (deadlock?)"
    elif [[ $status -eq 0 ]]; then
        fail "np $np --fail-rank $rank --fail-mode $mode: exited 0, expected a failure"
    elif ! grep -q "rank $rank" "$log"; then
        fail "np $np --fail-rank $rank --fail-mode $mode: output does not name rank $rank"
    else
        echo "ok: mpirun -np $np --fail-rank $rank --fail-mode $mode: exit $status after ${elapsed} s"
    fi
done

# A rank that never joins (it stalls without calling MPI) must end the job through the others'
# communication timeout: non-zero exit, and a message naming the rank that waited, what it waited
# in and the setting. The stalled rank sleeps 3 × the timeout, so a job that ends without the
# message was not ended by the timeout. One case sets it by flag, the other by environment.
for case in "2 1 flag" "4 3 env"; do
    read -r np rank how <<<"$case"
    start=$SECONDS
    np_args "$np"
    if [[ $how == flag ]]; then
        timeout 60 mpirun "${args[@]}" "$bin" selftest comm --fail-rank "$rank" --fail-mode hang --timeout 3 \
            >"$log" 2>&1
    else
        PICOTRON_COMM_TIMEOUT=3 timeout 60 mpirun "${args[@]}" "$bin" selftest comm --fail-rank "$rank" \
            --fail-mode hang >"$log" 2>&1
    fi
    status=$?
    elapsed=$((SECONDS - start))
    what="np $np --fail-rank $rank --fail-mode hang (timeout 3 s by $how)"
    if [[ $status -eq 124 ]]; then
        fail "$what: still running after 60 s (no timeout under MPI?)"
    elif [[ $status -eq 0 ]]; then
        fail "$what: exited 0, expected the timeout to end the job"
    elif ! grep -qE "^rank [0-9]+ \(rank [0-9]+ of group '[a-z]+'\) waited 3 s in .*PICOTRON_COMM_TIMEOUT" "$log"; then
        fail "$what: no message naming the waiting rank, the operation and the timeout setting"
    else
        echo "ok: mpirun -np $np --fail-rank $rank --fail-mode hang: timeout ended the job, exit $status after ${elapsed} s"
    fi
done

if ((failures > 0)); then
    echo "$failures MPI check(s) failed"
    exit 1
fi
echo "all MPI checks passed"
