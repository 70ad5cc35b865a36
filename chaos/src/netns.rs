//! The network: namespaces, veth pairs, a bridge per site, a router per
//! region, and the nftables rules faults add. Everything is made with
//! `ip`, `nft` and `iptables` from Debian's iproute2, nftables and
//! iptables, and removed by [`destroy`], which finds what to remove by the
//! [`PREFIX`](crate::topology::PREFIX) of its names: a run that was killed
//! leaves nothing a later run (or `meshdns-chaos clean`) does not remove.

use std::path::Path;
use std::process::Command;

use crate::scenario::Topology;
use crate::topology::{self, CLIENT_IP, CLIENT_NS, CORE_NS, PREFIX, gateway_ip, region_net, router_ip, router_ns};

/// A command failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct CommandError {
    /// The command line.
    pub command: String,
    /// Its stderr, or why it could not run.
    pub message: String,
}

/// Runs a command to completion; an error carries its stderr.
pub fn run(args: &[&str]) -> Result<String, CommandError> {
    let command = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| CommandError { command: command.clone(), message: format!("cannot run {}: {e}", args[0]) })?;
    if !out.status.success() {
        return Err(CommandError { command, message: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `nft -f -` with `script` in namespace `ns`.
pub fn nft(ns: &str, script: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let command = format!("ip netns exec {ns} nft -f - <<< {script:?}");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CommandError { command: command.clone(), message: e.to_string() })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| CommandError { command: command.clone(), message: e.to_string() })?;
    }
    let out =
        child.wait_with_output().map_err(|e| CommandError { command: command.clone(), message: e.to_string() })?;
    if !out.status.success() {
        return Err(CommandError { command, message: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    Ok(())
}

/// True when this process runs as root (the harness needs it for
/// namespaces, mounts and nftables).
pub fn is_root() -> bool {
    // The effective uid is the second field of `Uid:` in /proc/self/status.
    std::fs::read_to_string("/proc/self/status").ok().is_some_and(|s| {
        s.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)) == Some("0")
    })
}

/// Namespaces this harness made (by prefix) that exist now.
pub fn existing() -> Vec<String> {
    let Ok(out) = run(&["ip", "netns", "list"]) else { return Vec::new() };
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Kills every process in the harness's namespaces, unmounts the data
/// directories under `work` and deletes the namespaces. Safe to call when
/// nothing exists; carries on past errors and returns them.
pub fn destroy(work: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    // Called from outside the namespaces (the outer process or `clean`):
    // every process in them is ours, the inner run of a killed harness
    // included (it would otherwise go on acting on the next run's network).
    for ns in existing() {
        if let Ok(pids) = run(&["ip", "netns", "pids", &ns]) {
            for pid in pids.split_whitespace() {
                // SIGKILL also ends a stopped (frozen) process.
                let _ = run(&["kill", "-9", pid]);
            }
        }
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        let work = work.display().to_string();
        for line in mounts.lines() {
            if let Some(target) = line.split_whitespace().nth(1)
                && target.starts_with(&work)
                && let Err(e) = run(&["umount", "-l", target])
            {
                errors.push(e.to_string());
            }
        }
    }
    for ns in existing() {
        if let Err(e) = run(&["ip", "netns", "del", &ns]) {
            errors.push(e.to_string());
        }
    }
    errors
}

/// Builds the network for `t` (see [`topology`] for the layout).
pub fn create(t: &Topology) -> Result<(), CommandError> {
    let ns = |name: &str| -> Result<(), CommandError> {
        run(&["ip", "netns", "add", name])?;
        run(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    };
    ns(CORE_NS)?;
    run(&["ip", "-n", CORE_NS, "link", "add", "br0", "type", "bridge"])?;
    run(&["ip", "-n", CORE_NS, "link", "set", "br0", "up"])?;
    ns(CLIENT_NS)?;
    veth(CLIENT_NS, "eth0", CORE_NS, "client")?;
    run(&["ip", "-n", CORE_NS, "link", "set", "client", "master", "br0", "up"])?;
    run(&["ip", "-n", CLIENT_NS, "addr", "add", &format!("{CLIENT_IP}/24"), "dev", "eth0"])?;
    run(&["ip", "-n", CLIENT_NS, "link", "set", "eth0", "up"])?;
    for r in 0..t.regions {
        let router = router_ns(r);
        ns(&router)?;
        run(&["ip", "netns", "exec", &router, "sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let core_port = format!("r{r}");
        veth(&router, "uplink", CORE_NS, &core_port)?;
        run(&["ip", "-n", CORE_NS, "link", "set", &core_port, "master", "br0", "up"])?;
        run(&["ip", "-n", &router, "addr", "add", &format!("{}/24", router_ip(r)), "dev", "uplink"])?;
        run(&["ip", "-n", &router, "link", "set", "uplink", "up"])?;
        run(&["ip", "-n", CLIENT_NS, "route", "add", &region_net(r), "via", &router_ip(r).to_string()])?;
        for s in 0..t.sites_per_region {
            let bridge = format!("br{s}");
            run(&["ip", "-n", &router, "link", "add", &bridge, "type", "bridge"])?;
            run(&["ip", "-n", &router, "addr", "add", &format!("{}/24", gateway_ip(r, s)), "dev", &bridge])?;
            run(&["ip", "-n", &router, "link", "set", &bridge, "up"])?;
        }
    }
    for r in 0..t.regions {
        for other in (0..t.regions).filter(|&o| o != r) {
            run(&[
                "ip",
                "-n",
                &router_ns(r),
                "route",
                "add",
                &region_net(other),
                "via",
                &router_ip(other).to_string(),
            ])?;
        }
    }
    for n in topology::nodes(t) {
        let (name, router) = (n.netns(), router_ns(n.region));
        ns(&name)?;
        veth(&name, "eth0", &router, &n.router_port())?;
        run(&["ip", "-n", &router, "link", "set", &n.router_port(), "master", &format!("br{}", n.site), "up"])?;
        run(&["ip", "-n", &name, "addr", "add", &format!("{}/24", n.ip), "dev", "eth0"])?;
        run(&["ip", "-n", &name, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", &name, "route", "add", "default", "via", &gateway_ip(n.region, n.site).to_string()])?;
    }
    Ok(())
}

/// A veth pair: `a` in namespace `ns_a`, `b` in `ns_b`.
fn veth(ns_a: &str, a: &str, ns_b: &str, b: &str) -> Result<(), CommandError> {
    run(&["ip", "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b])?;
    Ok(())
}
