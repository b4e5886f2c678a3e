#!/usr/bin/env bash
# How long `labrun grade` takes for a class: 100 submissions × 3 scenarios.
#
# Builds labrun (release), makes 100 submission folders by cycling through the eight in
# tests/fixtures/submissions/ (correct ones and buggy ones: crash at start, never replies,
# fake threads, ...), and grades them with a three-test suite (echo, concurrency,
# isolation from tests/fixtures/suites/) at `-j 4`. Every submission binds port 6000, so
# this also exercises the private network namespaces (run it as root, or with user
# namespaces; otherwise labrun grades one at a time and says so).
#
# Prints the machine, the wall time, tests per second and the score distribution.
#
# Usage: benches/grade-class.sh [--record] [JOBS]
#   --record   also append a dated section to benches/RESULTS.md
set -euo pipefail

record=false
jobs=4
for arg in "$@"; do
    case "$arg" in
        --record) record=true ;;
        [0-9]*) jobs="$arg" ;;
        *) echo "grade-class.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo build --release --quiet
labrun="$root/target/release/labrun"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

students=("$root"/tests/fixtures/submissions/*/)
for i in $(seq -w 1 100); do
    source_dir="${students[$((10#$i % ${#students[@]}))]}"
    cp -r "$source_dir" "$work/student-$i"
done
sed 's|^scenario = "|scenario = "'"$root"'/tests/fixtures/suites/|' tests/fixtures/suites/lab3.toml >"$work/suite.toml"
cat >>"$work/suite.toml" <<SUITE

[[test]]
name = "isolation"
scenario = "$root/tests/fixtures/suites/isolation.toml"
points = 10
SUITE

started=$(date +%s.%N)
"$labrun" grade "$work/suite.toml" "$work"/student-*/ -j "$jobs" --out "$work/out" >"$work/summary.txt"
ended=$(date +%s.%N)
seconds=$(python3 -c "print(f'{$ended - $started:.1f}')")
rows=$(($(wc -l <"$work/out/grades.csv") - 1))
tests_per_second=$(python3 -c "print(f'{$rows * 3 / ($ended - $started):.2f}')")
runs=$(python3 -c "
import json
g = json.load(open('$work/out/grades.json'))
print(sum(t['runs'] for s in g['submissions'] for t in s['tests']))")
distribution=$(python3 -c "
import csv, collections
rows = list(csv.DictReader(open('$work/out/grades.csv')))
c = collections.Counter(r['total'] for r in rows)
print(', '.join(f'{k}/30 ×{v}' for k, v in sorted(c.items(), key=lambda kv: -float(kv[0]))))")
isolated=$(python3 -c "import json; print(json.load(open('$work/out/grades.json'))['isolated'])")

machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
result="| $rows | 3 | $jobs | $runs | $seconds s | $tests_per_second | $isolated | $distribution |"
echo "machine: $machine"
echo "| submissions | tests each | -j | child runs | wall | tests/s | isolated | totals |"
echo "|--:|--:|--:|--:|--:|--:|:--|:--|"
echo "$result"
if $record; then
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — grading a class"
        echo
        echo "Command: \`benches/grade-class.sh --record${jobs:+ $jobs}\`"
        echo
        echo "- host: $machine; labrun at $(git rev-parse --short HEAD)"
        echo
        echo "| submissions | tests each | -j | child runs | wall | tests/s | isolated | totals |"
        echo "|--:|--:|--:|--:|--:|--:|:--|:--|"
        echo "$result"
        echo
        echo "100 folders cycled from the eight of tests/fixtures/submissions/; a child run is one"
        echo "\`labrun run\` of one test (a test that does not fully pass runs twice, three times if"
        echo "the two disagree). Every submission binds port 6000, each in its own namespace."
    } >>benches/RESULTS.md
fi
