#!/usr/bin/env python3
"""Compare the answers of several DNS servers for the same queries.

    compare.py QUERY_FILE NAME=PORT [NAME=PORT ...]

Sends every query (`name TYPE` per line) to 127.0.0.1:PORT of each server
with one `dig -f` run per server (no recursion desired, EDNS on), then
compares each pair of servers response by response.

Two responses are "equal" when rcode, the AA flag, the answer section and
the authority section hold the same records (order ignored, owner names
lower-cased). The additional section is compared separately, since NSD's
`minimal-responses: yes` leaves out addresses that other servers add for MX
targets; for referrals it must hold the same glue. Prints a summary and up
to 5 examples of each kind of difference; exits 0 either way.
"""

import collections
import subprocess
import sys


def run_dig(qfile, port):
    cmd = ["dig", "@127.0.0.1", "-p", str(port), "+noall", "+cmd", "+norec", "+tries=2", "+time=2", "+comments", "+question", "+answer", "+authority",
           "+additional", "-f", qfile]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    blocks = []
    cur = None
    section = None
    for line in out.splitlines():
        if line.startswith("; <<>> DiG"):
            cur = {"status": "TIMEOUT", "aa": False, "ANSWER": [], "AUTHORITY": [],
                   "ADDITIONAL": [], "q": " ".join(line.split()[-2:])}
            blocks.append(cur)
            section = None
            continue
        if cur is None or not line.strip():
            continue
        if line.startswith(";; ->>HEADER<<-"):
            cur["status"] = line.split("status: ")[1].split(",")[0]
        elif line.startswith(";; flags:"):
            cur["aa"] = " aa" in line.split(";")[2]
        elif line.startswith(";; ") and line.endswith("SECTION:"):
            section = line[3:].split()[0]
        elif line.startswith(";"):
            continue
        elif section in ("ANSWER", "AUTHORITY", "ADDITIONAL"):
            f = line.split()
            f[0] = f[0].lower()
            cur[section].append(" ".join(f))
    return blocks


def key(b):
    return (b["status"], b["aa"], tuple(sorted(b["ANSWER"])), tuple(sorted(b["AUTHORITY"])))


def main():
    qfile = sys.argv[1]
    servers = [a.split("=", 1) for a in sys.argv[2:]]
    nq = sum(1 for l in open(qfile) if l.strip())
    res = {}
    for name, port in servers:
        res[name] = run_dig(qfile, port)
        if len(res[name]) != nq:
            print(f"{name}: {len(res[name])} responses parsed for {nq} queries")
    print(f"queries compared: {nq}")
    for name, _ in servers:
        st = collections.Counter(b["status"] for b in res[name])
        print(f"{name}: rcodes {dict(sorted(st.items()))}")
    names = [n for n, _ in servers]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff, add_diff = [], []
            for ra, rb in zip(res[a], res[b]):
                if key(ra) != key(rb):
                    diff.append((ra, rb))
                elif sorted(ra["ADDITIONAL"]) != sorted(rb["ADDITIONAL"]):
                    add_diff.append((ra, rb))
            referral_add = [d for d in add_diff if not d[0]["aa"]]
            n = min(len(res[a]), len(res[b]))
            print(f"{a} vs {b}: {n - len(diff)}/{n} equal (rcode, AA, answer, authority); "
                  f"additional section differs in {len(add_diff)} "
                  f"({len(referral_add)} of them referrals)")
            for label, lst in (("differs", diff), ("referral glue differs", referral_add)):
                for ra, rb in lst[:5]:
                    print(f"  {label}: {ra['q']}")
                    for who, r in ((a, ra), (b, rb)):
                        print(f"    {who}: {r['status']} aa={int(r['aa'])} an={sorted(r['ANSWER'])} "
                              f"ns={sorted(r['AUTHORITY'])} ad={sorted(r['ADDITIONAL'])}")


if __name__ == "__main__":
    main()
