#!/bin/sh
# Are two builds' records byte-identical? Reconstructs the bundled examples and a 2,000-sample
# batch (bell_nopovm_d4.csv replicated) with every method, through each build's daemon and with
# --local, and compares the JSON records of OLD and NEW byte for byte (daemon vs daemon, local
# vs local, and daemon vs local within each build). Not a test: a refactoring check.
#
#   tests/bench/compare_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR
set -eu
old=$1
new=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
ex=$src/client/examples/data
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# The batch: 500 copies of the example's 4 columns.
awk -F, '{ line = $0; for (i = 1; i < 500; i++) line = line "," $0; print line }' \
    "$ex/bell_nopovm_d4.csv" > "$tmp/batch.csv"

run() { # build tag
    b=$1
    t=$2
    "$b/daemon/qtomod" --socket "$tmp/$t.sock" --cache-dir "$tmp/$t.cache" --config /dev/null \
        2> "$tmp/$t.log" &
    echo $! > "$tmp/$t.pid"
    i=0
    while [ ! -S "$tmp/$t.sock" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    for mode in daemon local; do
        if [ $mode = local ]; then pre=""; how=--local; else pre="-s $tmp/$t.sock"; how=""; fi
        # shellcheck disable=SC2086
        "$b/client/qtomoctl" $pre reconstruct "$ex/bell_nopovm_d4.csv" $how --json --bell \
            --target "$ex/phi_plus.json" --method linear,mle,wls,rhor > "$tmp/$t.$mode.bell"
        # shellcheck disable=SC2086
        "$b/client/qtomoctl" $pre reconstruct "$ex/mub_d3.csv" $how --json \
            --method linear,mle,wls,rhor > "$tmp/$t.$mode.mub"
        # shellcheck disable=SC2086
        "$b/client/qtomoctl" $pre reconstruct "$ex/pauli_2q.csv" $how --json --design pauli \
            --method linear,mle > "$tmp/$t.$mode.pauli"
        # shellcheck disable=SC2086
        "$b/client/qtomoctl" $pre reconstruct "$tmp/batch.csv" $how --json \
            --method linear,mle > "$tmp/$t.$mode.batch"
    done
    kill "$(cat "$tmp/$t.pid")"
    wait "$(cat "$tmp/$t.pid")" || true
}

run "$old" old
run "$new" new
status=0
for f in bell mub pauli batch; do
    for mode in daemon local; do
        if cmp -s "$tmp/old.$mode.$f" "$tmp/new.$mode.$f"; then
            echo "identical: $f $mode ($(wc -l < "$tmp/new.$mode.$f") records)"
        else
            echo "DIFFERENT: $f $mode"
            status=1
        fi
    done
    if cmp -s "$tmp/new.daemon.$f" "$tmp/new.local.$f"; then echo "identical: $f new daemon vs new local"; else echo "DIFFERENT: $f new daemon vs new local"; status=1; fi
done
exit $status
