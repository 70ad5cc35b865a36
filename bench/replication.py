#!/usr/bin/env python3
"""Measure zone replication on real meshdns processes and write the figures into docs/replication.md.

    bench/replication.py                 3 and 9 nodes (about 3 minutes)
    bench/replication.py --writes 50     fewer writes per size

What it measures (loopback, release build, shipped gossip settings; every node in
2 regions x 2 sites, joining through the first node; a dev CA in a temporary dir):
  * write-to-visible: a record set through `meshdns zone set` on a random node; from
    the command's return (the write is fsynced) until every node answers it over DNS,
    and until half of them do; p50 and p99 over --writes writes;
  * bytes on the wire for one one-record change (replication bytes sent by all nodes,
    from /metrics) against an AXFR of the same zone (1,000 RRsets);
  * catch-up: one node is stopped (SIGKILL), 10,000 RRsets are changed elsewhere in one
    import, the node restarts; time until it answers the last change, and the bytes it
    pulled, as a transfer rate;
  * write throughput on one node: sequential `zone set` commands (each a new process and
    an fsync), and one 10,000-RRset import (one fsync);
  * snapshot transfer: a node whose cluster collected a tombstone (horizon 1 s) joins a
    node holding a 100,000-RRset zone and must take a snapshot; from the moment its pull
    begins (its log) until it answers the zone's last record, and the bytes it received.
Ports from 24000 up; traffic stays on loopback.
"""

import argparse
import datetime
import os
import random
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- replication-figures:begin -->"
END = "<!-- replication-figures:end -->"


def dns_a(port, name, timeout=0.2, qtype=1):
    """One query over UDP; for A, the address in the answer; else the answer count; None if none."""
    qid = random.randint(0, 65535)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    ancount = struct.unpack(">H", data[6:8])[0]
    if ancount == 0 or (data[3] & 0x0F) != 0:
        return None
    if qtype != 1:
        return ancount
    # The answer's last 4 bytes are the address of its last record; enough here (one A).
    return socket.inet_ntoa(data[-4:])


class Node:
    def __init__(self, binary, idx, region, site, seed, work, tls, env=None):
        self.env = dict(os.environ, **(env or {}))
        self.idx, self.id = idx, f"n{idx}"
        base = 24000 + idx * 10
        self.gossip, self.grpc, self.dns, self.http = f"127.0.0.1:{base}", f"127.0.0.1:{base + 5}", base + 7, f"127.0.0.1:{base + 8}"
        self.cmd = [binary, "serve", "--node-id", self.id, "--region", region, "--site", site, "--gossip", self.gossip,
                    "--grpc", self.grpc, "--quic", f"127.0.0.1:{base + 6}", "--listen", f"127.0.0.1:{self.dns}",
                    "--http", self.http, "--udp-workers", "1", "--data-dir", os.path.join(work, self.id),
                    "--tls-dir", tls, "--tls-dev"]
        if seed:
            self.cmd += ["--seeds", seed]
        self.log = os.path.join(work, f"{self.id}.log")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"), env=self.env)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)

    def metric(self, name):
        try:
            text = urllib.request.urlopen(f"http://{self.http}/metrics", timeout=2).read().decode()
        except OSError:
            return 0.0
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0


def zone(binary, node, *args):
    out = subprocess.run([binary, "zone", *args, "--endpoint", node.grpc, "--timeout", "30"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"meshdns zone {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def wait(what, limit, pred, step=0.001):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def cluster(binary, n, work):
    tls = os.path.join(work, "tls")
    sites = [("eu", "fra"), ("eu", "ams"), ("us", "iad"), ("us", "sfo")]
    nodes = [Node(binary, 1, *sites[0], None, work, tls)]
    time.sleep(0.5)  # the first node creates the dev CA
    for i in range(1, n):
        nodes.append(Node(binary, i + 1, *sites[i % 4], nodes[0].gossip, work, tls))
    wait(f"{n} nodes alive everywhere", 120,
         lambda: all(x.metric('meshdns_mesh_members{state="alive",tier="site"}')
                     + x.metric('meshdns_mesh_members{state="alive",tier="region"}')
                     + x.metric('meshdns_mesh_members{state="alive",tier="global"}') == n for x in nodes), step=0.2)
    return nodes


def visible_latency(binary, nodes, writes):
    zone(binary, nodes[0], "create", "bench.test")
    wait("the zone on every node", 30, lambda: all(dns_a(x.dns, "bench.test", qtype=6) for x in nodes), step=0.01)
    every, half = [], []
    for i in range(writes):
        writer = random.choice(nodes)
        addr = f"198.51.100.{i % 250 + 1}"
        zone(binary, writer, "set", "bench.test", f"w{i}", "A", "300", addr)
        t0 = time.monotonic()
        seen = {}
        while len(seen) < len(nodes):
            for x in nodes:
                if x.id not in seen and dns_a(x.dns, f"w{i}.bench.test") == addr:
                    seen[x.id] = time.monotonic() - t0
            if time.monotonic() - t0 > 30:
                raise SystemExit(f"write {i} not visible everywhere after 30 s")
        times = sorted(seen.values())
        every.append(times[-1])
        half.append(times[(len(times) - 1) // 2])
    return every, half


def wire_bytes(binary, nodes, work):
    # A 1,000-RRset zone, then one one-record change.
    lines = ["$ORIGIN big.test.", "@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300", "@ 3600 IN NS ns", "ns 3600 IN A 192.0.2.53"]
    lines += [f"h{i} 300 IN A 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(997)]
    f = os.path.join(work, "big.test.zone")
    open(f, "w").write("\n".join(lines) + "\n")
    zone(binary, nodes[0], "import", f)
    wait("the big zone everywhere", 60, lambda: all(dns_a(x.dns, "h996.big.test") for x in nodes), step=0.05)
    time.sleep(1)
    before = sum(x.metric("meshdns_replication_bytes_sent_total") for x in nodes)
    zone(binary, nodes[0], "set", "big.test", "h1", "A", "300", "10.255.255.1")
    wait("the change everywhere", 30, lambda: all(dns_a(x.dns, "h1.big.test") == "10.255.255.1" for x in nodes))
    time.sleep(2)  # let anti-entropy rounds that the change triggers finish
    after = sum(x.metric("meshdns_replication_bytes_sent_total") for x in nodes)
    axfr = subprocess.run(["dig", "@127.0.0.1", "-p", str(nodes[0].dns), "big.test", "AXFR", "+stats"],
                          capture_output=True, text=True).stdout
    # ";; XFR size: 1003 records (messages 3, bytes 24817)"
    size = next((int(l.rsplit("bytes", 1)[1].strip(" )")) for l in axfr.splitlines() if "XFR size" in l), 0)
    return after - before, size


def catch_up(binary, nodes, work, changes):
    lagger = nodes[-1]
    lagger.stop(signal.SIGKILL)
    lines = ["$ORIGIN catch.test.", "@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300", "@ 3600 IN NS ns", "ns 3600 IN A 192.0.2.53"]
    lines += [f"c{i} 300 IN A 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(changes - 3)]
    f = os.path.join(work, "catch.test.zone")
    open(f, "w").write("\n".join(lines) + "\n")
    t = time.monotonic()
    zone(binary, nodes[0], "import", f)
    import_s = time.monotonic() - t
    last = f"c{changes - 4}.catch.test"
    wait("the import on the others", 60, lambda: all(dns_a(x.dns, last) for x in nodes[:-1]), step=0.05)
    t0 = time.monotonic()
    lagger.start()
    wait("the restarted node to catch up", 300, lambda: dns_a(lagger.dns, last) is not None, step=0.01)
    took = time.monotonic() - t0
    # The counters are added when the pull's frames are all applied, just
    # after the last change became visible.
    wait("the pull to be counted", 30, lambda: lagger.metric("meshdns_replication_pulls_total") > 0, step=0.01)
    pulled = lagger.metric("meshdns_replication_bytes_received_total")
    return took, pulled, import_s


def snapshot_transfer(binary, rrsets):
    work = tempfile.mkdtemp(prefix="meshdns-snap-bench-")
    tls = os.path.join(work, "tls")
    env = {"MESHDNS_REPLICATION_TOMBSTONE_HORIZON_S": "1"}
    nodes = []
    try:
        a = Node(binary, 50, "eu", "fra", None, work, tls, env)
        nodes.append(a)
        wait("the first node", 30, lambda: a.metric("meshdns_replication_tombstones") == 0
             and a.metric('meshdns_mesh_members{state="alive",tier="global"}') >= 1, step=0.05)
        lines = ["$ORIGIN snap.test.", "@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300", "@ 3600 IN NS ns",
                 "ns 3600 IN A 192.0.2.53"]
        lines += [f"s{i} 300 IN A 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(rrsets - 2)]
        f = os.path.join(work, "snap.test.zone")
        open(f, "w").write("\n".join(lines) + "\n")
        zone(binary, a, "import", f)
        zone(binary, a, "remove", "snap.test", "s0", "A")
        wait("the tombstone to be collected", 60, lambda: a.metric("meshdns_replication_tombstones") == 0, step=0.1)
        b = Node(binary, 51, "eu", "fra", a.gossip, work, tls, env)
        nodes.append(b)
        wait("the newcomer to pull", 60, lambda: "pulling from a peer" in open(b.log).read(), step=0.002)
        t0 = time.monotonic()
        last = f"s{rrsets - 3}.snap.test"
        wait("the newcomer to answer the zone", 300, lambda: dns_a(b.dns, last) is not None, step=0.005)
        took = time.monotonic() - t0
        wait("the snapshot to be counted", 30, lambda: b.metric("meshdns_replication_snapshots_received_total") > 0,
             step=0.01)
        return took, b.metric("meshdns_replication_bytes_received_total"), rrsets
    finally:
        for x in nodes:
            x.stop()
        shutil.rmtree(work, ignore_errors=True)


def throughput(binary, node, n):
    zone(binary, node, "create", "tput.test")
    wait("the zone", 30, lambda: dns_a(node.dns, "tput.test", qtype=6), step=0.01)
    t = time.monotonic()
    for i in range(n):
        zone(binary, node, "set", "tput.test", f"t{i}", "A", "300", "192.0.2.1")
    return n / (time.monotonic() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/meshdns"))
    ap.add_argument("--sizes", default="3,9")
    ap.add_argument("--writes", type=int, default=100)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--snapshot-rrsets", type=int, default=100_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/replication.md"))
    args = ap.parse_args()
    if not shutil.which("dig"):
        raise SystemExit("dig is needed (bind9-dnsutils)")
    random.seed(7)
    rows, extra = [], {}
    for n in [int(x) for x in args.sizes.split(",") if x]:
        work = tempfile.mkdtemp(prefix="meshdns-repl-bench-")
        nodes = []
        try:
            nodes = cluster(args.binary, n, work)
            every, half = visible_latency(args.binary, nodes, args.writes)
            rows.append((n, pct(half, 50), pct(every, 50), pct(every, 99), max(every)))
            print(f"{n} nodes: half p50 {pct(half, 50) * 1000:.1f} ms, all p50 {pct(every, 50) * 1000:.1f} ms, "
                  f"p99 {pct(every, 99) * 1000:.1f} ms, max {max(every) * 1000:.1f} ms")
            if n == max(int(x) for x in args.sizes.split(",")):
                extra["bytes"] = wire_bytes(args.binary, nodes, work)
                extra["tput"] = throughput(args.binary, nodes[0], 50)
                extra["catch"] = catch_up(args.binary, nodes, work, args.changes)
                extra["n"] = n
                print(extra)
        finally:
            for x in nodes:
                x.stop()
            shutil.rmtree(work, ignore_errors=True)
    extra["snapshot"] = snapshot_transfer(args.binary, args.snapshot_rrsets)
    print("snapshot", extra["snapshot"])
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    lines = [
        BEGIN,
        f"Measured by `bench/replication.py` on {datetime.date.today()} ({os.cpu_count()} cores, {cpu}), release build,",
        "loopback, gossip every 1 s, nodes round-robin over 2 regions x 2 sites, fsync on every write.",
        "",
        "| nodes | write visible on half the nodes, p50 | on every node, p50 | p99 | worst |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, h, p50, p99, mx in rows:
        lines.append(f"| {n} | {h * 1000:.1f} ms | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {mx * 1000:.1f} ms |")
    if "bytes" in extra:
        sent, axfr = extra["bytes"]
        took, pulled, import_s = extra["catch"]
        lines += [
            "",
            f"- One one-record change in a 1,000-RRset zone: {sent:,.0f} bytes of replication traffic sent by all "
            f"{extra['n']} nodes together (pushes and the pulls they trigger), against {axfr:,} bytes for one AXFR of the zone.",
            f"- Catch-up: a node killed while {args.changes:,} RRsets were changed elsewhere (one import, which took "
            f"{import_s:.2f} s on the writer) answered the last change {took:.2f} s after it was restarted, having pulled "
            f"{pulled:,.0f} bytes ({pulled / max(took, 1e-9) / 1e6:.1f} MB/s including its start-up).",
            f"- Sequential `meshdns zone set` on one node: {extra['tput']:.0f} writes/s, each a new CLI process, a gRPC "
            f"call and an fsync. The import above wrote {args.changes:,} RRsets with one fsync.",
        ]
    took, got, n_rrsets = extra["snapshot"]
    lines += [
        f"- Snapshot transfer: a newcomer behind a collected tombstone took a snapshot of a {n_rrsets:,}-RRset zone "
        f"({got:,.0f} bytes) and answered its last record {took:.2f} s after its pull began: "
        f"{got / max(took, 1e-9) / 1e6:.1f} MB/s, {n_rrsets / max(took, 1e-9):,.0f} RRsets/s, counting the peer's "
        "encoding, QUIC, the check, the journal (fsync) and compiling the zone for serving.",
    ]
    lines.append(END)
    write_block(args.out, BEGIN, END, lines, heading="## Measurements\n\n")


if __name__ == "__main__":
    main()
