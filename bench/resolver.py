#!/usr/bin/env python3
"""The caching resolver: meshdns vs Unbound vs PowerDNS Recursor, in one run;
writes the section "Resolver: meshdns vs Unbound vs PowerDNS Recursor" of
docs/benchmarks.md (between its markers; the rest of the file is kept).

    python3 bench/resolver.py              full run (about 6-8 minutes)
    BENCH_QUICK=1 python3 bench/resolver.py  smoke test (short runs; prints, writes nothing)
    python3 bench/resolver.py --only hit,full   a subset (prints, writes nothing)

Measured, on loopback, peers in the same run:
  1. hit   cache-hit CPU per query at a fixed 50,000 q/s: each resolver with one
           worker pinned to core 0 (`taskset -c 0`), forwarding to one NSD (core 1)
           that serves a 72,000-name zone; the cache warmed by one pass of the query
           set, then `dnsperf -Q 50000 -l 20` on core 1 with the same set; CPU from
           utime+stime in /proc/PID/stat before and after. Cache-hit ratio from each
           resolver's own counters.
  2. instr user-space instructions per cache hit under `valgrind --tool=callgrind`
           (meshdns, Unbound, PowerDNS Recursor): warmed, counters zeroed
           (`callgrind_control -z`), N identical cached queries, dumped
           (`callgrind_control -d`); instructions / queries the resolver counted.
  3. full  full-load queries per second on the warm cache (dnsperf without -Q).
  4. cold  cold-cache recursive resolution of 1,000 lab names, meshdns vs Unbound:
           the ignored Rust test node/tests/bench_resolver_cold.rs (the lab on
           127.53.N.x:53, root needed), built with cargo and run here.
  5. mem   resident memory per million cached RRsets: VmRSS before and after
           filling the cache with distinct names (one A RRset each).
  6. l3    meshdns: time from restart to the first cache hit from the warm-start
           file (DATA_DIR/cache.l3), the upstream gone.

Needs: the release binary (--meshdns, default $CARGO_TARGET_DIR/release/meshdns or
target/release/meshdns), nsd, unbound, unbound-control, pdns_recursor,
rec_control, valgrind, dnsperf, taskset, cargo (for 4); two cores; root for 4.
Every process started is stopped on exit; a watchdog ends the script after
--max-seconds. Traffic goes to 127.0.0.1 and the lab's 127.53.N.x only.
"""

import argparse
import datetime
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import write_block  # noqa: E402
from procs import cpu_ticks, tree  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- resolver-figures:begin -->"
END = "<!-- resolver-figures:end -->"
HEADING = "## Resolver: meshdns vs Unbound vs PowerDNS Recursor\n\n"
BASE = 15600
AUTH = BASE + 1
PORTS = {"meshdns": BASE + 11, "unbound": BASE + 21, "pdns": BASE + 31}
MESH_HTTP, UNBOUND_CTL = BASE + 12, BASE + 22
DEAD_UPSTREAM = BASE + 99  # nothing listens there: the L3 restart's upstream
ZONE, MEMZONE = "res.example.", "mem.example."
NAMES = 72_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
LABELS = {"meshdns": "meshdns", "unbound": "Unbound", "pdns": "PowerDNS Recursor"}
STARTED = []
COMMANDS = []
WORK = ""


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} resolver-bench: {msg}", file=sys.stderr, flush=True)


def cmdlog(cmd):
    s = " ".join(cmd) if isinstance(cmd, list) else cmd
    s = s.replace(WORK, "$WORK").replace(ROOT + "/", "")
    if s not in COMMANDS:
        COMMANDS.append(s)


# ------------------------------------------------------------------ processes

def rss_kb(pid):
    total = 0
    for p in tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def sys_busy():
    b = 0
    for line in open("/proc/stat"):
        if re.match(r"cpu\d", line):
            f = [int(x) for x in line.split()[1:]]
            b += f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    return b


def wait_quiet(limit_s):
    """Waits (at most limit_s) until less than 15% of one core is busy over
    1 s; returns the last sample (% of one core)."""
    pct = 0
    for _ in range(max(1, limit_s)):
        b0 = sys_busy()
        time.sleep(1)
        pct = (sys_busy() - b0) * 100 // CLK_TCK
        if pct < 15:
            break
    return pct


def start(name, cmd, env=None, core=0):
    full = ["taskset", "-c", str(core)] + cmd if core is not None else cmd
    cmdlog(full)
    errlog = open(f"{WORK}/{name}.log", "a")
    proc = subprocess.Popen(full, stdout=errlog, stderr=errlog, env=env or os.environ, stdin=subprocess.DEVNULL)
    proc.logname = f"{WORK}/{name}.log"
    STARTED.append(proc)
    return proc


def stop(proc, sig=signal.SIGTERM, wait_s=15):
    if proc.poll() is not None:
        return
    pids = tree(proc.pid)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=wait_s)
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


# ------------------------------------------------------------------- DNS bits

def query_packet(qid, name, qtype=1):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def ask(port, name, timeout=0.005, host="127.0.0.1"):
    """One UDP query; the rcode and answer count, or None without an answer in time."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    qid = int.from_bytes(os.urandom(2), "big")
    try:
        s.sendto(query_packet(qid, name), (host, port))
        while True:
            data, _ = s.recvfrom(4096)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                return data[3] & 0xF, struct.unpack(">H", data[6:8])[0]
    except OSError:
        return None
    finally:
        s.close()


def wait_answer(port, name, proc, limit_s=60):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        r = ask(port, name, timeout=0.5)
        if r and r[0] == 0 and r[1] > 0:
            return True
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"{proc.logname}: no answer for {name} on port {port}:\n" + open(proc.logname).read()[-3000:])


# ---------------------------------------------------------------------- files

def write_zones(d, mem_names):
    """The upstream's zones: ZONE with NAMES owner names (hosts with A, every
    4th AAAA, every 8th TXT; one in ten a CNAME to a host) and MEMZONE with
    `mem_names` names, one A each. Returns (query lines, memory query lines)."""
    os.makedirs(d, exist_ok=True)
    lines = [f"$ORIGIN {ZONE}", "$TTL 86400", "@ SOA ns hostmaster 1 3600 600 86400 3600", "@ NS ns",
             "ns A 127.0.0.1"]
    queries = []
    hosts = NAMES * 9 // 10
    for i in range(hosts):
        lines.append(f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        queries.append(f"h{i}.{ZONE} A")
        if i % 4 == 0:
            lines.append(f"h{i} AAAA 2001:db8::{i:x}")
            queries.append(f"h{i}.{ZONE} AAAA")
        if i % 8 == 0:
            lines.append(f'h{i} TXT "host {i}"')
            queries.append(f"h{i}.{ZONE} TXT")
    for i in range(NAMES - hosts):
        lines.append(f"c{i} CNAME h{i * 7 % hosts}")
        queries.append(f"c{i}.{ZONE} A")
    # NXDOMAIN and NODATA answers are cached too (RFC 2308).
    for i in range(NAMES // 20):
        queries.append(f"nx{i}.{ZONE} A")
    for i in range(NAMES // 20):
        queries.append(f"h{i * 4 + 1}.{ZONE} MX")
    with open(f"{d}/res.example.zone", "w") as f:
        f.write("\n".join(lines) + "\n")
    mem = [f"$ORIGIN {MEMZONE}", "$TTL 86400", "@ SOA ns hostmaster 1 3600 600 86400 3600", "@ NS ns",
           "ns A 127.0.0.1"]
    mem += [f"m{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(mem_names)]
    with open(f"{d}/mem.example.zone", "w") as f:
        f.write("\n".join(mem) + "\n")
    # Shuffle deterministically so that no type or kind comes in one block.
    import random
    random.Random(13).shuffle(queries)
    return queries, [f"m{i}.{MEMZONE} A" for i in range(mem_names)]


def nsd_conf(zd):
    os.makedirs(f"{WORK}/nsd", exist_ok=True)
    conf = f"""server:
    server-count: 1
    ip-address: 127.0.0.1@{AUTH}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{zd}"
    pidfile: "{WORK}/nsd/nsd.pid"
    database: ""
    xfrdfile: "{WORK}/nsd/xfrd.state"
    xfrdir: "{WORK}/nsd"
    zonelistfile: "{WORK}/nsd/zone.list"
    logfile: "{WORK}/nsd/nsd.log"
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: res.example.zone
zone:
    name: {MEMZONE}
    zonefile: mem.example.zone
"""
    open(f"{WORK}/nsd/nsd.conf", "w").write(conf)
    return f"{WORK}/nsd/nsd.conf"


def unbound_conf(big_cache):
    d = f"{WORK}/unbound"
    os.makedirs(d, exist_ok=True)
    msg, rrset = ("1g", "2g") if big_cache else ("256m", "256m")
    conf = f"""server:
    interface: 127.0.0.1
    port: {PORTS['unbound']}
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    msg-cache-size: {msg}
    rrset-cache-size: {rrset}
    extended-statistics: yes
remote-control:
    control-enable: yes
    control-interface: 127.0.0.1
    control-port: {UNBOUND_CTL}
    control-use-cert: no
forward-zone:
    name: "{ZONE}"
    forward-addr: 127.0.0.1@{AUTH}
forward-zone:
    name: "{MEMZONE}"
    forward-addr: 127.0.0.1@{AUTH}
"""
    open(f"{d}/unbound.conf", "w").write(conf)
    return f"{d}/unbound.conf"


# ---------------------------------------------------------------- resolvers

class Resolver:
    """One resolver under test: how to start it and read its counters."""

    def __init__(self, kind, binary, big_cache=False, upstream=AUTH, data_dir=None, valgrind=None):
        self.kind, self.port = kind, PORTS[kind]
        self.binary, self.big_cache, self.upstream = binary, big_cache, upstream
        self.data_dir = data_dir or f"{WORK}/meshdns-data"
        self.valgrind = valgrind or []
        self.proc = None

    def command(self):
        if self.kind == "meshdns":
            cmd = [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--http", f"127.0.0.1:{MESH_HTTP}",
                   "--grpc", f"127.0.0.1:{BASE + 13}", "--gossip", f"127.0.0.1:{BASE + 14}",
                   "--data-dir", self.data_dir, "--zone-dir", f"{WORK}/empty-zones", "--udp-workers", "1",
                   "--resolver", "forward", "--forward", f"udp://127.0.0.1:{self.upstream}",
                   "--recursion-allow", "127.0.0.0/8", "--query-loopback"]
            if self.big_cache:
                cmd += ["--config", f"{WORK}/meshdns-big-cache.toml"]
            return cmd
        if self.kind == "unbound":
            return ["unbound", "-d", "-c", unbound_conf(self.big_cache)]
        os.makedirs(f"{WORK}/pdns", exist_ok=True)
        entries = "4000000" if self.big_cache else "1000000"
        return ["pdns_recursor", "--daemon=no", f"--config-dir={WORK}/pdns", f"--socket-dir={WORK}/pdns",
                "--local-address=127.0.0.1", f"--local-port={self.port}", "--threads=1",
                "--pdns-distributes-queries=no", "--allow-from=127.0.0.0/8", "--dont-query=",
                f"--forward-zones={ZONE}=127.0.0.1:{AUTH},{MEMZONE}=127.0.0.1:{AUTH}", "--dnssec=off",
                f"--max-cache-entries={entries}", f"--max-packetcache-entries={entries}", "--disable-syslog",
                "--loglevel=3", "--quiet=yes"]

    def start(self, core=0):
        env = dict(os.environ, MESHDNS_LOG_LEVEL="info", MESHDNS_REPLICATION_QUIC=f"127.0.0.1:{BASE + 18}")
        cmd = self.valgrind + self.command()
        self.proc = start(self.kind, cmd, env=env, core=core)
        self.t_launch = time.time()
        return self

    def wait(self, limit_s=60):
        wait_answer(self.port, f"h1.{ZONE}", self.proc, limit_s)
        return self

    def stop(self):
        if self.proc:
            stop(self.proc)

    def counters(self):
        """queries, cache hits, cache misses (as the resolver counts them)."""
        try:
            if self.kind == "meshdns":
                text = urllib.request.urlopen(f"http://127.0.0.1:{MESH_HTTP}/metrics", timeout=10).read().decode()
                v = {}
                for line in text.splitlines():
                    m = re.match(r"^(meshdns_resolver_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
                    if m:
                        v[m.group(1)] = float(m.group(2))
                hits = v.get("meshdns_resolver_cache_hits_total", 0)
                misses = v.get("meshdns_resolver_cache_misses_total", 0)
                levels = {k: x for k, x in v.items() if k.startswith("meshdns_resolver_cache_level_hits_total")}
                return {"queries": hits + misses, "hits": hits, "misses": misses,
                        "entries": v.get("meshdns_resolver_cache_entries", 0),
                        "mem_cache": v.get("meshdns_resolver_cache_bytes", 0), "levels": levels}
            if self.kind == "unbound":
                out = subprocess.run(["unbound-control", "-c", f"{WORK}/unbound/unbound.conf", "stats_noreset"],
                                     capture_output=True, text=True, timeout=30).stdout
                v = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
                f = lambda k: float(v.get(k, 0))  # noqa: E731
                return {"queries": f("total.num.queries"), "hits": f("total.num.cachehits"),
                        "misses": f("total.num.cachemiss"),
                        "entries": f("msg.cache.count"), "rrsets": f("rrset.cache.count"),
                        "mem_cache": f("mem.cache.rrset") + f("mem.cache.message")}
            out = subprocess.run(["rec_control", f"--socket-dir={WORK}/pdns", "get-all"],
                                 capture_output=True, text=True, timeout=30).stdout
            v = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
            f = lambda k: float(v.get(k, 0))  # noqa: E731
            return {"queries": f("questions"), "hits": f("packetcache-hits") + f("cache-hits"),
                    "pc_hits": f("packetcache-hits"), "misses": f("cache-misses"),
                    "entries": f("cache-entries"), "pc_entries": f("packetcache-entries")}
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            log(f"{self.kind}: counters: {e}")
            return {}


def dnsperf(port, qfile, args, core=1, clients=8):
    cmd = ["taskset", "-c", str(core), "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile,
           "-c", str(clients)] + [str(a) for a in args]
    cmdlog(cmd)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = {"client_cpu_s": ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime}
    for key, pat in [("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                     ("lost", r"Queries lost:\s+(\d+)"), ("qps", r"Queries per second:\s+([\d.]+)"),
                     ("latency_s", r"Average Latency \(s\):\s+([\d.]+)"), ("run_s", r"Run time \(s\):\s+([\d.]+)")]:
        m = re.search(pat, out)
        r[key] = float(m.group(1)) if m else 0.0
    m = re.search(r"Response codes:\s+(.*)", out)
    r["rcodes"] = m.group(1).strip() if m else "?"
    if not m:
        log(f"dnsperf output unexpected:\n{out[-1500:]}")
    return r


def measured(res, qfile, args, quiet_s):
    """A dnsperf run with the resolver's CPU, counters and the machine's other load."""
    busy_before = wait_quiet(quiet_s)
    c0, k0, b0 = res.counters(), cpu_ticks(res.proc.pid), sys_busy()
    r = dnsperf(res.port, qfile, args)
    k1, b1, c1 = cpu_ticks(res.proc.pid), sys_busy(), res.counters()
    r["cpu_s"] = (k1 - k0) / CLK_TCK
    r["cpu_us"] = r["cpu_s"] * 1e6 / max(1, r["completed"])
    other = (b1 - b0) / CLK_TCK - r["cpu_s"] - r["client_cpu_s"]
    r["other_pct"] = max(0.0, other / max(0.001, r["run_s"]) * 100)
    r["busy_before_pct"] = busy_before
    dq = c1.get("queries", 0) - c0.get("queries", 0)
    dh = c1.get("hits", 0) - c0.get("hits", 0)
    r["hit_ratio"] = dh / dq if dq > 0 else None
    r["counted"] = dq
    if res.kind == "meshdns":
        r["levels"] = {k.split('"')[1] if '"' in k else k: c1["levels"].get(k, 0) - c0.get("levels", {}).get(k, 0)
                       for k in c1.get("levels", {})}
    if res.kind == "pdns" and dq > 0:
        r["pc_ratio"] = (c1.get("pc_hits", 0) - c0.get("pc_hits", 0)) / dq
    return r


# ------------------------------------------------------------------ the tests

def test_hit_and_full(binary, kinds, qfile, nq, a, R):
    """All resolvers up at once (each on core 0, idle but for its turn),
    each warmed; then rounds in which they take turns, first at the fixed
    rate, then at full load. The least disturbed round (least CPU used by
    other processes) is the headline; every round is kept."""
    running = []
    try:
        for kind in kinds:
            res = Resolver(kind, binary).start().wait()
            running.append(res)
            log(f"{kind}: warming the cache (one pass of {nq:,} queries)")
            w = dnsperf(res.port, qfile, ["-n", "1", "-Q", "20000", "-t", "5", "-q", "200"])
            R["warm"][kind] = w
            log(f"{kind}: warm pass {w['completed']:.0f}/{w['sent']:.0f} answered, rcodes {w['rcodes']}")
        for test, args in (("hit", ["-Q", a.rate, "-l", a.rate_seconds]), ("full", ["-l", a.full_seconds])):
            if test not in a.only:
                continue
            t_test = time.time()
            for rnd in range(a.rounds + 1):
                for res in running:
                    done = R["rounds"].get(test, {}).get(res.kind, [])
                    if rnd == a.rounds:
                        # One more turn for a resolver all of whose rounds other
                        # processes disturbed (over 30% of a core), while time allows.
                        if min(r["other_pct"] for r in done) <= 30 or time.time() - t_test > a.retry_budget:
                            continue
                        log(f"{res.kind} {test}: every round disturbed, one more")
                    r = measured(res, qfile, args, a.quiet)
                    R["rounds"].setdefault(test, {}).setdefault(res.kind, []).append(r)
                    log(f"{res.kind} {test} round {rnd + 1}: {r['qps']:,.0f} q/s, {r['cpu_us']:.2f} µs/query, "
                        f"hit ratio {r['hit_ratio']}, lost {r['lost']:.0f}/{r['sent']:.0f}, "
                        f"other {r['other_pct']:.0f}%")
            for kind, rs in R["rounds"][test].items():
                R[test][kind] = min(rs, key=lambda r: r["other_pct"])
        for res in running:
            R["rss_warm_kb"][res.kind] = rss_kb(res.proc.pid)
            R["threads"][res.kind] = len(os.listdir(f"/proc/{res.proc.pid}/task"))
    finally:
        for res in running:
            res.stop()


def callgrind_total(path):
    for line in open(path):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def test_instr(binary, kinds, a, R):
    qfile = f"{WORK}/one.txt"
    open(qfile, "w").write(f"h1.{ZONE} A\n")
    for kind in kinds:
        out = f"{WORK}/callgrind.{kind}"
        vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
        res = Resolver(kind, binary, valgrind=vg).start(core=None).wait(limit_s=120)
        try:
            # Warm the code paths and caches (L1, L2), not only the answer.
            dnsperf(res.port, qfile, ["-n", "500", "-Q", "500", "-t", "5"], core=1, clients=1)
            time.sleep(0.5)
            c0 = res.counters()
            subprocess.run(["callgrind_control", "-z", str(res.proc.pid)], capture_output=True, timeout=60)
            r = dnsperf(res.port, qfile, ["-n", a.instr_queries, "-Q", a.instr_rate, "-t", "5"],
                        core=1, clients=1)
            for f in glob.glob(f"{out}.{res.proc.pid}.*"):
                os.remove(f)
            subprocess.run(["callgrind_control", "-d", str(res.proc.pid)], capture_output=True, timeout=60)
            time.sleep(0.5)
            c1 = res.counters()
            dumps = sorted(glob.glob(f"{out}.{res.proc.pid}.*"))
            if not dumps:
                raise SystemExit(f"callgrind_control -d left no dump for {kind} in {WORK}")
            instr = sum(callgrind_total(f) for f in dumps)
            n = c1.get("queries", 0) - c0.get("queries", 0)
            hits = c1.get("hits", 0) - c0.get("hits", 0)
            R["instr"][kind] = {"instr": instr, "queries": n, "hits": hits, "completed": r["completed"],
                                "lost": r["lost"], "per_query": instr / max(1, n)}
            log(f"{kind}: {instr:,} instructions over {n:.0f} queries ({hits:.0f} hits): "
                f"{instr / max(1, n):,.0f} per query")
        finally:
            res.stop()


def build_cold():
    """Builds the ignored cold-cache test (behind the shared build lock
    where there is one); returns the test executable."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    build = ["cargo", "test", "--release", "-p", "meshdns", "--test", "bench_resolver_cold", "--no-run"]
    lock = ["flock", "-o", "/tmp/meshdns-cargo.lock"] if os.path.exists("/tmp/meshdns-cargo.lock") else []
    log("building the cold-cache test (cargo, behind the shared build lock)")
    b = subprocess.run(lock + build, cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=target))
    m = re.search(r"Executable tests/bench_resolver_cold\.rs \(([^)]+)\)", b.stderr)
    if b.returncode != 0 or not m:
        raise SystemExit(f"cargo test --no-run failed:\n{b.stderr[-3000:]}")
    cmdlog(lock + build)
    return m.group(1) if os.path.isabs(m.group(1)) else os.path.join(ROOT, m.group(1))


def test_cold(exe, a, R):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    run = [exe, "--ignored", "--nocapture", "--exact", "cold_cache_resolution_meshdns_vs_unbound"]
    cmdlog(f"BENCH_COLD_NAMES={a.cold_names} " + " ".join(run).replace(target, "$CARGO_TARGET_DIR")
           + "   # = cargo test --release -p meshdns --test bench_resolver_cold -- --ignored --nocapture")
    wait_quiet(a.quiet)
    t0 = time.time()
    p = subprocess.run(run, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, BENCH_COLD_NAMES=str(a.cold_names)))
    m = re.search(r"^BENCH_JSON (.*)$", p.stdout, re.M)
    if not m:
        raise SystemExit(f"the cold-cache test printed no figures (exit {p.returncode}):\n"
                         f"{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    R["cold"] = json.loads(m.group(1))
    R["cold"]["wall_s"] = time.time() - t0
    R["cold"]["rc"] = p.returncode
    log(f"cold: {R['cold']}")


def test_mem(binary, kinds, mqfile, nmem, a, R):
    open(f"{WORK}/meshdns-big-cache.toml", "w").write("[resolver]\ncache_bytes = 4294967296\n")
    for kind in kinds:
        shutil.rmtree(f"{WORK}/meshdns-data", ignore_errors=True)
        res = Resolver(kind, binary, big_cache=True).start().wait()
        try:
            time.sleep(1)
            c0, r0 = res.counters(), rss_kb(res.proc.pid)
            w = dnsperf(res.port, mqfile, ["-n", "1", "-Q", "25000", "-t", "5", "-q", "500"])
            time.sleep(1)
            c1, r1 = res.counters(), rss_kb(res.proc.pid)
            d = {"rss0_kb": r0, "rss1_kb": r1, "completed": w["completed"], "lost": w["lost"],
                 "entries": c1.get("entries", 0) - c0.get("entries", 0),
                 "rrsets": c1.get("rrsets", 0) - c0.get("rrsets", 0),
                 "own_bytes": c1.get("mem_cache")}
            d["mib_per_million"] = (r1 - r0) / 1024 / max(1, w["completed"]) * 1e6
            R["mem"][kind] = d
            log(f"{kind}: RSS {r0 / 1024:.1f} -> {r1 / 1024:.1f} MiB for {w['completed']:.0f} names: "
                f"{d['mib_per_million']:,.0f} MiB per million; counters {c1}")
        finally:
            res.stop()


def test_l3(binary, qfile, a, R):
    dd = f"{WORK}/meshdns-l3"
    shutil.rmtree(dd, ignore_errors=True)
    res = Resolver("meshdns", binary, data_dir=dd).start().wait()
    w = dnsperf(res.port, qfile, ["-n", "1", "-Q", "20000", "-t", "5", "-q", "200"])
    entries = res.counters().get("entries", 0)
    t0 = time.time()
    stop(res.proc, wait_s=60)
    stop_ms = (time.time() - t0) * 1e3
    path = f"{dd}/cache.l3"
    if not os.path.exists(path):
        raise SystemExit(f"no {path} after SIGTERM:\n" + open(res.proc.logname).read()[-2000:])
    size = os.path.getsize(path)
    probe = f"h{NAMES // 3}.{ZONE}"
    # Restart with an upstream where nothing listens: every answer must come from the file.
    again = Resolver("meshdns", binary, data_dir=dd, upstream=DEAD_UPSTREAM)
    logpos = os.path.getsize(f"{WORK}/meshdns.log")
    again.start()
    t_launch, first, tries = again.t_launch, None, 0
    try:
        while time.time() - t_launch < 30:
            tries += 1
            r = ask(again.port, probe, timeout=0.005)
            if r and r[0] == 0 and r[1] > 0:
                first = (time.time() - t_launch) * 1e3
                break
            if again.proc.poll() is not None:
                break
            if not r:
                continue  # the 5 ms timeout was the wait
            time.sleep(0.005)
        # A name the upstream never answered is not in the file: SERVFAIL or no answer.
        miss = ask(again.port, f"never-asked.{ZONE}", timeout=3)
        c = again.counters()
    finally:
        again.stop()
    # The log is read once the node has stopped: its lines are all written then.
    logtext = re.sub(r"\x1b\[[0-9;]*m", "", open(f"{WORK}/meshdns.log").read()[logpos:])
    m = re.search(r"warm start.*?answers=(\d+)", logtext)
    n_file = int(m.group(1)) if m else None
    m = re.search(r"startup_ms=(\d+)", logtext)
    startup = int(m.group(1)) if m else None
    R["l3"] = {"first_hit_ms": first, "polls": tries, "file_bytes": size, "file_answers": n_file,
               "entries_before": entries, "warm_completed": w["completed"], "stop_ms": stop_ms,
               "startup_ms": startup, "never_asked": miss, "disk_hits_metric": c}
    log(f"l3: {R['l3']}")


# --------------------------------------------------------------------- report

def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip().splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def fmt(x, f="{:,.2f}", none="–"):
    return none if x is None else f.format(x)


def rounds_text(R, test, kind, key):
    rs = R["rounds"].get(test, {}).get(kind, [])
    f = "{:,.0f}" if key == "qps" else "{:.2f}"
    return ", ".join(f"{f.format(r[key])} ({r['other_pct']:.0f}%)" for r in rs)


def report(R, a, meta):
    L = [BEGIN, ""]
    w = L.append
    w(f"Generated by `bench/resolver.py` on {meta['date']} (meshdns commit {meta['commit']}{meta['dirty']}; "
      f"{meta['cpu']}, {os.cpu_count()} cores; {meta['unbound']}; {meta['pdns']}; {meta['nsd']}; "
      f"dnsperf {meta['dnsperf']}; {meta['valgrind']}). The run took {meta['wall_s'] / 60:.1f} minutes "
      f"(after {meta['build_s']:.0f} s building the cold-cache test). "
      f"The machine is shared with other agents' builds and tests: load average {meta['load0']} before, "
      f"{meta['load1']} after; each measured run waited (at most {a.quiet} s) for less than 15% of a core "
      f"to be busy, and the \"other CPU\" column says how much of the machine went to other processes during it.")
    w("")
    w("Setup: the three resolvers run side by side, each pinned to core 0 with one worker, idle except "
      "the one under test: "
      "meshdns `--udp-workers 1`, Unbound `num-threads: 1`, PowerDNS Recursor `--threads=1 "
      "--pdns-distributes-queries=no`, all in forward mode to one NSD (`server-count: 1`, on core 1) serving "
      f"`{ZONE}` ({NAMES:,} names: hosts with A, every 4th AAAA, every 8th TXT; one in ten a CNAME to a host) and "
      f"`{MEMZONE}` ({a.mem_names:,} names, one A each). Query set: {meta['nq']:,} questions, each asked once per "
      "pass, shuffled: A/AAAA/TXT of the hosts, A of the CNAMEs (answer: CNAME + A), 5% NXDOMAIN, 5% NODATA (MX). "
      "Unbound: `module-config: \"iterator\"`, `msg-cache-size`/`rrset-cache-size` 256m (1g/2g for the memory "
      "test); PowerDNS: `--dnssec=off`; meshdns forward mode does not validate either. dnsperf on core 1, "
      "8 clients, UDP over 127.0.0.1. Each cache is warmed by one pass of the query set at 20,000 q/s "
      "(`-n 1`) before the measured runs. Then, for the fixed rate and again for full load, "
      f"{a.rounds} rounds in which the resolvers take turns (meshdns, Unbound, PowerDNS), and one more for a "
      "resolver whose every round was disturbed (over 30% of a core used by others) if the test is less than "
      f"{a.retry_budget} s old; the round in which other "
      "processes took the least CPU (\"other CPU\": all busy time of both cores from `/proc/stat` minus the "
      "resolver's and dnsperf's, in % of one core) is shown, and every round in the last column.")
    w("")
    kinds = [k for k in ("meshdns", "unbound", "pdns") if k in R["hit"] or k in R["full"]]
    if R["hit"]:
        w(f"### 1. Cache-hit CPU per query at a fixed {a.rate:,} q/s ({a.rate_seconds} s)")
        w("")
        w("| resolver | queries completed | lost | cache-hit ratio (its own counters) | avg latency | "
          "resolver CPU | **CPU per query** | other CPU | every round: µs (other CPU) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for k in kinds:
            r = R["hit"].get(k)
            if not r:
                continue
            hr = fmt(r["hit_ratio"] and r["hit_ratio"] * 100, "{:.2f}%")
            if k == "pdns" and r.get("pc_ratio") is not None:
                hr += f" (packet cache {r['pc_ratio'] * 100:.2f}%)"
            w(f"| {LABELS[k]} | {r['completed']:,.0f} | {r['lost']:,.0f} | {hr} | {r['latency_s'] * 1e3:.3f} ms | "
              f"{r['cpu_s']:.2f} s ({r['cpu_s'] / max(0.001, r['run_s']) * 100:.0f}% of a core) | "
              f"**{r['cpu_us']:.2f} µs** | {r['other_pct']:.0f}% | {rounds_text(R, 'hit', k, 'cpu_us')} |")
        w("")
        m = R["hit"].get("meshdns")
        if m and m.get("levels"):
            w("meshdns hits by cache level in that run: " + ", ".join(
                f"{k} {v:,.0f}" for k, v in sorted(m["levels"].items())) + " (the rest, if any, from the "
                "worker's L1, which has no counter of its own). The query set, cycled, holds "
                f"{meta['nq']:,} distinct questions, 25× the 4,096 slots of meshdns's per-worker L1, so these "
                "hits take the shared L2 path (one shard lock); test 2 (one name) measures the L1 path.")
            w("")
        peers = {k: R["hit"][k]["cpu_us"] for k in ("unbound", "pdns") if k in R["hit"]}
        if m and peers:
            w("meshdns CPU per cached query: " + ", ".join(
                f"{m['cpu_us'] / v:.2f}× {LABELS[k]}'s" for k, v in peers.items()) + ".")
            w("")
        w("Hit ratio: meshdns `meshdns_resolver_cache_hits_total` over hits + misses; Unbound "
          "`total.num.cachehits` over `total.num.queries` (`unbound-control stats_noreset`); PowerDNS "
          "(`packetcache-hits` + `cache-hits`) over `questions` (`rec_control get-all`), its packet cache in "
          "brackets; deltas over the run. CPU: utime+stime of the resolver's process (all threads) from "
          "`/proc/PID/stat`, before and after, over the queries dnsperf completed.")
        w("")
    if R["instr"]:
        w(f"### 2. Instructions per cache hit (callgrind, {a.instr_queries:,} identical cached queries)")
        w("")
        w("| resolver | instructions in the query phase | queries the resolver counted | of them cache hits | "
          "**instructions per query** |")
        w("|---|---:|---:|---:|---:|")
        for k in ("meshdns", "unbound", "pdns"):
            r = R["instr"].get(k)
            if r:
                w(f"| {LABELS[k]} | {r['instr']:,} | {r['queries']:,.0f} | {r['hits']:,.0f} | "
                  f"**{r['per_query']:,.0f}** |")
        w("")
        if "meshdns" in R["instr"] and "unbound" in R["instr"]:
            ratio = R["instr"]["meshdns"]["per_query"] / max(1, R["instr"]["unbound"]["per_query"])
            w(f"meshdns / Unbound: **{ratio:.2f}×** (target of issue 13: at most 0.5×: "
              f"{'met' if ratio <= 0.5 else 'NOT met'}).")
            w("")
        w(f"Each resolver runs under `valgrind --tool=callgrind` (not pinned), forwarding to the NSD; "
          f"`h1.{ZONE} A` is asked 500 times (the first a miss) to warm the cache and the code paths, then "
          f"`callgrind_control -z PID` zeroes the counters, dnsperf (1 client) sends the same question "
          f"{a.instr_queries:,} times at {a.instr_rate:,} q/s, `callgrind_control -d PID` dumps, and the dump's "
          "total instruction count (every thread, user space only: valgrind does not see the kernel's "
          "share of recvfrom/sendto) is divided by the queries the resolver itself counted over the phase "
          "(its counters read before the zeroing and after the dump). Idle work in the phase (timers, "
          "background threads) is included.")
        w("")
    if R["full"]:
        w(f"### 3. Full load on a warm cache ({a.full_seconds} s, no rate limit)")
        w("")
        w("| resolver | queries/s | lost / sent | avg latency | resolver CPU busy | CPU per query | "
          "dnsperf CPU busy | cache-hit ratio | other CPU | every round: q/s (other CPU) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for k in kinds:
            r = R["full"].get(k)
            if not r:
                continue
            lp = r["lost"] * 100 / max(1, r["sent"])
            w(f"| {LABELS[k]} | {r['qps']:,.0f} | {r['lost']:,.0f} / {r['sent']:,.0f} ({lp:.3f}%) | "
              f"{r['latency_s'] * 1e3:.3f} ms | {r['cpu_s'] / max(0.001, r['run_s']) * 100:.0f}% | "
              f"{r['cpu_us']:.2f} µs | {r['client_cpu_s'] / max(0.001, r['run_s']) * 100:.0f}% | "
              f"{fmt(r['hit_ratio'] and r['hit_ratio'] * 100, '{:.2f}%')} | {r['other_pct']:.0f}% | "
              f"{rounds_text(R, 'full', k, 'qps')} |")
        w("")
        w("dnsperf (one core) may be the bottleneck where its CPU busy is near 100%: then the resolver's "
          "CPU per query is the figure to compare.")
        w("")
    if R["cold"]:
        c = R["cold"]
        w(f"### 4. Cold cache: recursive resolution of {c['names']:,} lab names")
        w("")
        w("| resolver | total (sequential) | mean | p50 | p90 | p99 | max | failed | answers with AD |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in ("meshdns", "unbound"):
            r = c[k]
            w(f"| {LABELS[k]} | {r['total_ms']:,.0f} ms | {r['mean_ms']:.2f} ms | {r['p50_ms']:.2f} ms | "
              f"{r['p90_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['max_ms']:.2f} ms | {r['failed']} | {r['secure']} |")
        w("")
        for k in ("meshdns", "unbound"):
            z = c[k].get("p50_by_zone", {})
            w(f"p50 by zone, {LABELS[k]}: " + ", ".join(f"`{n}` {v:.3f} ms" for n, v in z.items()) + ".")
            w("")
        w(f"meshdns sent {c.get('meshdns_upstream_queries', 0):,} queries to the lab's servers for the "
          f"{c['names']:,} names ({c.get('meshdns_upstream_tcp', 0)} over TCP).")
        w("")
        w(f"`node/tests/bench_resolver_cold.rs` (ignored test): the lab internet of `node/tests/common/lab.rs` "
          f"(NSD and Knot on 127.53.N.x:53: a signed root, TLDs, signed and unsigned zones; started in "
          f"{c['lab_start_ms'] / 1000:.1f} s) with {c['names']:,} extra names `coldI` spread evenly over "
          f"{c['zones']} zones: `hosts.example.` (unsigned), `insecure.` (unsigned TLD), `good.sec.` (NSEC) and "
          "`nsec3.sec.` (NSEC3, opt-out). meshdns (`--resolver recursive --root-hints … --trust-anchor … "
          "--query-loopback`, 2 UDP workers, not pinned) and the lab's Unbound (`validator iterator`, same hints "
          "and anchor, qname minimisation, 1 thread) start with empty caches; each name's `A` (DO=1) is asked "
          "once, one after the other, meshdns first, and each exchange timed at the client. The first name of "
          "each zone pays for the root, TLD and delegation (and their DNSKEY/DS); the others one query to the "
          "zone's server plus validation.")
        w("")
    if R["mem"]:
        w(f"### 5. Resident memory per million cached RRsets")
        w("")
        w("| resolver | names answered | RSS before | RSS after | cache entries added (its counters) | "
          "cache size by its own account | **RSS per million names** |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for k in ("meshdns", "unbound", "pdns"):
            r = R["mem"].get(k)
            if not r:
                continue
            ent = f"{r['entries']:,.0f}"
            if k == "unbound":
                ent += f" msg, {r['rrsets']:,.0f} RRsets"
            w(f"| {LABELS[k]} | {r['completed']:,.0f} (lost {r['lost']:,.0f}) | {r['rss0_kb'] / 1024:,.1f} MiB | "
              f"{r['rss1_kb'] / 1024:,.1f} MiB | {ent} | "
              f"{fmt(r['own_bytes'] and r['own_bytes'] / 1048576, '{:,.1f} MiB')} | **{r['mib_per_million']:,.0f} MiB** |")
        w("")
        w(f"Each resolver fresh, caches raised so nothing is evicted (meshdns `[resolver] cache_bytes = 4 GiB` "
          "via `--config`, Unbound `msg-cache-size: 1g`, `rrset-cache-size: 2g`, PowerDNS "
          f"`--max-cache-entries`/`--max-packetcache-entries` 4,000,000); `m0` … `m{a.mem_names - 1}.{MEMZONE}` "
          "`A` asked once each (`dnsperf -n 1 -Q 25000`); VmRSS before and after (1 s after the pass), "
          "the difference scaled to a million names. Each name is one A RRset (and, for Unbound and meshdns, "
          "one cached answer/message; PowerDNS keeps a record-cache entry and a packet-cache entry). Own "
          "account: meshdns `meshdns_resolver_cache_bytes`, Unbound `mem.cache.rrset` + `mem.cache.message`.")
        w("")
    if R["l3"]:
        r = R["l3"]
        w("### 6. meshdns restart: time to the first cache hit from the warm-start file (L3)")
        w("")
        w("| warm entries (L2) before | SIGTERM to exit (writes the file) | cache.l3 size | answers in the file "
          "(its log) | launch to first NOERROR answer | startup_ms (its log) |")
        w("|---:|---:|---:|---:|---:|---:|")
        w(f"| {r['entries_before']:,.0f} | {r['stop_ms']:,.0f} ms | {r['file_bytes'] / 1048576:.1f} MiB | "
          f"{fmt(r['file_answers'], '{:,}')} | **{fmt(r['first_hit_ms'], '{:.0f} ms')}** | "
          f"{fmt(r['startup_ms'], '{} ms')} |")
        w("")
        na = r.get("never_asked")
        w(f"A name never asked before the restart got {'rcode ' + str(na[0]) if na else 'no answer'} "
          "(2 = SERVFAIL: no upstream), as it should.")
        w("")
        w(f"meshdns forward mode warmed with one pass of the query set, stopped with SIGTERM, then started "
          f"again with the same data dir and `--forward udp://127.0.0.1:{DEAD_UPSTREAM}` (nothing listens "
          "there: every answer must come from the file). From the moment of launch, "
          f"`h{NAMES // 3}.{ZONE} A` is asked over UDP every ~5 ms (a 5 ms receive timeout per try, from "
          "Python rather than `dig`, whose own start takes longer than that) until a NOERROR answer with "
          f"records comes back ({r['polls']} tries).")
        w("")
    w("Exact commands (`$WORK` is the script's temporary directory, `$WORK/meshdns` a copy of the release "
      "binary taken at the start; the NSD, Unbound and meshdns `--config` files are written by the script):")
    w("")
    w("```")
    L.extend(COMMANDS)
    w("```")
    w("")
    w(END)
    return L


# ----------------------------------------------------------------------- main

def install_missing():
    pkgs = {"nsd": "nsd", "unbound": "unbound", "unbound-control": "unbound", "pdns_recursor": "pdns-recursor",
            "rec_control": "pdns-recursor", "valgrind": "valgrind", "callgrind_control": "valgrind",
            "dnsperf": "dnsperf", "taskset": "util-linux", "ldns-signzone": "ldnsutils", "knotd": "knot"}
    missing = sorted({p for t, p in pkgs.items() if not shutil.which(t)})
    if missing:
        log(f"installing {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)


def main():
    global WORK
    quick = os.environ.get("BENCH_QUICK") == "1"
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshdns", default=os.environ.get("MESHDNS", os.path.join(target, "release", "meshdns")))
    ap.add_argument("--only", default="hit,full,instr,cold,mem,l3")
    ap.add_argument("--resolvers", default="meshdns,unbound,pdns")
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--rate-seconds", type=int, default=3 if quick else 15)
    ap.add_argument("--full-seconds", type=int, default=3 if quick else 10)
    ap.add_argument("--rounds", type=int, default=1 if quick else 2, help="turns per resolver and test")
    ap.add_argument("--retry-budget", type=int, default=0 if quick else 150,
                    help="seconds into a test after which no disturbed run is repeated")
    ap.add_argument("--instr-queries", type=int, default=2_000 if quick else 20_000)
    ap.add_argument("--instr-rate", type=int, default=1_000)
    ap.add_argument("--cold-names", type=int, default=200 if quick else 1000)
    ap.add_argument("--mem-names", type=int, default=30_000 if quick else 300_000)
    ap.add_argument("--quiet", type=int, default=2 if quick else 8, help="wait at most this long for a quiet machine")
    ap.add_argument("--max-seconds", type=int, default=900)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    a.only = a.only.split(",")
    kinds = a.resolvers.split(",")
    write = not (a.no_write or quick or set(a.only) != {"hit", "full", "instr", "cold", "mem", "l3"}
                 or kinds != ["meshdns", "unbound", "pdns"])
    if not os.access(a.meshdns, os.X_OK):
        raise SystemExit(f"no meshdns binary at {a.meshdns} (cargo build --release -p meshdns)")
    install_missing()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(SystemExit("time limit hit")))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit("terminated")))
    signal.alarm(a.max_seconds)
    WORK = tempfile.mkdtemp(prefix="meshdns-resolver-bench-")
    os.makedirs(f"{WORK}/empty-zones")
    # A private copy: a rebuild during the run must not swap the binary.
    binary = f"{WORK}/meshdns"
    shutil.copy2(a.meshdns, binary)
    cold_exe, t_build = None, time.time()
    if "cold" in a.only:
        cold_exe = build_cold()
    t_start = time.time()
    meta = {"build_s": t_start - t_build,"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load0": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip(),
            "dirty": " + uncommitted changes" if subprocess.run(
                ["git", "-C", ROOT, "status", "--porcelain", "--", "node/src", "resolver/src"],
                capture_output=True, text=True).stdout.strip() else "",
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
                        "?"),
            "unbound": "Unbound " + version(["sh", "-c", "unbound -V | grep -o \"[0-9][0-9.]*\" | head -1"]), "pdns": version(["sh", "-c", "pdns_recursor --version 2>&1 "
                                                                         "| grep -o 'PowerDNS Recursor [0-9.]*'"]),
            "nsd": version(["sh", "-c", "nsd -v 2>&1"]), "valgrind": version(["valgrind", "--version"]),
            "dnsperf": version(["dpkg-query", "-W", "-f=${Version}", "dnsperf"])}
    R = {"warm": {}, "hit": {}, "full": {}, "rounds": {}, "instr": {}, "cold": {}, "mem": {}, "l3": {}, "rss_warm_kb": {},
         "threads": {}}
    nsd = None
    try:
        log(f"generating zones in {WORK}")
        queries, memq = write_zones(f"{WORK}/zones", a.mem_names)
        qfile, mqfile = f"{WORK}/queries.txt", f"{WORK}/mem-queries.txt"
        open(qfile, "w").write("\n".join(queries) + "\n")
        open(mqfile, "w").write("\n".join(memq) + "\n")
        meta["nq"] = len(queries)
        nsd = start("nsd", ["nsd", "-d", "-c", nsd_conf(f"{WORK}/zones")], core=1)
        wait_answer(AUTH, f"m{a.mem_names - 1}.{MEMZONE}", nsd)
        wait_answer(AUTH, f"h1.{ZONE}", nsd)
        if "hit" in a.only or "full" in a.only:
            test_hit_and_full(binary, kinds, qfile, len(queries), a, R)
        if "instr" in a.only:
            test_instr(binary, kinds, a, R)
        if "mem" in a.only:
            test_mem(binary, kinds, mqfile, a.mem_names, a, R)
        if "l3" in a.only and "meshdns" in kinds:
            test_l3(binary, qfile, a, R)
        if "cold" in a.only:
            test_cold(cold_exe, a, R)
    finally:
        for p in STARTED:
            stop(p)
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"kept {WORK}")
        else:
            shutil.rmtree(WORK, ignore_errors=True)
    meta["wall_s"] = time.time() - t_start
    meta["load1"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = report(R, a, meta)
    print("\n".join(lines))
    print(json.dumps(R, default=str), file=sys.stderr)
    if write:
        write_block(os.path.join(ROOT, "docs", "benchmarks.md"), BEGIN, END, lines, heading=HEADING)


if __name__ == "__main__":
    main()
