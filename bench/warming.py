#!/usr/bin/env python3
"""Predictive cache warming across the mesh: the hit ratio of a node that
joins a cluster under load, with warming from its peer's hot names and
without it, in one run; writes the figures into docs/benchmarks.md.

    bench/warming.py                      3 rounds each way (about 2 minutes)
    bench/warming.py --runs 1 --no-write  a smoke test

Setup, all on loopback:
  * an NSD serving `warm.test.` with NAMES names: the upstream;
  * node A (`meshdns serve --resolver forward --forward udp://NSD`) under a
    Zipf(1) load over the NAMES names (LOAD q/s, from this script) for
    WARMUP seconds, so its hot-name sketch holds the head of the
    distribution and is published in gossip;
  * node B starts with `--seeds A` and gets the same load at once; its
    cache hit ratio (meshdns_resolver_cache_hits_total over hits + misses,
    read from /metrics every 0.5 s) is measured over its first 1, 2, 5 and
    10 seconds of load, with `[resolver] warm_from_peers = true` (the
    default) and `false`. Each round starts new nodes with empty caches.

Needs the release binary (--meshdns, default $CARGO_TARGET_DIR/release/meshdns
or target/release/meshdns) and nsd. Every process started is stopped on exit.
"""

import argparse
import datetime
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import write_block  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- warming-figures:begin -->"
END = "<!-- warming-figures:end -->"
NSD_PORT = 15501  # replaced by a free port at start
STARTED = []


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} warming: {msg}", file=sys.stderr, flush=True)


def query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def metrics(http):
    text = urllib.request.urlopen(f"http://{http}/metrics", timeout=2).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("meshdns_resolver_") and " " in line and "{" not in line:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def start_nsd(work, names):
    zone = os.path.join(work, "warm.test.zone")
    with open(zone, "w") as f:
        f.write("$ORIGIN warm.test.\n$TTL 3600\n@ SOA ns h 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n")
        for i in range(names):
            f.write(f"n{i} A 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}\n")
    conf = os.path.join(work, "nsd.conf")
    with open(conf, "w") as f:
        f.write(
            f'server:\n  ip-address: 127.0.0.1@{NSD_PORT}\n  port: {NSD_PORT}\n  zonesdir: "{work}"\n'
            f'  database: ""\n  pidfile: "{work}/nsd.pid"\n  xfrdfile: "{work}/xfrd.state"\n'
            f'  zonelistfile: "{work}/zone.list"\n  username: ""\n  logfile: "{work}/nsd.log"\n'
            f'  server-count: 1\nremote-control:\n  control-enable: no\n'
            f'zone:\n  name: warm.test.\n  zonefile: "{zone}"\n'
        )
    p = subprocess.Popen(["nsd", "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(p)
    wait_answer(("127.0.0.1", NSD_PORT), "n0.warm.test.", "NSD")
    return p


def wait_answer(addr, name, what, limit=20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            s.sendto(query(name, 7), addr)
            data, _ = s.recvfrom(4096)
            if data[3] & 0x0F == 0:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not answer {name} within {limit} s")


def start_node(binary, work, name, dns, http, gossip, seeds, warm):
    conf = os.path.join(work, f"{name}.toml")
    with open(conf, "w") as f:
        f.write(f'[resolver]\nmode = "forward"\nforward = ["udp://127.0.0.1:{NSD_PORT}"]\n'
                f"warm_from_peers = {'true' if warm else 'false'}\n")
    args = [binary, "serve", "--config", conf, "--listen", f"127.0.0.1:{dns}", "--http", f"127.0.0.1:{http}",
            "--data-dir", os.path.join(work, name), "--node-id", name, "--gossip", f"127.0.0.1:{gossip}",
            "--grpc", "127.0.0.1:0", "--zone-dir", os.path.join(work, "nozones")]
    if seeds:
        args += ["--seeds", seeds]
    env = dict(os.environ, MESHDNS_MESH_GOSSIP_INTERVAL_MS="200", MESHDNS_LOG_LEVEL="warn")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{name}.log"), "w"), env=env)
    STARTED.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=1)
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"node {name} not ready")


class Load:
    """A Zipf(1) stream of queries at `qps`, answers read back."""

    def __init__(self, names, seed):
        self.rng = random.Random(seed)
        weights = [1.0 / (i + 1) for i in range(names)]
        total = sum(weights)
        self.cum = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cum.append(acc)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.qid = 0

    def pick(self):
        import bisect
        return min(bisect.bisect_left(self.cum, self.rng.random()), len(self.cum) - 1)

    def run(self, addr, qps, seconds, on_tick=None):
        start = time.time()
        sent = 0
        next_tick = start
        while True:
            now = time.time()
            if now - start >= seconds:
                break
            due = int((now - start) * qps)
            while sent < due:
                self.qid = (self.qid + 1) & 0xFFFF
                self.sock.sendto(query(f"n{self.pick()}.warm.test.", self.qid), addr)
                sent += 1
            try:
                while True:
                    self.sock.recvfrom(4096)
            except BlockingIOError:
                pass
            if on_tick and now >= next_tick:
                on_tick(now - start)
                next_tick += 0.5
            time.sleep(0.001)
        return sent


def free_port(span=1):
    """A port free for TCP and UDP, with the next span-1 UDP ports free too."""
    for _ in range(200):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        u.close()
        try:
            socks = []
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.bind(("127.0.0.1", port))
            socks.append(t)
            for i in range(span):
                x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                x.bind(("127.0.0.1", port + i))
                socks.append(x)
            for x in socks:
                x.close()
            return port
        except OSError:
            for x in socks:
                x.close()
    raise SystemExit("no free port")


def one_round(binary, work, names, load_qps, warmup, measure, warm, round_no, settle):
    ports_a = (free_port(), free_port(), free_port(3))
    tag = f"{round_no}{int(warm)}{int(settle > 0)}"  # a fresh data dir (no warm-start file) each time
    a = start_node(binary, work, f"a{tag}", *ports_a, None, True)
    load = Load(names, seed=round_no)
    load.run(("127.0.0.1", ports_a[0]), load_qps, warmup)
    ports_b = (free_port(), free_port(), free_port(3))
    b = start_node(binary, work, f"b{tag}", *ports_b, f"127.0.0.1:{ports_a[2]}", warm)
    http_b = f"127.0.0.1:{ports_b[1]}"
    if settle:
        # The anycast case: B takes traffic once it is up and has had the
        # chance to warm (bounded; the same wait without warming).
        deadline = time.time() + settle
        while time.time() < deadline:
            m = metrics(http_b)
            if warm and m.get("meshdns_resolver_warmed_total", 0) > 0 and m.get("meshdns_resolver_in_flight", 1) == 0:
                break
            time.sleep(0.1)
        # Without warming there is nothing to wait for: the cache stays empty.
    samples = []

    def tick(t):
        m = metrics(http_b)
        samples.append((t, m.get("meshdns_resolver_cache_hits_total", 0), m.get("meshdns_resolver_cache_misses_total", 0),
                        m.get("meshdns_resolver_warmed_total", 0)))

    load.run(("127.0.0.1", ports_b[0]), load_qps, measure, tick)
    tick(measure)
    for p in (a, b):
        p.terminate()
        p.wait(timeout=10)
    out = {}
    for window in (1, 2, 5, 10):
        upto = [s for s in samples if s[0] <= window + 0.01]
        if upto:
            _, h, m, _ = upto[-1]
            out[window] = h / (h + m) if h + m else 0.0
    out["warmed"] = samples[-1][3] if samples else 0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--meshdns", default=os.path.join(target, "release", "meshdns"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--names", type=int, default=2000)
    ap.add_argument("--qps", type=int, default=1000)
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.meshdns):
        raise SystemExit(f"no meshdns binary at {args.meshdns}: cargo build --release, or pass --meshdns")
    work = tempfile.mkdtemp(prefix="meshdns-warming-")
    os.makedirs(os.path.join(work, "nozones"))
    results = {(w, m): [] for w in (True, False) for m in ("under load", "after warming")}
    global NSD_PORT
    NSD_PORT = free_port()
    try:
        start_nsd(work, args.names)
        for r in range(args.runs):
            for warm in (True, False):
                for mode, settle in (("under load", 0.0), ("after warming", args.settle)):
                    res = one_round(args.meshdns, work, args.names, args.qps, args.warmup, args.seconds, warm, r, settle)
                    log(f"round {r} warm={warm} {mode}: {res}")
                    results[(warm, mode)].append(res)
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    def mean(warm, key):
        vals = [r[key] for r in results[warm] if key in r]  # warm = (flag, mode)
        return sum(vals) / len(vals) if vals else float("nan")

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [BEGIN, "",
             f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, this machine (2 cores, shared), "
             f"`bench/warming.py --runs {args.runs}`: {args.names} names under Zipf(1) at {args.qps} q/s; node A under "
             f"that load for {args.warmup:.0f} s, then node B joins with `--seeds A` and gets the same load. Hit ratio of "
             "B's first seconds (cache hits over hits + misses, from /metrics), mean of the rounds.", "",
             "| B takes load | B's hit ratio over its first | 1 s | 2 s | 5 s | 10 s | names warmed |",
             "|---|---|---|---|---|---|---|"]
    for mode, how in (("under load", "at once (joins under load)"),
                      ("after warming", f"once warmed (at most {args.settle:.0f} s after start; the anycast case)")):
        for warm, label in ((True, "warming from A's hot names (default)"), (False, "`warm_from_peers = false`")):
            cells = " | ".join(f"{100 * mean((warm, mode), w):.1f}%" for w in (1, 2, 5, 10))
            lines.append(f"| {how} | {label} | {cells} | {mean((warm, mode), 'warmed'):.0f} |")
    lines += ["", END]
    print("\n".join(lines))
    if not args.no_write:
        write_block(os.path.join(ROOT, "docs", "benchmarks.md"), BEGIN, END, lines,
                    heading="\n## Resolver: cache warming of a joining node\n\n")


if __name__ == "__main__":
    main()
