#!/bin/sh
# The in-process fuzz targets for a long time each, by hand (CI runs them 30 s each in the fuzz
# preset). Builds the fuzz preset if needed, runs every target for SECONDS (default 600) on a
# scratch copy of its seed corpus, and prints one line per target: executions, exec/s, edges
# covered (libFuzzer's "cov"), features ("ft"), inputs kept, and crashes (files named crash-*,
# leak-*, timeout-*, oom-* are kept in the scratch directory for tests/fuzz/findings).
#
#     tests/reliability/fuzz_long.sh [SECONDS] [target ...]
set -eu
SECONDS_EACH=${1:-600}
[ $# -gt 0 ] && shift
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build/fuzz
TARGETS=${*:-"fuzz_csv fuzz_designfile fuzz_cachefile fuzz_proto fuzz_framer fuzz_check"}
OUT=${FUZZ_LONG_OUT:-$(mktemp -d /tmp/qtomo-fuzz-long.XXXXXX)}

[ -x "$BUILD/tests/fuzz/fuzz_csv" ] || {
    cmake --preset fuzz -S "$REPO" >/dev/null
    cmake --build "$BUILD" -j2 >/dev/null
}
echo "# $(date -u +%FT%TZ) $SECONDS_EACH s each; scratch in $OUT"
printf '%-16s %12s %8s %7s %7s %7s %s\n' target execs exec/s cov ft corpus findings
for t in $TARGETS; do
    dir=$OUT/$t
    mkdir -p "$dir/work"
    cp -r "$REPO/tests/fuzz/corpus/$t/." "$dir/work/" 2>/dev/null || true
    (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
        -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 work >log 2>&1) || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
    last=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    kept=$(find "$dir/work" -type f | wc -l)
    found=$(find "$dir" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' \
            -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
    printf '%-16s %12s %8s %7s %7s %7s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
        "${ft:-?}" "$kept" "$found"
done
