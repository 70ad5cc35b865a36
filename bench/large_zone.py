#!/usr/bin/env python3
"""Measure a 1,000,000-RRset replicated zone on two real nodes and write the figures into docs/replication.md.

    bench/large_zone.py                  1,000,000 RRsets (about 3 minutes, 3 GiB of RAM)
    bench/large_zone.py --rrsets 200000

What it measures (loopback, release build, two nodes in one site, a dev CA):
  * the import of the zone file on node 1 (one write of every RRset, journalled), and the
    time until node 2 answers the zone's last record (chunked deltas over QUIC);
  * one one-record change (five changes to an existing name, then three new names, a second
    apart): the time
    `meshdns zone set` on node 1 takes to return (a new CLI process, gRPC, the journal's
    fsync, the apply), and from its return until node 1, then node 2, answer the new value
    over DNS (each after the previous change's background recompile finished);
  * each node's resident memory.
Uses the helpers of bench/replication.py. Ports from 24500 up.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import write_block  # noqa: E402
from replication import ROOT, Node, dns_a, wait, zone  # noqa: E402

BEGIN = "<!-- large-zone-figures:begin -->"
END = "<!-- large-zone-figures:end -->"


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/meshdns"))
    ap.add_argument("--rrsets", type=int, default=1_000_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/replication.md"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="meshdns-large-bench-")
    tls = os.path.join(work, "tls")
    nodes = []
    try:
        a = Node(args.binary, 50, "eu", "fra", None, work, tls)
        nodes.append(a)
        time.sleep(0.5)  # the first node creates the dev CA
        b = Node(args.binary, 51, "eu", "fra", a.gossip, work, tls)
        nodes.append(b)
        alive = lambda x: sum(x.metric(f'meshdns_mesh_members{{state="alive",tier="{t}"}}')  # noqa: E731
                              for t in ("site", "region", "global"))
        wait("two members", 60, lambda: alive(a) == 2 and alive(b) == 2, step=0.1)
        n = args.rrsets
        lines = ["$ORIGIN large.test.", "@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300", "@ 3600 IN NS ns",
                 "ns 3600 IN A 192.0.2.53"]
        lines += [f"h{i} 300 IN A 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(n - 2)]
        f = os.path.join(work, "large.test.zone")
        open(f, "w").write("\n".join(lines) + "\n")
        size = os.path.getsize(f)
        t0 = time.monotonic()
        out = subprocess.run([args.binary, "zone", "import", f, "--endpoint", a.grpc, "--timeout", "600"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"import failed: {out.stderr}")
        imported = time.monotonic() - t0
        last = f"h{n - 3}.large.test"
        wait("node 2 to answer the last record", 900, lambda: dns_a(b.dns, last) is not None, step=0.05)
        replicated = time.monotonic() - t0
        print(f"import {imported:.1f} s, on node 2 after {replicated:.1f} s")
        wait("the import's recompile", 300, lambda: a.metric("meshdns_replication_overlay_rrsets") == 0, step=0.1)
        changes = []
        for k in range(8):
            value = f"10.255.255.{k + 1}"
            name = "h1" if k < 5 else f"new{k}"
            t = time.monotonic()
            zone(args.binary, a, "set", "large.test", name, "A", "300", value)
            acked = time.monotonic()
            wait("node 1 to answer", 120, lambda: dns_a(a.dns, f"{name}.large.test") == value)
            on_a = time.monotonic() - acked
            wait("node 2 to answer", 120, lambda: dns_a(b.dns, f"{name}.large.test") == value)
            changes.append((acked - t, on_a, time.monotonic() - acked))
            print(f"change {k}: acknowledged after {acked - t:.3f} s; visible on node 1 {on_a * 1000:.1f} ms "
                  f"and node 2 {changes[-1][2] * 1000:.1f} ms after that")
            wait("the recompile", 300, lambda: a.metric("meshdns_replication_overlay_rrsets") == 0, step=0.05)
            time.sleep(1)
        rss = (rss_mib(a.proc.pid), rss_mib(b.proc.pid))
    finally:
        for x in nodes:
            x.stop()
        shutil.rmtree(work, ignore_errors=True)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    acks = sorted(c[0] for c in changes)
    on_a = sorted(c[1] for c in changes)
    on_b = sorted(c[2] for c in changes)
    write_block(args.out, BEGIN, END, [
        BEGIN,
        f"Measured by `bench/large_zone.py` on {datetime.date.today()} ({os.cpu_count()} cores, {cpu}), release build,",
        "two nodes on loopback.",
        "",
        f"- Zone of {n:,} RRsets ({size / 1e6:.0f} MB of zone file): `zone import` on node 1 took {imported:.1f} s; "
        f"node 2 answered the last record {replicated:.1f} s after the import began (chunked deltas over QUIC).",
        f"- One one-record change, eight times (five to an existing name, three adding a new name): `zone set` returned after {acks[0]:.3f}–{acks[-1]:.3f} s "
        f"(a new CLI process, gRPC, fsync, apply); from its return, node 1 answered the new value over DNS within "
        f"{on_a[0] * 1000:.1f}–{on_a[-1] * 1000:.1f} ms and node 2 within {on_b[0] * 1000:.1f}–{on_b[-1] * 1000:.1f} ms "
        "(answered from the overlay; the zone is recompiled in the background).",
        f"- Resident memory afterwards: {rss[0]:,.0f} MiB and {rss[1]:,.0f} MiB.",
        END,
    ])


if __name__ == "__main__":
    main()
