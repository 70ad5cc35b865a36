#!/usr/bin/env python3
"""Measure the mesh on real meshdns processes and write the figures into docs/mesh.md.

    bench/mesh.py                      5 and 20 nodes, then 10 minutes at 5% loss (about 14 minutes; root for the loss run)
    bench/mesh.py --loss-minutes 0     skip the loss run
    bench/mesh.py --interval-ms 500    another gossip interval (default: the shipped 1000)

What it measures, for each cluster size (nodes spread over 2 regions x 2 sites, all
joining through the first node as their seed):
  * join time: from starting the seed until every node's /metrics counts every node alive;
  * failure detection: SIGKILL one node, time until every other node counts it dead;
  * gossip traffic: UDP payload bytes in and out per node per second over 60 s, by pool tier.
Then, for the loss run, the same cluster runs inside a network namespace made for the
purpose whose loopback drops 5% of UDP datagrams; every "member down" a node logs there
is a false suspicion (nothing is killed). The namespace is deleted on exit, also on
failure or Ctrl-C.

The loss is made with `tc qdisc ... netem loss 5%` when the kernel has netem, else with
an nftables rule in the namespace (`meta l4proto udp numgen random mod 100 < 5 drop` on
the input hook: on the output hook the sender would get EPERM, which is not loss): every datagram, once, with the same chance. Kernels built without
CONFIG_NET_SCH_NETEM (like the one these figures were first taken on) need the latter.

Traffic stays on loopback (or the namespace's loopback). Nodes use ports from 20000 up.
"""

import argparse
import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import write_block  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETNS = "meshdns-mesh-bench"
BEGIN = "<!-- mesh-figures:begin -->"
END = "<!-- mesh-figures:end -->"


class Node:
    def __init__(self, binary, idx, region, site, seed, interval_ms, workdir, netns=None):
        self.idx = idx
        self.id = f"n{idx}"
        base = 20000 + idx * 10
        self.gossip = f"127.0.0.1:{base}"
        self.http = f"127.0.0.1:{base + 5}"
        self.log_path = os.path.join(workdir, f"{self.id}.log")
        cmd = [
            binary, "serve", "--node-id", self.id, "--region", region, "--site", site,
            "--gossip", self.gossip, "--grpc", f"127.0.0.1:{base + 6}",
            "--listen", f"127.0.0.1:{base + 7}", "--http", self.http,
            "--udp-workers", "1", "--data-dir", os.path.join(workdir, self.id),
        ]
        if seed:
            cmd += ["--seeds", seed]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.netns = netns
        env = dict(os.environ, MESHDNS_MESH_GOSSIP_INTERVAL_MS=str(interval_ms), MESHDNS_LOG_LEVEL="info")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"), env=env)

    def metrics(self):
        url = f"http://{self.http}/metrics"
        try:
            if self.netns:
                out = subprocess.run(["ip", "netns", "exec", self.netns, "curl", "-s", "-m", "2", url],
                                     capture_output=True, text=True, timeout=5).stdout
            else:
                out = urllib.request.urlopen(url, timeout=2).read().decode()
        except Exception:
            return None
        vals = {}
        for line in out.splitlines():
            if line.startswith("meshdns_mesh_"):
                k, _, v = line.rpartition(" ")
                try:
                    vals[k] = float(v)
                except ValueError:
                    pass
        return vals

    def count(self, state):
        m = self.metrics()
        if m is None:
            return None
        return sum(v for k, v in m.items() if k.startswith(f'meshdns_mesh_members{{state="{state}"'))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def layout(n):
    """n nodes over 2 regions x 2 sites, round robin."""
    sites = [("eu", "fra"), ("eu", "ams"), ("us", "iad"), ("us", "sfo")]
    return [sites[i % 4] for i in range(n)]


def start_cluster(binary, n, interval_ms, workdir, netns=None):
    nodes = []
    seed = None
    for i, (region, site) in enumerate(layout(n)):
        node = Node(binary, i + 1, region, site, seed, interval_ms, workdir, netns)
        nodes.append(node)
        if seed is None:
            seed = node.gossip
    return nodes


def wait_until(what, limit, pred, step=0.1):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    raise SystemExit(f"timed out after {limit} s waiting for {what}")


def traffic(nodes):
    """Sum of gossip bytes in/out over all nodes, by pool tier."""
    out = {}
    for node in nodes:
        m = node.metrics() or {}
        for k, v in m.items():
            mm = re.match(r'meshdns_mesh_gossip_bytes_total\{pool="(\w+)[^"]*",direction="(\w+)"\}', k)
            if mm:
                key = (mm.group(1), mm.group(2))
                out[key] = out.get(key, 0) + v
    return out


def measure(binary, n, interval_ms, window_s):
    with tempfile.TemporaryDirectory() as workdir:
        t0 = time.monotonic()
        nodes = start_cluster(binary, n, interval_ms, workdir)
        try:
            wait_until(f"{n} nodes to see {n} alive", 120, lambda: all(x.count("alive") == n for x in nodes))
            join = time.monotonic() - t0
            time.sleep(2)
            before = traffic(nodes)
            time.sleep(window_s)
            after = traffic(nodes)
            per_node = {k: (after.get(k, 0) - before.get(k, 0)) / n / window_s for k in after}
            victim = nodes[-1]
            victim.stop(signal.SIGKILL)
            t1 = time.monotonic()
            rest = nodes[:-1]
            wait_until("the killed node to be seen dead everywhere", 120,
                       lambda: all((x.count("dead") or 0) >= 1 for x in rest))
            detect = time.monotonic() - t1
        finally:
            for x in nodes:
                x.stop()
    return {"n": n, "join": join, "detect": detect, "traffic": per_node}


def loss_run(binary, n, interval_ms, minutes, loss):
    if os.geteuid() != 0:
        print("skipping the loss run: it needs root for a network namespace", file=sys.stderr)
        return None
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up"], check=True)
        netem = subprocess.run(["ip", "netns", "exec", NETNS, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                                "loss", f"{loss}%"], capture_output=True)
        method = f"tc netem loss {loss:g}%"
        if netem.returncode != 0:
            if loss != int(loss):
                raise SystemExit("without netem, loss must be a whole percentage")
            nft = ["ip", "netns", "exec", NETNS, "nft"]
            subprocess.run(nft + ["add", "table", "inet", "meshdns_loss"], check=True)
            subprocess.run(nft + ["add", "chain", "inet", "meshdns_loss", "in",
                                  "{ type filter hook input priority 0; }"], check=True)
            subprocess.run(nft + ["add", "rule", "inet", "meshdns_loss", "in", "meta", "l4proto", "udp",
                                  "numgen", "random", "mod", "100", "lt", str(int(loss)), "drop"], check=True)
            method = f"nftables input hook: udp numgen random mod 100 < {int(loss)} drop (no netem in this kernel)"
        with tempfile.TemporaryDirectory() as workdir:
            nodes = start_cluster(binary, n, interval_ms, workdir, NETNS)
            try:
                wait_until(f"{n} nodes to see {n} alive under loss", 300,
                           lambda: all(x.count("alive") == n for x in nodes), step=1)
                marks = [len(open(x.log_path).read().split("member down")) - 1 for x in nodes]
                before = traffic(nodes)
                time.sleep(minutes * 60)
                after = traffic(nodes)
                downs = [len(open(x.log_path).read().split("member down")) - 1 - m for x, m in zip(nodes, marks)]
                alive_end = [x.count("alive") for x in nodes]
            finally:
                for x in nodes:
                    x.stop()
        per_node = {k: (after.get(k, 0) - before.get(k, 0)) / n / (minutes * 60) for k in after}
        return {"n": n, "minutes": minutes, "loss": loss, "method": method, "false_downs": sum(downs),
                "worst_node": max(downs), "alive_end": alive_end, "traffic": per_node}
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)


def fmt_traffic(t):
    parts = []
    total_out = sum(v for (tier, d), v in t.items() if d == "out")
    total_in = sum(v for (tier, d), v in t.items() if d == "in")
    for tier in ("site", "region", "global"):
        o = t.get((tier, "out"), 0)
        if o:
            parts.append(f"{tier} {o:,.0f}")
    return f"{total_out:,.0f} out / {total_in:,.0f} in ({', '.join(parts)} out)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/meshdns"))
    ap.add_argument("--sizes", default="5,20")
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--window", type=int, default=60, help="seconds of traffic measured")
    ap.add_argument("--loss-minutes", type=float, default=10)
    ap.add_argument("--loss-percent", type=float, default=5)
    ap.add_argument("--loss-nodes", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/mesh.md"))
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        raise SystemExit(f"{args.binary} not found: run cargo build --release first, or pass --binary")

    def cleanup(*_):
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
        sys.exit(130)
    signal.signal(signal.SIGINT, cleanup)
    signal.signal(signal.SIGTERM, cleanup)

    results = [measure(args.binary, int(n), args.interval_ms, args.window) for n in args.sizes.split(",")]
    for r in results:
        print(f"{r['n']} nodes: join {r['join']:.1f} s, detection {r['detect']:.1f} s, bytes/node/s {fmt_traffic(r['traffic'])}")
    loss = None
    if args.loss_minutes > 0:
        loss = loss_run(args.binary, args.loss_nodes, args.interval_ms, args.loss_minutes, args.loss_percent)
        if loss:
            print(f"loss run: {loss}")

    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    lines = [
        BEGIN,
        f"Measured by `bench/mesh.py` on {datetime.date.today()} ({os.cpu_count()} cores, {cpu}), release build,",
        f"gossip interval {args.interval_ms} ms, phi threshold 8, failure-detector window 100, dead grace 15 min,",
        "2 representatives per site and per region; nodes spread round-robin over 2 regions x 2 sites,",
        "all joining through the first node. Traffic is UDP payload (chitchat messages), per node, averaged",
        f"over {args.window} s after convergence.",
        "",
        "| nodes | join (all see all alive) | SIGKILL to dead on every node | gossip bytes per node per second |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(f"| {r['n']} | {r['join']:.1f} s | {r['detect']:.1f} s | {fmt_traffic(r['traffic'])} |")
    if loss:
        lines += [
            "",
            f"Loss run: {loss['n']} nodes in a network namespace whose loopback drops {loss['loss']:g}% of UDP",
            f"datagrams (`{loss['method']}`), {loss['minutes']:g} minutes after convergence:",
            f"**{loss['false_downs']} false failure detections** in all (worst node: {loss['worst_node']}); "
            f"alive counts at the end: {sorted(set(loss['alive_end']))}; gossip per node per second: "
            f"{fmt_traffic(loss['traffic'])}.",
        ]
    lines.append(END)
    write_block(args.out, BEGIN, END, lines)


if __name__ == "__main__":
    main()
