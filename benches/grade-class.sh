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
# Grades the class twice in one run, without the sandbox (`--unsandboxed`, the yardstick)
# and with it, and prints the machine, each wall time, tests per second, the score
# distribution and the sandbox's cost as a ratio (target: at most 1.20x).
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

# One grading run in the given mode ("sandboxed", the default, or "unsandboxed"); prints its
# table row (the wall time is its seventh column).
grade_once() {
    local mode="$1" extra=()
    [ "$mode" = unsandboxed ] && extra=(--unsandboxed)
    rm -rf "$work/out"
    local started ended
    started=$(date +%s.%N)
    "$labrun" grade "$work/suite.toml" "$work"/student-*/ -j "$jobs" --out "$work/out" "${extra[@]}" \
        >"$work/summary.txt" 2>"$work/stderr.txt"
    ended=$(date +%s.%N)
    seconds=$(python3 -c "print(f'{$ended - $started:.1f}')")
    local rows tests_per_second runs distribution isolated
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
    echo "| $mode | $rows | 3 | $jobs | $runs | $seconds s | $tests_per_second | $isolated | $distribution |"
}

machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
header="| mode | submissions | tests each | -j | child runs | wall | tests/s | isolated | totals |"
rule="|:--|--:|--:|--:|--:|--:|--:|:--|:--|"
# The yardstick first: the same class graded without the sandbox, in the same run.
unsandboxed_row=$(grade_once unsandboxed | tail -1)
unsandboxed_seconds=$(echo "$unsandboxed_row" | awk -F'|' '{print $7}' | tr -dc '0-9.')
sandboxed_row=$(grade_once sandboxed | tail -1)
sandboxed_seconds=$(echo "$sandboxed_row" | awk -F'|' '{print $7}' | tr -dc '0-9.')
ratio=$(python3 -c "print(f'{$sandboxed_seconds / $unsandboxed_seconds:.2f}')")
echo "machine: $machine"
echo "$header"
echo "$rule"
echo "$unsandboxed_row"
echo "$sandboxed_row"
echo "sandbox cost: ${ratio}x the unsandboxed wall time (target: at most 1.20x)"
if $record; then
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — grading a class, with and without the sandbox"
        echo
        echo "Command: \`benches/grade-class.sh --record${jobs:+ $jobs}\`"
        echo
        echo "- host: $machine; labrun at $(git rev-parse --short HEAD)"
        echo
        echo "$header"
        echo "$rule"
        echo "$unsandboxed_row"
        echo "$sandboxed_row"
        echo
        echo "Sandbox cost: ${ratio}x the unsandboxed wall time (target: at most 1.20x). 100 folders"
        echo "cycled from the eight of tests/fixtures/submissions/; a child run is one \`labrun run\`"
        echo "of one test (a test that does not fully pass runs twice, three times if the two"
        echo "disagree). Every submission binds port 6000, each in its own namespace."
    } >>benches/RESULTS.md
fi
