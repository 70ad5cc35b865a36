"""A server's process tree and the CPU time it has used, for the benchmarks."""

import subprocess


def tree(pid):
    """The pids of `pid` and all its descendants (NSD forks)."""
    out = [pid]
    try:
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return out
    for k in kids.split():
        out += tree(int(k))
    return out


def cpu_ticks(pid):
    """utime + stime of `pid`'s whole tree, in clock ticks."""
    total = 0
    for p in tree(pid):
        try:
            rest = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(rest[11]) + int(rest[12])  # utime, stime
    return total
