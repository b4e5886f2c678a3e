#!/usr/bin/env bash
# labrun's load engine against a C yardstick: the same loads, side by side, in one go.
#
# Builds labrun (release) and, with `gcc -O2`, the yardstick in benches/c/ into a temporary
# folder: echo_server.c (single-threaded epoll echo server, backlog 4096) and
# pingpong_client.c (epoll closed-loop client, RTT percentiles, no verification when
# pipelining). Installs sockperf with apt-get and the crates.io load client
# tcp-echo-benchmark with `cargo install` (into a cache folder outside the repository) when
# they are missing, and skips their rows if that fails. Then, every server on an automatic
# 127.0.0.1 port, runs:
#
#   closed loop   in turns, the C client, tcp-echo-benchmark and labrun, each against a
#                 fresh C server: 1 x 40,000, 100 x 2,000 and 1000 x 200 messages of 64
#                 ASCII bytes, no think time (tcp-echo-benchmark: the same connections for
#                 3 s; it verifies nothing) -> msgs/s, RTT p50/p99, client CPU per message,
#                 ratios labrun / C and labrun / tcp-echo-benchmark, per round and median
#   sockperf      `sockperf ping-pong --tcp -t 5 -m 64 --full-rtt` against `sockperf
#                 server`: a second opinion on the one-connection RTT
#   pipelined     10 connections x 100,000 messages of 1 KiB, 16 in flight per connection:
#                 the C client (no verification) vs labrun `pipeline = 16` (verifying)
#                 -> echoed bytes/s
#   10k held      10,000 connections: labrun ramped over 3 s, 3 messages each with 3 s of
#                 think time (so all are connected at once), and the C client (all held
#                 until the last is done) -> peak RSS of the client process
#   echo-async    the C client at 100 x 2,000 against the C server, then against
#                 `labrun serve echo-async` -> msgs/s ratio
#   open loop     100 connections offered 20,000 msgs/s (`rate`): labrun only, informative
#
# and prints machine facts and a Markdown table with each target and whether it was met.
# labrun's client CPU is its wait4(2) rusage (which includes the C server it launched and
# reaped) minus the server's own rusage, which the server writes to a file on SIGTERM.
# labrun's RSS is its VmHWM, polled from /proc every 20 ms. When labrun rejects a scenario
# key that is still being added to it (`pipeline`, TCP `rate`), that row says so instead.
#
# Usage: [LABRUN=path/to/labrun] benches/engine.sh [--record] [--runs N]
#   --record   also append a dated section (command, machine, table) to benches/RESULTS.md
#   --runs N   run every measurement N times, alternating C and labrun, and report medians
#              (default 1; one pass takes about a minute after the build)
#   LABRUN     measure this labrun binary instead of building target/release/labrun (to
#              compare engine versions, or while the tree does not build)
#
# Exit status: 0 if every run completed without errors (met targets or not, and a key
# labrun does not support yet is not an error), 1 otherwise, 2 on bad usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

record=false
runs=1
while (($# > 0)); do
    case "$1" in
        --record) record=true ;;
        --runs)
            if [[ ${2-} =~ ^[1-9][0-9]?$ ]]; then
                runs=$2
                shift
            else
                echo "engine.sh: --runs needs a count from 1 to 99 (try --help)" >&2
                exit 2
            fi
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "engine.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/results.sh
source "$root/benches/results.sh"
command_line="benches/engine.sh"
if $record; then command_line+=" --record"; fi
if ((runs > 1)); then command_line+=" --runs $runs"; fi

# --- teardown on every exit path ---------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/labrun-engine.XXXXXX")
servers=()  # pids of the servers this script started (C server, echo-async, sockperf)
current=""  # pid of the measuring child being waited for
stop_pid() {  # SIGTERM, up to 3 s to go, then SIGKILL
    local pid=$1 tries=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && ((tries < 30)); do
        sleep 0.1
        tries=$((tries + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    if [[ -n $current ]]; then stop_pid "$current"; fi
    for pid in "${servers[@]}"; do stop_pid "$pid"; done
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in the background and waits for it, so a signal to this script is handled
# at once (bash runs traps only between foreground commands). Sets $rc.
run_waited() {
    "$@" &
    current=$!
    rc=0
    wait "$current" || rc=$?
    current=""
}

# --- build -------------------------------------------------------------------------------
if [[ -n ${LABRUN-} ]]; then
    labrun=$(realpath -- "$LABRUN")
    if [[ ! -x $labrun ]]; then
        echo "engine.sh: LABRUN=$LABRUN is not an executable" >&2
        exit 2
    fi
else
    echo "building labrun (cargo build --release)..." >&2
    cargo build --release --quiet
    labrun="$root/target/release/labrun"
fi
echo "building the C yardstick (gcc -O2)..." >&2
gcc -O2 -Wall -Wextra -o "$work/echo_server" benches/c/echo_server.c
gcc -O2 -Wall -Wextra -o "$work/pingpong_client" benches/c/pingpong_client.c

sockperf_status=ok
if ! command -v sockperf >/dev/null; then
    echo "installing sockperf (apt-get install -y sockperf)..." >&2
    if ! timeout 300 apt-get install -y sockperf >"$work/apt.log" 2>&1; then
        timeout 300 apt-get update >>"$work/apt.log" 2>&1 || true
        timeout 300 apt-get install -y sockperf >>"$work/apt.log" 2>&1 || true
    fi
    if ! command -v sockperf >/dev/null; then
        sockperf_status="sockperf is not installed and apt-get could not install it"
        echo "$sockperf_status; skipping its row" >&2
    fi
fi

# tcp-echo-benchmark, a tokio load client from crates.io, as a peer: built from the registry
# into a cache folder, never copied into this repository.
peer_status=ok
peer_root="${XDG_CACHE_HOME:-$HOME/.cache}/labrun-bench/tcp-echo-benchmark"
peer=$(command -v tcp-echo-benchmark || true)
if [[ -z $peer && -x $peer_root/bin/tcp-echo-benchmark ]]; then peer=$peer_root/bin/tcp-echo-benchmark; fi
if [[ -z $peer ]]; then
    echo "installing tcp-echo-benchmark (cargo install --locked --root $peer_root)..." >&2
    if timeout 900 cargo install --quiet --locked --root "$peer_root" tcp-echo-benchmark >"$work/peer-install.log" 2>&1; then
        peer=$peer_root/bin/tcp-echo-benchmark
    else
        peer_status="tcp-echo-benchmark is not installed and cargo install failed: $(tail -n 1 "$work/peer-install.log")"
        echo "$peer_status; skipping its rows" >&2
    fi
fi

# --- the measuring helper (python3, standard library only) -------------------------------
cat >"$work/bench.py" <<'PY'
import json, os, re, signal, socket, statistics, sys, threading, time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a live process (all its threads), or None once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def vm_hwm_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def listening(port):
    """Whether something listens on 127.0.0.1:port (or any address), from /proc/net/tcp."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def read_json(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def first_error(path):
    """The first line of a stderr file that says what went wrong."""
    try:
        lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    except OSError:
        return ""
    for line in lines:
        if line.startswith("error"):
            return line.split(", expected one of")[0][:240]
    return lines[-1][:240] if lines else ""


def emit(case, tool, run, **fields):
    print(json.dumps({"case": case, "tool": tool, "run": int(run), **fields}))


def labrun(labrun_bin, scenario, report, err, server_rusage, deadline, case, run):
    """Run `labrun run --json` on a scenario with a deadline; sample its VmHWM."""
    with open(report, "wb") as out, open(err, "wb") as errf:
        pid = os.posix_spawn(labrun_bin, [labrun_bin, "run", "--json", "--no-report", scenario],
                             os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                                       (os.POSIX_SPAWN_DUP2, errf.fileno(), 2)])
    started = time.monotonic()
    hwm = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            kib = vm_hwm_kib(pid)
            if kib:
                hwm[0] = max(hwm[0], kib)
            elapsed = time.monotonic() - started
            if elapsed > float(deadline):
                os.kill(pid, signal.SIGTERM if elapsed < float(deadline) + 5 else signal.SIGKILL)
            done.wait(0.02)

    def stop(signum, frame):  # our own teardown: take labrun (and so its server) with us
        os.kill(pid, signal.SIGTERM)
        try:
            os.waitpid(pid, 0)
        finally:
            sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    rep = read_json(report)
    if code == 2:  # the scenario was rejected
        note = first_error(err).replace(scenario, "scenario")
        emit(case, "labrun", run, ok=False, rejected=True, note=note)
        return
    if not isinstance(rep, dict) or "total" not in rep:
        note = first_error(err) or f"no report (exit {code})"
        if wall > float(deadline):
            note = f"killed after the {deadline} s deadline; " + note
        emit(case, "labrun", run, ok=False, note=note)
        return
    t = rep["total"]
    rtt = t["latency"]["rtt"]
    msgs = t["messages"] or 0
    server = read_json(server_rusage)
    client_cpu = usage.ru_utime + usage.ru_stime
    if server:
        client_cpu -= server["cpu_user_s"] + server["cpu_sys_s"]
    active_s = (t.get("active_ms") or 0) / 1000
    held = max((c.get("connected_together") or 0 for c in rep.get("concurrency") or []), default=None)
    errors = sum((t.get("errors") or {}).values())
    note = ""
    if code != 0:
        failed = [f"{c.get('name')}: {c.get('summary')}" for c in rep.get("checks") or []
                  if not c.get("passed")]
        note = f"exit {code}, {rep.get('outcome')} after {wall:.1f} s: " + (
            "; ".join(failed)[:300] or first_error(err) or "no failed check named")
    emit(case, "labrun", run,
         ok=code == 0 and rep.get("outcome") == "pass" and errors == 0, note=note,
         messages=msgs, errors=errors,
         msgs_per_sec=t.get("messages_per_second"),
         bytes_per_sec=(t.get("bytes_received") or 0) / active_s if active_s else None,
         rtt_p50_us=rtt.get("p50_us"), rtt_p99_us=rtt.get("p99_us"),
         cpu_us_per_msg=client_cpu * 1e6 / msgs if msgs and server else None,
         rss_kib=hwm[0] or usage.ru_maxrss, held=held, wall_s=wall)


def cclient(result, rc, case, tool, run, server_cpu=""):
    """Normalise the C client's JSON line (and the server's CPU seconds, if known)."""
    r = read_json(result)
    if not r:
        emit(case, tool, run, ok=False, note=f"the C client printed no result (exit {rc})")
        return
    msgs = r["messages"] or 0
    extra = {}
    if server_cpu:
        extra["server_cpu_us_per_msg"] = float(server_cpu) * 1e6 / msgs if msgs else None
    emit(case, tool, run, ok=int(rc) == 0 and r["errors"] == 0,
         note="" if int(rc) == 0 else f"exit {rc}, {r['errors']} connections failed",
         messages=msgs, errors=r["errors"], msgs_per_sec=r["msgs_per_sec"],
         bytes_per_sec=r["bytes_per_sec"], rtt_p50_us=r["rtt_p50_us"],
         rtt_p99_us=r["rtt_p99_us"],
         cpu_us_per_msg=(r["cpu_user_s"] + r["cpu_sys_s"]) * 1e6 / msgs if msgs else None,
         rss_kib=r["maxrss_kib"], held=r["connections"] if r["errors"] == 0 else None, **extra)


def peer(peer_bin, port, conns, seconds, deadline, case, run, server_rusage):
    """Run tcp-echo-benchmark for `seconds` against the C server; its rate from its own
    output, its CPU from wait4, per response it counted."""
    out = os.path.join(os.path.dirname(server_rusage), f"{case}.peer.{run}.out")
    with open(out, "wb") as f:
        pid = os.posix_spawn(peer_bin, [peer_bin, "-a", f"127.0.0.1:{port}", "-l", "64",
                                        "-c", str(conns), "-t", str(seconds)],
                             os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, f.fileno(), 1),
                                                      (os.POSIX_SPAWN_DUP2, f.fileno(), 2)])
    timer = threading.Timer(float(deadline), lambda: os.kill(pid, signal.SIGKILL))
    timer.start()
    _, status, usage = os.wait4(pid, 0)
    timer.cancel()
    code = os.waitstatus_to_exitcode(status)
    text = open(out, errors="replace").read()
    rate = re.search(r"Throughput: \d+ request/sec, (\d+) response/sec", text)
    total = re.search(r"Total: \d+ requests, (\d+) responses", text)
    if code != 0 or not rate or not total:
        emit(case, "peer", run, ok=False, note=f"tcp-echo-benchmark exit {code}: {text.strip()[-200:]}")
        return
    responses = int(total.group(1))
    cpu = usage.ru_utime + usage.ru_stime
    emit(case, "peer", run, ok=True, messages=responses, msgs_per_sec=int(rate.group(1)),
         cpu_us_per_msg=cpu * 1e6 / responses if responses else None,
         rss_kib=usage.ru_maxrss)


def sockperf(output, rc, case, run):
    text = open(output, errors="replace").read()
    pct = dict(re.findall(r"percentile (\d+\.\d+) =\s*([\d.]+)", text))
    obs = re.search(r"Total (\d+) observations", text)
    if "50.000" not in pct:
        emit(case, "sockperf", run, ok=False, note=f"no percentiles in sockperf's output (exit {rc})")
        return
    emit(case, "sockperf", run, ok=int(rc) == 0, note="" if int(rc) == 0 else f"exit {rc}",
         messages=int(obs.group(1)) if obs else None,
         rtt_p50_us=float(pct["50.000"]), rtt_p99_us=float(pct.get("99.000", "nan")))


def skip(case, tool, run, note):
    emit(case, tool, run, ok=True, skipped=True, note=note)


# --- the table ---------------------------------------------------------------------------

def medians(rows):
    """(case, tool) -> one row: numeric fields the median over runs, notes joined."""
    groups = {}
    for r in rows:
        groups.setdefault((r["case"], r["tool"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        m = {"ok": all(r.get("ok") for r in rs), "runs": len(rs)}
        for flag in ("rejected", "skipped"):
            m[flag] = any(r.get(flag) for r in rs)
        m["note"] = "; ".join(sorted({r["note"] for r in rs if r.get("note")}))
        for field in {f for r in rs for f, v in r.items() if isinstance(v, (int, float))
                      and not isinstance(v, bool) and f != "run"}:
            values = [r[field] for r in rs if isinstance(r.get(field), (int, float))]
            m[field] = statistics.median(values) if values else None
        out[key] = m
    return out


def n(v, unit=""):
    return "—" if v is None else f"{v:,.0f}{unit}"


def us(v):
    return "—" if v is None else (f"{v:,.0f} µs" if v >= 100 else f"{v:.1f} µs")


def mib(kib):
    return "—" if kib is None else f"{kib / 1024:,.1f} MiB"


def table(results_path, connections):
    rows = [json.loads(l) for l in open(results_path) if l.strip()]
    m = medians(rows)
    lines, problems = [], []

    def get(case, tool):
        return m.get((case, tool))

    def cell(r, fmt, field):
        if r is None:
            return "not run"
        if r.get("skipped"):
            return "skipped"
        if r.get("rejected"):
            return "rejected"
        v = r.get(field)
        return fmt(v) + ("" if r["ok"] else " (failed)")

    def ratio(a, b, field):
        if not a or not b or a.get(field) is None or not b.get(field):
            return None
        return a[field] / b[field]

    by_run = {(r["case"], r["tool"], r["run"]): r for r in rows}

    def rounds(case, measured, yardstick, field):
        """The ratio measured / yardstick of each round both completed, in round order."""
        out = []
        for run in sorted({r["run"] for r in rows}):
            a, b = by_run.get((case, measured, run)), by_run.get((case, yardstick, run))
            if a and b and a.get("ok") and b.get("ok") and a.get(field) and b.get(field):
                out.append(a[field] / b[field])
        return out

    def add(measure, conns, yard, yard_s, meas, meas_s, field, target=None, cmp=None, limit=None,
            absolute=None, per_round=()):
        r = ratio(meas, yard, field)
        met = "—"
        if absolute is not None:  # the target is on the measured value itself
            v = meas.get(field) if meas else None
            met = "—" if v is None or not meas["ok"] else ("yes" if absolute(v) else "**no**")
        elif cmp is not None:
            ok = yard and meas and yard["ok"] and meas["ok"] and r is not None
            met = "—" if not ok else ("yes" if cmp(r, limit) else "**no**")
        shown = "—" if r is None else f"{r:.2f}×"
        if r is not None and len(per_round) > 1:
            shown += " (" + ", ".join(f"{x:.2f}" for x in per_round) + ")"
        lines.append([measure, conns, yard_s, meas_s, shown, target or "—", met])

    def unsupported(r, text):
        """The cell for a scenario labrun rejected: `text` when it does not know the key yet."""
        if not r or not r.get("rejected"):
            return None
        note = r.get("note") or ""
        return text if "unknown field" in note or "so far" in note else "rejected by labrun (below)"

    ge = lambda r, lim: r >= lim
    le = lambda r, lim: r <= lim
    yardsticks = [("c", "closed-loop msgs/s (ratio: median, then each round)", 0.95),
                  ("peer", "closed-loop msgs/s (yardstick: tcp-echo-benchmark, verifies nothing)", 1.0)]
    for tool, measure, limit in yardsticks:
        for c in connections:
            case = f"closed-{c}"
            yard, lb = get(case, tool), get(case, "labrun")
            add(measure, c, yard, cell(yard, n, "msgs_per_sec"), lb, cell(lb, n, "msgs_per_sec"),
                "msgs_per_sec", f"≥ {limit}×", ge, limit,
                per_round=rounds(case, "labrun", tool, "msgs_per_sec"))
    for c in connections:
        cc, lb = get(f"closed-{c}", "c"), get(f"closed-{c}", "labrun")
        one = c == connections[0]
        add("RTT p50", c, cc, cell(cc, us, "rtt_p50_us"), lb, cell(lb, us, "rtt_p50_us"),
            "rtt_p50_us", "≤ 1.15×" if one else None, le if one else None, 1.15)
    for c in connections:
        cc, lb = get(f"closed-{c}", "c"), get(f"closed-{c}", "labrun")
        one = c == connections[0]
        add("RTT p99", c, cc, cell(cc, us, "rtt_p99_us"), lb, cell(lb, us, "rtt_p99_us"),
            "rtt_p99_us", "≤ 1.5×" if one else None, le if one else None, 1.5)
    fmt_cpu = lambda v: "—" if v is None else f"{v:.2f} µs"
    for c in connections:
        case = f"closed-{c}"
        cc, lb = get(case, "c"), get(case, "labrun")
        add("client CPU per message", c, cc, cell(cc, fmt_cpu, "cpu_us_per_msg"), lb,
            cell(lb, fmt_cpu, "cpu_us_per_msg"), "cpu_us_per_msg", "≤ 1.1×", le, 1.1,
            per_round=rounds(case, "labrun", "c", "cpu_us_per_msg"))
    for c in connections:
        case = f"closed-{c}"
        pr, lb = get(case, "peer"), get(case, "labrun")
        add("client CPU per message (yardstick: tcp-echo-benchmark)", c, pr,
            cell(pr, fmt_cpu, "cpu_us_per_msg"), lb, cell(lb, fmt_cpu, "cpu_us_per_msg"),
            "cpu_us_per_msg")
    sp = get("sockperf", "sockperf")
    lb1, cc1 = get(f"closed-{connections[0]}", "labrun"), get(f"closed-{connections[0]}", "c")
    add("RTT p50, labrun vs sockperf (yardstick: sockperf ↔ sockperf server)", 1, sp,
        cell(sp, us, "rtt_p50_us"), lb1, cell(lb1, us, "rtt_p50_us"), "rtt_p50_us",
        "≤ 1.15× (second opinion)", le, 1.15)
    add("RTT p50, C client vs sockperf (a check of the yardstick)", 1, sp,
        cell(sp, us, "rtt_p50_us"), cc1, cell(cc1, us, "rtt_p50_us"), "rtt_p50_us")
    cp, lp = get("pipelined", "c"), get("pipelined", "labrun")
    gbs = lambda v: "—" if v is None else f"{v / 2**20:,.0f} MiB/s"
    add("pipelined ×16, 1 KiB: echoed bytes/s (C unverified, labrun verified)", 10, cp,
        cell(cp, gbs, "bytes_per_sec"), lp,
        unsupported(lp, "labrun does not support pipeline yet") or cell(lp, gbs, "bytes_per_sec"),
        "bytes_per_sec", "≥ 0.8×", ge, 0.8)
    ch, lh = get("held-10k", "c"), get("held-10k", "labrun")
    held = lambda r: "" if not r or r.get("held") is None else f", {r['held']:,.0f} held"
    add("10k connections: client peak RSS", 10000, ch, cell(ch, mib, "rss_kib") + held(ch), lh,
        cell(lh, mib, "rss_kib") + held(lh), "rss_kib", "labrun ≤ 50 MiB",
        absolute=lambda v: v <= 50 * 1024 and (lh.get("held") or 0) >= 10000)
    cs, ea = get("server-100", "c"), get("server-100", "echo-async")
    add("server msgs/s under the C client (yardstick: C server; measured: echo-async)", 100, cs,
        cell(cs, n, "msgs_per_sec"), ea, cell(ea, n, "msgs_per_sec"), "msgs_per_sec", "≥ 0.9×", ge, 0.9)
    add("server CPU per message (C server; echo-async)", 100, cs,
        cell(cs, fmt_cpu, "server_cpu_us_per_msg"), ea, cell(ea, fmt_cpu, "server_cpu_us_per_msg"),
        "server_cpu_us_per_msg")
    lo = get("open-loop", "labrun")
    if lo is not None:
        text = unsupported(lo, "labrun does not support rate for TCP yet")
        if not text:
            text = cell(lo, n, "msgs_per_sec") + (
                "" if lo.get("rtt_p50_us") is None
                else f" (RTT p50 {us(lo['rtt_p50_us'])}, p99 {us(lo['rtt_p99_us'])})")
        lines.append(["open loop, 20,000 msgs/s offered (`rate`)", 100, "—", text, "—", "—", "—"])

    header = ["measure", "conns", "yardstick", "measured", "ratio", "target", "met?"]
    cells = [[str(x) if not isinstance(x, int) else f"{x:,}" for x in row] for row in lines]
    width = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    right = {1, 2, 3, 4}
    fmt = lambda xs: "| " + " | ".join(
        x.rjust(width[i]) if i in right else x.ljust(width[i]) for i, x in enumerate(xs)) + " |"
    print(fmt(header))
    print("|" + "|".join(("-" * (w + 1) + ":" if i in right else ":" + "-" * (w + 1))
                         for i, w in enumerate(width)) + "|")
    for row in cells:
        print(fmt(row))
    for (case, tool), r in sorted(m.items()):
        if not r["ok"] or (r.get("note") and not r.get("rejected")):
            problems.append(f"- {case} / {tool}: {r.get('note') or 'failed'}")
        elif r.get("rejected"):
            problems.append(f"- {case} / {tool}: rejected by labrun: {r['note']}")
    if problems:
        print()
        print("Problems and skipped rows:")
        print("\n".join(problems))
    failed = any(not r["ok"] and not r.get("rejected") for r in m.values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "labrun":
        labrun(*args)
    elif command == "cclient":
        cclient(*args)
    elif command == "sockperf":
        sockperf(*args)
    elif command == "peer":
        peer(*args)
    elif command == "skip":
        skip(*args)
    elif command == "free-port":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            print(s.getsockname()[1])
    elif command == "wait-listen":
        port, seconds = int(args[0]), float(args[1])
        end = time.monotonic() + seconds
        while not listening(port):
            if time.monotonic() > end:
                sys.exit(1)
            time.sleep(0.02)
    elif command == "cpu":
        print(cpu_seconds(int(args[0])) or "")
    elif command == "table":
        table(args[0], [int(c) for c in args[1:]])
PY
bench() { python3 "$work/bench.py" "$@"; }

# --- machine facts -------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
revision=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
# Others may be editing the tree: name the uncommitted files the binary was built from.
changed=$(git -C "$root" diff --name-only HEAD -- src Cargo.toml Cargo.lock 2>/dev/null | paste -sd, - | sed 's/,/, /g')
if [[ -n ${LABRUN-} ]]; then
    revision="$labrun (given as LABRUN; tree at $revision)"
elif [[ -n $changed ]]; then
    revision="$revision (uncommitted changes in $changed)"
fi
sockperf_version=unavailable
if [[ $sockperf_status == ok ]]; then
    sockperf_version=$(sockperf --version 2>&1 | sed -n 's/.*version #\{0,1\}\([^ =]*\).*/\1/p' | head -n 1)
fi
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
machine=$(cat <<EOF
- date: ${started}
- host: $(nproc) CPUs ($(getconf _NPROCESSORS_ONLN) online), ${cpu_model:-unknown CPU}, ${mem} RAM
- kernel: $(uname -srm)
- rustc: $(rustc --version 2>/dev/null || echo unknown); gcc: $(gcc -dumpfullversion 2>/dev/null || echo unknown); sockperf: ${sockperf_version:-unknown}
- labrun: $("$labrun" --version) at ${revision}
- limits: open files $(ulimit -Sn) (hard $(ulimit -Hn)), somaxconn $(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo ?), loadavg before $(cut -d' ' -f1-3 /proc/loadavg)
EOF
)
echo "$machine"
echo

# --- servers started by this script --------------------------------------------------------
# Starts a server that prints "listening on 127.0.0.1:PORT"; sets $server_pid and $port.
start_server() {
    local name=$1
    shift
    : >"$work/$name.out"  # exists before the background child opens it
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    servers+=("$server_pid")
    port=""
    local tries=0
    while [[ -z $port ]] && ((tries < 100)); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/$name.out" | head -n 1)
        if [[ -z $port ]]; then
            if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
            sleep 0.05
            tries=$((tries + 1))
        fi
    done
    if [[ -z $port ]]; then
        echo "engine.sh: $name did not start: $(tail -n 3 "$work/$name.err")" >&2
        exit 1
    fi
}
stop_server() {
    stop_pid "$server_pid"
    local kept=() pid
    for pid in "${servers[@]}"; do
        if [[ $pid != "$server_pid" ]]; then kept+=("$pid"); fi
    done
    servers=("${kept[@]}")
}

results="$work/results.jsonl"
: >"$results"

# The C client against a fresh C server (or against echo-async with server=echo-async).
# Args: case tool run server(c|echo-async) client-args...
run_c() {
    local case=$1 tool=$2 run=$3 server=$4 id="$1.$2.$3"
    shift 4
    if [[ $server == echo-async ]]; then
        start_server "$id.server" "$labrun" serve echo-async --port 0
    else
        start_server "$id.server" "$work/echo_server" -r "$work/$id.rusage.json" 0
    fi
    run_waited timeout 60 "$work/pingpong_client" -p "$port" -T 50 "$@" >"$work/$id.client.json" 2>"$work/$id.client.err"
    local client_rc=$rc server_cpu=""
    if [[ $server == echo-async ]]; then
        server_cpu=$(bench cpu "$server_pid")
    fi
    stop_server
    if [[ $server != echo-async ]]; then
        server_cpu=$(python3 -c 'import json, sys
try:
    r = json.load(open(sys.argv[1])); print(r["cpu_user_s"] + r["cpu_sys_s"])
except (OSError, ValueError):
    pass' "$work/$id.rusage.json")
    fi
    bench cclient "$work/$id.client.json" "$client_rc" "$case" "$tool" "$run" "$server_cpu" >>"$results"
}

# labrun on a generated scenario whose server is the C server.
# Args: case run deadline-s clients messages size start-line think group-timeout [extra-line]
run_labrun() {
    local case=$1 run=$2 deadline=$3 clients=$4 messages=$5 size=$6 start_line=$7 think=$8
    local reply_timeout=$9 extra=${10-} id="$1.labrun.$2"
    cat >"$work/$id.toml" <<EOF
name = "engine-$case"
description = "benches/engine.sh: $clients clients x $messages messages of $size ASCII bytes against the C epoll echo server."
timeout = "${deadline}s"

[[server]]
name = "c-echo"
command = ["$work/echo_server", "-r", "$work/$id.rusage.json", "{port}"]
port = "auto"

[[clients]]
name = "bench"
count = $clients
workload = "echo"
messages = $messages
size = { min = $size, max = $size }
payload = "ascii"
think = "$think"
$start_line
timeout = "$reply_timeout"
$extra

[expect]
echo = "exact"
errors = 0
EOF
    run_waited bench labrun "$labrun" "$work/$id.toml" "$work/$id.report.json" "$work/$id.err" \
        "$work/$id.rusage.json" "$((deadline + 15))" "$case" "$run"
    if ((rc != 0)); then
        echo "engine.sh: the measuring helper failed on $case (exit $rc)" >&2
        exit 1
    fi
} >>"$results"

# tcp-echo-benchmark for 3 s against a fresh C server. Args: case run connections
run_peer() {
    local case=$1 run=$2 conns=$3 id="$1.peer.$2"
    if [[ $peer_status != ok ]]; then
        bench skip "$case" peer "$run" "$peer_status" >>"$results"
        return
    fi
    start_server "$id.server" "$work/echo_server" -r "$work/$id.rusage.json" 0
    run_waited bench peer "$peer" "$port" "$conns" 3 30 "$case" "$run" "$work/$id.rusage.json"
    stop_server
    if ((rc != 0)); then
        echo "engine.sh: the measuring helper failed on $case / tcp-echo-benchmark (exit $rc)" >&2
        exit 1
    fi
} >>"$results"

# sockperf's own client and server, right after the one-connection pair (loopback latency
# on a VM depends on how busy the CPUs are, so only adjacent runs compare).
run_sockperf() {
    local run=$1 sp_port
    if [[ $sockperf_status != ok ]]; then
        bench skip sockperf sockperf "$run" "$sockperf_status" >>"$results"
        return
    fi
    echo "run $run/$runs: sockperf ping-pong, 1 connection, 5 s..." >&2
    sp_port=$(bench free-port)
    : >"$work/sockperf-server.$run.out"
    sockperf server -i 127.0.0.1 -p "$sp_port" --tcp >"$work/sockperf-server.$run.out" 2>&1 &
    server_pid=$!
    servers+=("$server_pid")
    if bench wait-listen "$sp_port" 5; then
        run_waited timeout 30 sockperf ping-pong -i 127.0.0.1 -p "$sp_port" --tcp -t 5 -m 64 \
            --full-rtt >"$work/sockperf.$run.out" 2>&1
        bench sockperf "$work/sockperf.$run.out" "$rc" sockperf "$run" >>"$results"
    else
        bench skip sockperf sockperf "$run" "sockperf server did not listen within 5 s" >>"$results"
    fi
    stop_server
}

# --- the runs ------------------------------------------------------------------------------
connections=(1 100 1000)
declare -A per_conn=([1]=40000 [100]=2000 [1000]=200)

for ((run = 1; run <= runs; run++)); do
    for c in "${connections[@]}"; do
        m=${per_conn[$c]}
        echo "run $run/$runs: closed loop, $c x $m messages: C client, tcp-echo-benchmark, labrun..." >&2
        run_c "closed-$c" c "$run" c -c "$c" -n "$m" -s 64 -P 1
        run_peer "closed-$c" "$run" "$c"
        run_labrun "closed-$c" "$run" 20 "$c" "$m" 64 'start = "together"' 0ms 10s
        if ((c == 1)); then run_sockperf "$run"; fi
    done

    echo "run $run/$runs: pipelined, 10 x 100,000 messages of 1 KiB, 16 in flight..." >&2
    run_c pipelined c "$run" c -c 10 -n 100000 -s 1024 -P 16
    run_labrun pipelined "$run" 30 10 100000 1024 'start = "together"' 0ms 10s 'pipeline = 16'

    echo "run $run/$runs: 10,000 connections held: C client, then labrun (about 10 s)..." >&2
    run_c held-10k c "$run" c -c 10000 -n 3 -s 64 -P 1
    run_labrun held-10k "$run" 40 10000 3 64 'ramp = "3s"' 3s 10s

    echo "run $run/$runs: C client at 100 x 2,000 against the C server, then echo-async..." >&2
    run_c server-100 c "$run" c -c 100 -n 2000 -s 64 -P 1
    run_c server-100 echo-async "$run" echo-async -c 100 -n 2000 -s 64 -P 1

    echo "run $run/$runs: open loop, 100 connections offered 20,000 msgs/s (labrun only)..." >&2
    run_labrun open-loop "$run" 20 100 400 64 'start = "together"' 0ms 10s 'rate = "20000/s"'
done

all_ok=true
table=$(bench table "$results" "${connections[@]}") || all_ok=false
echo
echo "$table"
notes="Yardstick: benches/c/ built with gcc -O2, a single-threaded epoll echo server (backlog
4096) and an epoll ping-pong client; both sides set TCP_NODELAY. Each closed-loop pair runs
back to back against fresh C servers: 1 x 40,000, 100 x 2,000 and 1000 x 200 messages of 64
ASCII bytes, no think time, all connections started together (the C client paces its
connects, at most 128 awaiting a first reply); tcp-echo-benchmark (crates.io, tokio; counts
responses, verifies nothing) runs the same connections for 3 s between the C client and
labrun, against a fresh C server of its own; its CPU is its wait4 rusage. msgs/s is messages over first connect to
last reply; RTT excludes each connection's first message (labrun counts it as \`wait\`),
both are measured from the message's first write to its last echoed byte. Client CPU is
user+sys: the C client's own getrusage; labrun's wait4 rusage minus the C server's own
(written by the server on SIGTERM). sockperf: \`sockperf ping-pong --tcp -t 5 -m 64
--full-rtt\` against \`sockperf server\` (its own protocol, so it cannot use the C server),
run right after the one-connection pair: loopback RTT on a VM depends on whether the CPUs
are idle (a wakeup from idle costs tens of µs), so only adjacent runs compare. Pipelined: 10
connections x 100,000 messages of 1 KiB with 16 in flight; the C client only counts the
bytes, labrun verifies each one. 10k: labrun 10,000 clients ramped over 3 s, 3 messages each
with 3 s think time (held = the most connected at one instant, from its report), RSS its
VmHWM polled every 20 ms; the C client connects all 10,000 and holds them until the last is
done, RSS its ru_maxrss. echo-async: the C client at 100 x 2,000 against the C server, then
against \`labrun serve echo-async\` (tokio, one event loop per two CPUs; the C server is one
thread); server CPU from the C server's rusage and from
/proc/<pid>/stat for echo-async. Medians over $runs run(s)."
echo
echo "$notes"

if $record; then
    append_results "$root" "$started" "engine vs the C yardstick" "$command_line" "$machine" "$table" "$notes"
fi

$all_ok
