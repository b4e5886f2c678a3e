#!/usr/bin/env bash
# Closed-loop throughput, latency and CPU cost of labrun against its `echo-async` built-in.
#
# Builds labrun (release), then for 1, 100 and 1000 clients runs a generated scenario: one
# echo-async server on an automatic 127.0.0.1 port, 64-byte ASCII messages, no think time,
# a fixed message count per client, a 10 s reply timeout, a 30 s run deadline and
# `[expect] errors = 0`. 1000 clients are run twice: all starting together (which overflows
# the server's listen backlog of 128, see benches/RESULTS.md) and ramped over 1 s.
#
# Prints machine facts and one table row per run. CPU is measured around the labrun
# process: `labrun+server` is labrun's rusage including the server it spawns and reaps,
# `server` is sampled from /proc/<server pid>/stat every 10 ms until the server exits, and
# `labrun` is the difference. Listen drops are the host's TcpExt ListenDrops counter,
# read from /proc/net/netstat before and after each run.
#
# Usage: benches/echo-async.sh [--record]
#   --record   also append a dated section (command, machine, table) to benches/RESULTS.md
#
# Exit status: 0 if every run passed its checks, 1 otherwise, 2 on bad usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

record=false
case "${1-}" in
    "") ;;
    --record) record=true ;;
    -h | --help) usage; exit 0 ;;
    *) echo "echo-async.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
if (($# > 1)); then
    echo "echo-async.sh: too many arguments (try --help)" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/results.sh
source "$root/benches/results.sh"
command_line="benches/echo-async.sh${1:+ $1}"

echo "building labrun (cargo build --release)..." >&2
cargo build --release --quiet
labrun="$root/target/release/labrun"

work=$(mktemp -d "${TMPDIR:-/tmp}/labrun-bench.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# --- the measuring helper (python3, standard library only) -------------------------------
cat >"$work/bench.py" <<'PY'
import base64, json, os, struct, sys, threading, time, zlib

CLK_TCK = os.sysconf("SC_CLK_TCK")


def netstat():
    """TcpExt/Tcp counters of this network namespace, as {"TcpExt.ListenDrops": n, ...}."""
    counters = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2]):
            prefix, names = names.split(":", 1)
            _, values = values.split(":", 1)
            for name, value in zip(names.split(), values.split()):
                counters[f"{prefix}.{name}"] = int(value)
    return counters


def children(pid):
    """Pids of the direct children of `pid`."""
    found = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                found.update(int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split())
            except OSError:
                pass
        return found
    except OSError:
        return found


def cpu_seconds(pid):
    """utime + stime of a live process (all its threads), or None once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def hdr_values(encoded):
    """(value, count) pairs of a labrun `hdr` field: base64 of a compressed HdrHistogram V2."""
    raw = base64.b64decode(encoded)
    (length,) = struct.unpack(">I", raw[4:8])
    body = zlib.decompress(raw[8:8 + length])
    _, payload_len, _, digits, lowest, _, _ = struct.unpack(">IIIIqqd", body[:40])
    payload = body[40:40 + payload_len]
    counts, i = [], 0
    while i < len(payload):  # zigzag LEB128; a negative number is a run of empty slots
        value = shift = 0
        while True:
            byte = payload[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        value = (value >> 1) ^ -(value & 1)
        counts.extend([0] * -value if value < 0 else [value])
    sub_bits = (2 * 10**digits - 1).bit_length()  # log2 of the sub-bucket count
    unit = max(lowest, 1).bit_length() - 1
    half = 1 << (sub_bits - 1)
    for index, count in enumerate(counts):
        if count:
            bucket = (index >> (sub_bits - 1)) - 1
            sub = (index & (half - 1)) + half
            if bucket < 0:
                bucket, sub = 0, sub - half
            yield sub << (bucket + unit), count


def run(labrun, scenario, out_dir, result_path):
    before = netstat()
    started = time.monotonic()
    pid = os.posix_spawn(labrun, [labrun, scenario, "--quiet", "--out", out_dir], os.environ)
    server_cpu = {}  # child pid -> last CPU seconds seen
    done = threading.Event()

    def sample():
        while not done.is_set():
            for child in children(pid):
                seconds = cpu_seconds(child)
                if seconds is not None:
                    server_cpu[child] = seconds
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    after = netstat()
    delta = lambda key: after.get(key, 0) - before.get(key, 0)
    total_cpu = usage.ru_utime + usage.ru_stime
    server = sum(server_cpu.values())
    json.dump(
        {
            "exit_code": os.waitstatus_to_exitcode(status),
            "wall_s": wall,
            "cpu_total_s": total_cpu,
            "cpu_user_s": usage.ru_utime,
            "cpu_sys_s": usage.ru_stime,
            "cpu_server_s": server,
            "server_seen": bool(server_cpu),
            "listen_drops": delta("TcpExt.ListenDrops"),
            "syn_retrans": delta("TcpExt.TCPSynRetrans"),
        },
        open(result_path, "w"),
    )


def row(label, start, result_path, report_path):
    res = json.load(open(result_path))
    try:
        rep = json.load(open(report_path))
    except (OSError, ValueError):
        rep = None
    if rep is None:
        return {"start": start, "clients": label, "outcome": f"no report (exit {res['exit_code']})"}
    t = rep["total"]
    lat = t["latency"]
    msgs = t["messages"] or 1
    us = lambda seconds: f"{seconds * 1e6 / msgs:.1f}"
    server = res["cpu_server_s"] if res["server_seen"] else None
    return {
        "start": start,
        "clients": f"{t['clients']}",
        "messages": f"{t['messages']}",
        "errors": f"{sum(t['errors'].values())}",
        "msgs/s": f"{t['messages_per_second']:,.0f}",
        "rtt p50": f"{lat['rtt']['p50_us']} µs",
        "rtt p99": f"{lat['rtt']['p99_us']} µs",
        "wait p99": f"{lat['wait']['p99_us']} µs",
        "connect p99": f"{lat['connect']['p99_us']} µs",
        "connects > 0.5 s": f"{sum(c for v, c in hdr_values(lat['connect']['hdr']) if v > 500_000)}",
        "listen drops": f"{res['listen_drops']}",
        "cpu µs/msg labrun+server": us(res["cpu_total_s"]),
        "cpu µs/msg labrun": us(res["cpu_total_s"] - server) if server is not None else "?",
        "cpu µs/msg server": us(server) if server is not None else "?",
        "cpu sys share": f"{res['cpu_sys_s'] / max(res['cpu_total_s'], 1e-9):.0%}",
        "wall": f"{res['wall_s']:.2f} s",
        "outcome": rep["outcome"],
    }


def table(rows_path):
    rows = [json.loads(line) for line in open(rows_path)]
    columns = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    cells = [[r.get(c, "") for c in columns] for r in rows]
    width = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    right = lambda i: columns[i] not in ("start", "outcome")
    fmt = lambda xs: "| " + " | ".join(
        x.rjust(width[i]) if right(i) else x.ljust(width[i]) for i, x in enumerate(xs)) + " |"
    print(fmt(columns))
    print("|" + "|".join(("-" * (w + 1) + ":" if right(i) else ":" + "-" * (w + 1))
                         for i, w in enumerate(width)) + "|")
    for x in cells:
        print(fmt(x))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "run":
        run(*args)
    elif command == "row":
        print(json.dumps(row(*args), ensure_ascii=False))
    elif command == "table":
        table(*args)
PY

# --- machine facts -------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
revision=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
# Others may be editing the tree: name the uncommitted files the binary was built from.
changed=$(git -C "$root" diff --name-only HEAD -- src Cargo.toml Cargo.lock 2>/dev/null | paste -sd, - | sed 's/,/, /g')
if [[ -n $changed ]]; then
    revision="$revision (uncommitted changes in $changed)"
fi
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
machine=$(cat <<EOF
- date: ${started}
- host: $(nproc) CPUs ($(getconf _NPROCESSORS_ONLN) online), ${cpu_model:-unknown CPU}, ${mem} RAM
- kernel: $(uname -srm)
- rustc: $(rustc --version 2>/dev/null || echo unknown)
- labrun: $("$labrun" --version) at ${revision}
- limits: open files $(ulimit -n), somaxconn $(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo ?), loadavg before $(cut -d' ' -f1-3 /proc/loadavg)
EOF
)
echo "$machine"
echo

# --- the runs ------------------------------------------------------------------------------
# label clients messages-per-client start ("together" or a ramp duration)
runs=(
    "1      1     40000 together"
    "100    100   2000  together"
    "1000   1000  200   together"
    "1000r  1000  200   1s"
)

all_passed=true
for spec in "${runs[@]}"; do
    read -r label clients messages start <<<"$spec"
    name="echo-async-$label"
    if [[ $start == together ]]; then
        start_line='start = "together"'
    else
        start_line="ramp = \"$start\""
    fi
    cat >"$work/$name.toml" <<EOF
name = "$name"
description = "benches/echo-async.sh: $clients closed-loop clients, $messages x 64-byte messages each."
timeout = "30s"

[[server]]
name = "echo"
builtin = "echo-async"
port = "auto"

[[clients]]
name = "bench"
count = $clients
workload = "echo"
messages = $messages
size = 64
payload = "ascii"
think = "0s"
$start_line
timeout = "10s"

[expect]
echo = "exact"
errors = 0
EOF
    echo "running $clients clients x $messages messages (start: $start)..." >&2
    python3 "$work/bench.py" run "$labrun" "$work/$name.toml" "$work" "$work/$name.cpu.json" >&2
    python3 "$work/bench.py" row "$label" "$start" "$work/$name.cpu.json" "$work/$name.json" \
        >>"$work/rows.jsonl"
    if ! grep -q '"outcome": "pass"' <(tail -n 1 "$work/rows.jsonl"); then
        all_passed=false
    fi
done

table=$(python3 "$work/bench.py" table "$work/rows.jsonl")
echo
echo "$table"
notes="Messages are 64-byte ASCII, closed loop, no think time; rtt excludes each connection's first
message (that one is \`wait\`); msgs/s is messages over the time from the first connect to
the last close. CPU is user+sys from the kernel's accounting: labrun+server from wait4(2),
server sampled from /proc every 10 ms, labrun = the difference; sys share is the kernel's
part of labrun+server. \`connects > 0.5 s\` counts clients whose TCP connect needed a SYN
retransmit (decoded from the report's connect histogram); listen drops is the host-wide
TcpExt ListenDrops counter over the run (SYNs or handshake ACKs dropped by a full accept
queue)."
echo
echo "$notes"

if $record; then
    append_results "$root" "$started" "echo-async" "$command_line" "$machine" "$table" "$notes"
fi

$all_passed
