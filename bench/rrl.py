#!/usr/bin/env python3
"""Response rate limiting under a flood: meshdns vs Knot DNS (mod-rrl) vs NSD
(rrl-ratelimit), in one run; writes the figures into docs/benchmarks.md.

    bench/rrl.py                                    3 rounds of 10 s per server (about 2 minutes)
    bench/rrl.py --runs 1 --seconds 3 --no-write    a smoke test

For each server in turn, on loopback:
  * the server runs alone on core 0 (`taskset -c 0`, one UDP worker), with the
    same limit: RATE responses per second per /24 and class, slip 2;
  * a flood: dnsperf from 127.0.0.2 (`-a`) asks one name (`www.bench.test. A`)
    at FLOOD q/s; at the same time a legitimate client, dnsperf from 127.0.0.3,
    asks 1,000 other names at LEGIT q/s (one per name per second). Both run on
    core 1 for SECONDS seconds, bounded in time (`-l`) and count (`-n`);
  * measured: the share of the client's queries answered (its dnsperf's
    "Queries completed" over "Queries sent"), the responses the flood source
    got (the flood dnsperf's "Queries completed": full answers and TC=1 slips),
    and the server's CPU time (utime+stime from /proc/PID/stat, the whole
    process tree, before and after) over the queries sent to it.

Needs root (for the nftables counter), the release binary (--meshdns, default target/release/meshdns or
$CARGO_TARGET_DIR/release/meshdns), nsd, knotd, dnsperf, dig, taskset and two
cores. Every server started is stopped on exit (also on failure or Ctrl-C); a
watchdog stops the script after --max-seconds.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import write_block  # noqa: E402
from procs import cpu_ticks, tree  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- rrl-figures:begin -->"
END = "<!-- rrl-figures:end -->"
BASE = 15400
PORTS = {"meshdns": BASE + 1, "knot": BASE + 11, "nsd": BASE + 21}
FLOOD_SRC, LEGIT_SRC = "127.0.0.2", "127.0.0.3"
LEGIT_NAMES = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = []


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} rrl: {msg}", file=sys.stderr, flush=True)


def stop(proc):
    if proc.poll() is not None:
        return
    pids = tree(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def write_zone(d):
    lines = ["$ORIGIN bench.test.", "$TTL 300", "@ SOA ns h 1 3600 600 86400 30", "@ NS ns", "ns A 192.0.2.1",
             "www A 192.0.2.2"]
    lines += [f"host{i} A 10.{i // 256}.{i % 256}.1" for i in range(LEGIT_NAMES)]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "bench.test.zone"), "w") as f:
        f.write("\n".join(lines) + "\n")


def configs(work, zd, rate):
    os.makedirs(f"{work}/nsd", exist_ok=True)
    os.makedirs(f"{work}/knot/run", exist_ok=True)
    os.makedirs(f"{work}/knot/storage", exist_ok=True)
    with open(f"{work}/nsd/nsd.conf", "w") as f:
        f.write(f"""server:
    server-count: 1
    ip-address: 127.0.0.1@{PORTS['nsd']}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{zd}"
    pidfile: "{work}/nsd/nsd.pid"
    database: ""
    xfrdfile: "{work}/nsd/xfrd.state"
    xfrdir: "{work}/nsd"
    zonelistfile: "{work}/nsd/zone.list"
    logfile: "{work}/nsd/nsd.log"
    rrl-ratelimit: {rate}
    rrl-slip: 2
    rrl-ipv4-prefix-length: 24
    rrl-whitelist-ratelimit: {rate}
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: bench.test.
    zonefile: bench.test.zone
""")
    with open(f"{work}/knot/knot.conf", "w") as f:
        f.write(f"""server:
    rundir: "{work}/knot/run"
    listen: 127.0.0.1@{PORTS['knot']}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: notice
database:
    storage: "{work}/knot/storage"
mod-rrl:
  - id: default
    rate-limit: {rate}
    slip: 2
template:
  - id: default
    storage: "{zd}"
    file: "%s.zone"
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
    global-module: mod-rrl/default
zone:
  - domain: bench.test.
""")


def start(name, binary, work, zd, rate):
    errlog = open(f"{work}/{name}.log", "w")
    if name == "meshdns":
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{PORTS[name]}", "--http", f"127.0.0.1:{BASE + 2}",
               "--grpc", f"127.0.0.1:{BASE + 3}", "--gossip", f"127.0.0.1:{BASE + 4}", "--udp-workers", "1",
               "--data-dir", f"{work}/meshdns-data", "--zone-dir", zd, "--rrl", str(rate)]
        env = dict(os.environ, MESHDNS_LOG_LEVEL="warn", MESHDNS_REPLICATION_QUIC=f"127.0.0.1:{BASE + 8}")
    elif name == "knot":
        cmd, env = ["knotd", "-c", f"{work}/knot/knot.conf"], os.environ
    else:
        cmd, env = ["nsd", "-d", "-c", f"{work}/nsd/nsd.conf"], os.environ
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=errlog, stderr=errlog, env=env)
    STARTED.append(proc)
    deadline = time.time() + 60
    while time.time() < deadline:
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(PORTS[name]), "+short", "+tries=1", "+time=1",
                              "ns.bench.test.", "A"], capture_output=True, text=True).stdout
        if "192.0.2.1" in out:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"{name} did not start; see {work}/{name}.log:\n" + open(f"{work}/{name}.log").read()[-2000:])


NFT_TABLE = "meshdns_rrl_bench"


def nft(*args):
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=True).stdout


def count_flood_responses(port):
    """An nftables counter of UDP datagrams from the server's port to the
    flood source, on the output hook (what the server sent, whether or not
    dnsperf managed to read it). Removed in `main`'s cleanup."""
    nft("add", "table", "inet", NFT_TABLE)
    nft("add", "chain", "inet", NFT_TABLE, "out", "{ type filter hook output priority 0; policy accept; }")
    nft("flush", "chain", "inet", NFT_TABLE, "out")
    nft("add", "rule", "inet", NFT_TABLE, "out", "ip", "daddr", FLOOD_SRC, "udp", "sport", str(port), "counter")


def flood_responses_counted():
    m = re.search(r"counter packets (\d+)", nft("list", "chain", "inet", NFT_TABLE, "out"))
    return int(m.group(1)) if m else -1


def dnsperf(port, src, queries, qps, seconds, clients, outstanding, core):
    cmd = ["taskset", "-c", str(core), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-a", src, "-d", queries,
           "-l", str(seconds), "-Q", str(qps), "-n", str(qps * seconds), "-c", str(clients),
           "-q", str(outstanding), "-t", "1", "-O", "suppress=timeout,unexpected,congestion"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def figure(out, label):
    m = re.search(rf"{label}\s+(\d+)", out)
    if not m:
        raise SystemExit(f"no {label!r} in dnsperf output:\n{out[-2000:]}")
    return int(m.group(1))


def measure(name, proc, work, seconds, flood_qps, legit_qps):
    time.sleep(1)
    count_flood_responses(PORTS[name])
    c0, t0 = cpu_ticks(proc.pid), time.time()
    # The flood generator takes all of core 1; the legitimate client (1k q/s,
    # a few % of a core) runs on core 0 beside the server so that it is not
    # starved of CPU and its losses are the server's.
    flood = dnsperf(PORTS[name], FLOOD_SRC, f"{work}/flood.txt", flood_qps, seconds, 4, 60000, 1)
    legit = dnsperf(PORTS[name], LEGIT_SRC, f"{work}/legit.txt", legit_qps, seconds, 1, 1000, 0)
    fout, _ = flood.communicate(timeout=seconds + 60)
    lout, _ = legit.communicate(timeout=seconds + 60)
    c1, t1 = cpu_ticks(proc.pid), time.time()
    open(f"{work}/{name}-flood.txt", "w").write(fout)
    open(f"{work}/{name}-legit.txt", "w").write(lout)
    r = {
        "flood_sent": figure(fout, "Queries sent:"),
        "flood_answered": figure(fout, "Queries completed:"),
        "flood_responses_sent": flood_responses_counted(),
        "legit_sent": figure(lout, "Queries sent:"),
        "legit_answered": figure(lout, "Queries completed:"),
        "cpu_s": (c1 - c0) / CLK_TCK,
        "wall_s": t1 - t0,
    }
    r["cpu_us_per_query"] = r["cpu_s"] * 1e6 / max(1, r["flood_sent"] + r["legit_sent"])
    log(f"{name}: {r}")
    return r


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "?"


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshdns", default=os.path.join(target, "release", "meshdns"))
    ap.add_argument("--rate", type=int, default=100, help="responses per second per /24 and class (all three)")
    ap.add_argument("--flood-qps", type=int, default=100_000)
    ap.add_argument("--legit-qps", type=int, default=1_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="rounds; servers take turns within each round")
    ap.add_argument("--max-seconds", type=int, default=600, help="watchdog for the whole run")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--servers", default="meshdns,knot,nsd", help="a subset, for smoke tests (implies --no-write)")
    a = ap.parse_args()
    servers = a.servers.split(",")
    if servers != ["meshdns", "knot", "nsd"]:
        a.no_write = True
    if "meshdns" in servers and not os.access(a.meshdns, os.X_OK):
        raise SystemExit(f"no meshdns binary at {a.meshdns} (cargo build --release -p meshdns)")
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(SystemExit("time limit hit")))
    signal.alarm(a.max_seconds)
    work = tempfile.mkdtemp(prefix="meshdns-rrl-")
    zd = f"{work}/zones"
    write_zone(zd)
    configs(work, zd, a.rate)
    open(f"{work}/flood.txt", "w").write("www.bench.test. A\n")
    open(f"{work}/legit.txt", "w").write("".join(f"host{i}.bench.test. A\n" for i in range(LEGIT_NAMES)))
    results = {}
    per_run = {name: [] for name in servers}
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        for run in range(a.runs):
            for name in servers:
                log(f"{name}: starting (round {run + 1} of {a.runs})")
                proc = start(name, a.meshdns, work, zd, a.rate)
                try:
                    per_run[name].append(measure(name, proc, work, a.seconds, a.flood_qps, a.legit_qps))
                finally:
                    stop(proc)
    finally:
        for p in STARTED:
            stop(p)
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True)
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for name, runs in per_run.items():
        total = {k: sum(r[k] for r in runs) for k in runs[0]}
        total["cpu_us_per_query"] = total["cpu_s"] * 1e6 / max(1, total["flood_sent"] + total["legit_sent"])
        total["per_run"] = [r["cpu_us_per_query"] for r in runs]
        results[name] = total
    if a.no_write and len(results) < 3:
        return
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    best_peer = min(results["knot"]["cpu_us_per_query"], results["nsd"]["cpu_us_per_query"])
    lines = [BEGIN, "",
             f"Generated by `bench/rrl.py` on {started:%Y-%m-%d %H:%M} UTC (meshdns commit {commit}, "
             f"{os.cpu_count()} cores; {version(['knotd', '-V'])}; "
             f"{version(['sh', '-c', 'nsd -v 2>&1'])}; load average before {load_before}, after "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}: the machine is shared, so other work ran too).",
             "",
             f"{a.runs} rounds; in each, the servers take turns (meshdns, Knot, NSD); figures are sums over "
             "the rounds. "
             f"Each server alone on core 0 with one UDP worker and the same limit: {a.rate} responses per second "
             f"per /24 and class, slip 2. For {a.seconds} s per turn, dnsperf floods `www.bench.test. A` from "
             f"{FLOOD_SRC} at up to {a.flood_qps:,} q/s (4 clients, 60,000 outstanding, 1 s timeout) while "
             f"another dnsperf from {LEGIT_SRC} asks {LEGIT_NAMES:,} other names at {a.legit_qps:,} q/s. "
             "The flood generator runs on core 1 (it takes all of it); the legitimate client on core 0 beside "
             "the server, so that its losses are the server's, not a starved client's. Responses to the flood "
             "source are counted by an nftables counter on the output hook (what the server sent); dnsperf's own "
             "count of what it managed to read is in brackets. CPU is the server's utime+stime over every query "
             "sent to it.",
             "",
             "| server | flood queries sent | responses to the flood source | legitimate answered | "
             "server CPU per query | per round |",
             "|---|---:|---:|---:|---:|---|"]
    for name, label in [("meshdns", "meshdns"), ("knot", "Knot DNS (mod-rrl)"), ("nsd", "NSD (rrl-ratelimit)")]:
        r = results[name]
        share = 100.0 * r["legit_answered"] / max(1, r["legit_sent"])
        rounds = ", ".join(f"{x:.2f}" for x in r["per_run"])
        lines.append(f"| {label} | {r['flood_sent']:,} ({r['flood_sent'] / (a.seconds * a.runs):,.0f}/s) | "
                     f"{r['flood_responses_sent']:,} ({r['flood_answered']:,}) | {r['legit_answered']:,} of {r['legit_sent']:,} ({share:.2f}%) | "
                     f"{r['cpu_us_per_query']:.2f} µs | {rounds} |")
    m = results["meshdns"]
    lines += ["",
              f"meshdns CPU per query is {m['cpu_us_per_query'] / best_peer:.2f}× the better peer's "
              f"({best_peer:.2f} µs); target: at most 1×, and 100% of the legitimate client answered.",
              "", END]
    print("\n".join(lines))
    if not a.no_write:
        write_block(os.path.join(ROOT, "docs", "benchmarks.md"), BEGIN, END, lines,
                    heading="## Response rate limiting under a flood\n\n")


if __name__ == "__main__":
    main()
