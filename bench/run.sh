#!/usr/bin/env bash
# Benchmark meshdns against NSD and Knot DNS on the same generated zone.
#
#   bench/run.sh                 full run (about 7 minutes), writes docs/benchmarks.md
#   BENCH_QUICK=1 bench/run.sh   smoke test: 3 s runs, 1 run each, no 1M zone
#   BENCH_RESOLVER=0 bench/run.sh  without the resolver benchmark (bench/resolver.py)
#   BENCH_OUT=file BENCH_RESULTS=dir  write the report / raw outputs elsewhere
#
# Needs: the release binary (target/release/meshdns, or MESHDNS=path), nsd,
# knotd/knotc, kzonecheck (knot-dnssecutils), dnsperf, dig, taskset, python3,
# and 2 cores: every server is pinned to core 0, dnsperf to core 1. Traffic
# goes to 127.0.0.1 only. Raw outputs go to bench/results/ (git-ignored).
# Every server this script starts is stopped by the EXIT trap; a watchdog
# ends the script after BENCH_MAX_SECONDS (default 1500).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MESHDNS=${MESHDNS:-$ROOT/target/release/meshdns}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
RES=${BENCH_RESULTS:-$HERE/results}
QUICK=${BENCH_QUICK:-0}
BASE=${BENCH_PORT_BASE:-15300}
MAX_SECONDS=${BENCH_MAX_SECONDS:-1500}

MAIN_N=100000
CLIENTS=8
RATE=50000
if [[ $QUICK == 1 ]]; then
    DUR=3 RUNS=1 RATE_DUR=3 SIZES=(10000 100000) SWEEP_REPS=1
else
    DUR=15 RUNS=3 RATE_DUR=20 SIZES=(10000 100000 1000000) SWEEP_REPS=2
fi
SERVERS=(meshdns nsd knot)
declare -A PORT=([meshdns]=$((BASE + 1)) [nsd]=$((BASE + 11)) [knot]=$((BASE + 21)))
HTTP_PORT=$((BASE + 2))
PROBE_NAME=last-record.bench.test.
PROBE_ADDR=192.0.2.255
CLK_TCK=$(getconf CLK_TCK)

# Install what is missing (Debian package per tool), as scripts/test.sh does.
declare -A PKG=([nsd]=nsd [nsd-checkzone]=nsd [knotd]=knot [knotc]=knot [kzonecheck]=knot-dnssecutils
                [dnsperf]=dnsperf [dig]=bind9-dnsutils [taskset]=util-linux [python3]=python3 [curl]=curl)
missing=()
for tool in "${!PKG[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${PKG[$tool]}")
done
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi
[[ -x $MESHDNS ]] || { echo "bench: no meshdns binary at $MESHDNS" >&2; exit 1; }
[[ $(nproc) -ge 2 ]] || { echo "bench: needs 2 cores" >&2; exit 1; }

WORK=$(mktemp -d /tmp/meshdns-bench.XXXXXX)
declare -A PID=()      # server name -> pid of the process we started
STARTED=()             # every pid we started, for the trap
WATCHDOG=

exec 3>&2 # log to the original stderr even inside redirected blocks
log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&3; }

# All pids of a process tree (NSD forks xfrd and server children).
tree_pids() {
    local p=$1 c
    echo "$p"
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do tree_pids "$c"; done
}

stop_pid() {
    local p=$1 tree i
    kill -0 "$p" 2>/dev/null || return 0
    tree=$(tree_pids "$p")
    kill -TERM "$p" 2>/dev/null || true
    # Wait (at most 10 s) for the whole tree to go, then kill what is left.
    for ((i = 0; i < 100; i++)); do
        any_alive $tree || break
        sleep 0.1
    done
    for i in $tree; do kill -KILL "$i" 2>/dev/null || true; done
    wait "$p" 2>/dev/null || true
}

any_alive() {
    local q
    for q in "$@"; do
        # A zombie child of ours still answers kill -0; count only live ones.
        [[ -e /proc/$q/stat ]] && [[ $(sed 's/.*) //' "/proc/$q/stat" 2>/dev/null | cut -d' ' -f1) != Z ]] && return 0
    done
    return 1
}

cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${STARTED[@]}"; do stop_pid "$p"; done
    [[ -n $WATCHDOG ]] && kill "$WATCHDOG" 2>/dev/null
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

(
    for ((i = 0; i < MAX_SECONDS; i++)); do sleep 1; done
    echo "bench: time limit of ${MAX_SECONDS}s hit, stopping" >&3
    kill -TERM $$
) &
WATCHDOG=$!

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# utime+stime in clock ticks, summed over a process tree. The comm field can
# hold spaces ("nsd: server 1"), so split after the last ')'.
cpu_ticks() {
    local sum=0 p rest
    for p in $(tree_pids "$1"); do
        rest=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $rest
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

# VmRSS and Pss (kB) summed over a process tree. NSD's children share the zone
# copy-on-write with their parent, so the RSS sum counts it more than once;
# Pss divides shared pages between the processes that map them.
mem_kb() {
    local rss=0 pss=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) && rss=$((rss + ${v:-0}))
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) && pss=$((pss + ${v:-0}))
    done
    echo "$rss $pss"
}

# Busy clock ticks of all cores (user nice system irq softirq steal), to see
# how much CPU went to anything besides the server and dnsperf during a run.
sys_busy() { awk '/^cpu[0-9]/ {b += $2 + $3 + $4 + $7 + $8 + $9} END {print b}' /proc/stat; }

# Wait (at most BENCH_QUIET_WAIT seconds) until less than 15% of one core is
# busy over 1 s; if that never happens, note it and go on.
wait_quiet() {
    local i b0 pct=0
    for ((i = 0; i < ${BENCH_QUIET_WAIT:-60}; i++)); do
        b0=$(sys_busy)
        sleep 1
        pct=$((($(sys_busy) - b0) * 100 / CLK_TCK))
        ((pct < 15)) && return 0
    done
    log "$1: machine still busy (${pct}% of a core), going on"
    record "noisy.$1" "$pct"
}

record() { printf '%s\t%s\n' "$1" "$2" >>"$RES/measures.tsv"; }
# Keep the smaller of the value already recorded under KEY (if any) and VALUE.
record_min() {
    local old
    old=$(last_measure "$1")
    if [[ -z $old ]] || (($2 < old)); then record "$1" "$2"; fi
}
cmdlog() { printf '%s\n' "$*" | sed "s#$WORK/meshdns #target/release/meshdns #; s#$WORK#\$WORK#g; s#$ROOT/##g" >>"$RES/commands.txt"; }

# Poll (bounded) until the server gives the right answer; prints ms since $2.
wait_answer() {
    local port=$1 t0=$2 limit_s=$3 pid=$4 got
    local deadline=$(($(now_ms) + limit_s * 1000))
    while (($(now_ms) < deadline)); do
        got=$(taskset -c 1 dig @127.0.0.1 -p "$port" +norec +tries=1 +time=1 +short "$PROBE_NAME" A 2>/dev/null || true)
        if [[ $got == "$PROBE_ADDR" ]]; then
            echo $(($(now_ms) - t0))
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { log "server pid $pid exited while loading"; return 1; }
        sleep 0.01
    done
    log "no correct answer on port $port within ${limit_s}s"
    return 1
}

write_configs() { # zone_dir
    local zd=$1
    mkdir -p "$WORK/nsd" "$WORK/knot/run" "$WORK/knot/storage"
    cat >"$WORK/nsd/nsd.conf" <<EOF
server:
    server-count: 1
    ip-address: 127.0.0.1@${PORT[nsd]}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$zd"
    pidfile: "$WORK/nsd/nsd.pid"
    database: ""
    xfrdfile: "$WORK/nsd/xfrd.state"
    xfrdir: "$WORK/nsd"
    zonelistfile: "$WORK/nsd/zone.list"
    logfile: "$WORK/nsd/nsd.log"
    minimal-responses: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: bench.test.
    zonefile: bench.test.zone
EOF
    cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot/run"
    listen: 127.0.0.1@${PORT[knot]}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "$WORK/knot/storage"
template:
  - id: default
    storage: "$zd"
    file: "%s.zone"
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
zone:
  - domain: bench.test.
EOF
}

# start_server NAME ZONE_DIR LABEL [DATA_DIR]: starts pinned to core 0, waits
# for a correct answer and records load_ms (and meshdns's own startup_ms).
start_server() {
    local s=$1 zd=$2 label=$3 dd=${4:-$WORK/meshdns-data} t0 ms p errlog
    errlog="$RES/server-$s-$label.log"
    write_configs "$zd"
    t0=$(now_ms)
    case $s in
    meshdns)
        cmdlog "taskset -c 0 $MESHDNS serve --zone-dir $zd --listen 127.0.0.1:${PORT[meshdns]} --data-dir $dd --http 127.0.0.1:$HTTP_PORT --udp-workers 1"
        taskset -c 0 "$MESHDNS" serve --zone-dir "$zd" --listen "127.0.0.1:${PORT[meshdns]}" \
            --data-dir "$dd" --http "127.0.0.1:$HTTP_PORT" --udp-workers 1 2>"$errlog" >&2 &
        ;;
    nsd)
        rm -f "$WORK/nsd/nsd.log"
        cmdlog "taskset -c 0 nsd -d -c \$WORK/nsd/nsd.conf"
        taskset -c 0 nsd -d -c "$WORK/nsd/nsd.conf" 2>"$errlog" >&2 &
        ;;
    knot)
        rm -rf "$WORK/knot/storage"/* "$WORK/knot/run"/*
        cmdlog "taskset -c 0 knotd -c \$WORK/knot/knot.conf"
        taskset -c 0 knotd -c "$WORK/knot/knot.conf" 2>"$errlog" >&2 &
        ;;
    esac
    p=$!
    PID[$s]=$p
    STARTED+=("$p")
    if ! ms=$(wait_answer "${PORT[$s]}" "$t0" 600 "$p"); then
        log "$s ($label) did not come up; its log:"
        tail -20 "$errlog" >&2
        [[ $s == nsd ]] && tail -20 "$WORK/nsd/nsd.log" >&2
        exit 1
    fi
    record_min "load_ms.$s.$label" "$ms"
    if [[ $s == meshdns ]]; then
        local sm
        sm=$(sed 's/\x1b\[[0-9;]*m//g' "$errlog" | grep -o 'serving.*startup_ms=[0-9]*' | grep -o '[0-9]*$' | tail -1 || true)
        record_min "startup_ms.meshdns.$label" "${sm:-999999999}"
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz") != 200 ]]; then
            log "meshdns answers but /readyz is not 200"
            record "readyz.meshdns.$label" "not-200"
        fi
    fi
    log "$s ($label) answering after ${ms} ms"
}

stop_server() {
    local s=$1
    stop_pid "${PID[$s]}"
    unset "PID[$s]"
}

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

# dnsperf_run SERVER TAG OUTFILE [extra dnsperf args...]: records the
# server's CPU ticks over the run, and dnsperf's own CPU seconds (OUTFILE.cpu).
dnsperf_run() {
    local s=$1 tag=$2 out=$3 c0 c1 b0 b1 rc=0 TIMEFORMAT='%U %S'
    shift 3
    alive "$s" || { log "$s is not running before $tag"; record "died.$s" "before $tag"; return 1; }
    cmdlog "taskset -c 1 dnsperf -s 127.0.0.1 -p ${PORT[$s]} -d \$WORK/queries.txt -c $CLIENTS $*"
    b0=$(sys_busy)
    c0=$(cpu_ticks "${PID[$s]}")
    { time taskset -c 1 dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/queries.txt" -c "$CLIENTS" "$@" \
        >"$out" 2>&1 || rc=$?; } 2>"$out.cpu"
    c1=$(cpu_ticks "${PID[$s]}")
    b1=$(sys_busy)
    record "cpu_ticks.$s.$tag" "$((c1 - c0))"
    record "sys_busy_ticks.$s.$tag" "$((b1 - b0))"
    ((rc == 0)) || { log "dnsperf exited $rc against $s, see $out"; return 1; }
    alive "$s" || { log "$s died during $tag"; record "died.$s" "during $tag"; return 1; }
    log "$s $tag: $(awk '/Queries per second/ {print $4}' "$out") qps, server CPU $((c1 - c0)) ticks"
}

# Run a private copy of the binary: a rebuild during the run must not swap it.
cp "$MESHDNS" "$WORK/meshdns"
MESHDNS_SRC=$MESHDNS
MESHDNS=$WORK/meshdns

# Wait (bounded, BENCH_IDLE_WAIT seconds) for the machine to be quiet: less
# than 15% of one core busy over 2 s.
idle_pct=
for ((i = 0; i < ${BENCH_IDLE_WAIT:-120}; i += 2)); do
    b0=$(sys_busy)
    sleep 2
    idle_pct=$((($(sys_busy) - b0) * 100 / (2 * CLK_TCK)))
    ((idle_pct < 15)) && break
    ((i == 0)) && log "machine busy (${idle_pct}% of a core), waiting up to ${BENCH_IDLE_WAIT:-120}s"
done

# measured_run SERVER TAG OUTFILE [dnsperf args...]: dnsperf_run, repeated
# (at most BENCH_RETRIES more times, and only in the first BENCH_RETRY_UNTIL
# seconds of the script) when other processes kept the machine more than
# 10% of a core busy during the run. The least disturbed attempt is kept as
# OUTFILE; every attempt stays as OUTFILE.tryN.
measured_run() {
    local s=$1 tag=$2 out=$3 try other best=0 best_other=1000000
    local -a tk=() bz=()
    shift 3
    for ((try = 0; ; try++)); do
        wait_quiet "$s.$tag"
        dnsperf_run "$s" "$tag" "$out.try$try" "$@" || return 1
        tk[try]=$(last_measure "cpu_ticks.$s.$tag")
        bz[try]=$(last_measure "sys_busy_ticks.$s.$tag")
        other=$(awk -v b="${bz[try]}" -v t="${tk[try]}" -v tck="$CLK_TCK" '
            NR == FNR {c = $1 + $2; next}
            /Run time/ {rt = $4}
            END {o = (b - t) / tck - c; if (o < 0) o = 0; printf "%d", (rt > 0 ? o / rt * 100 : 0)}' \
            "$out.try$try.cpu" "$out.try$try")
        if ((other < best_other)); then best=$try best_other=$other; fi
        ((other <= 10)) && break
        if ((try >= ${BENCH_RETRIES:-2} || SECONDS > ${BENCH_RETRY_UNTIL:-720})); then
            log "$s $tag: other processes used ${other}% of a core; no more retries"
            break
        fi
        log "$s $tag: other processes used ${other}% of a core; running it again"
        record "retried.$s.$tag" "$((try + 1))"
        sleep 2
    done
    cp "$out.try$best" "$out"
    cp "$out.try$best.cpu" "$out.cpu"
    record "cpu_ticks.$s.$tag" "${tk[best]}"
    record "sys_busy_ticks.$s.$tag" "${bz[best]}"
    record "other_pct.$s.$tag" "$best_other"
}
last_measure() { awk -F'\t' -v k="$1" '$1 == k {v = $2} END {print v}' "$RES/measures.tsv"; }

mkdir -p "$RES" "$(dirname "$OUT")"
rm -f "$RES"/*.txt "$RES"/*.cpu "$RES"/*.try* "$RES"/*.log "$RES"/*.tsv "$RES"/*.conf
: >"$RES/measures.tsv"
: >"$RES/commands.txt"

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -srm)"
    echo "mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "meshdns_version=$("$MESHDNS" version 2>&1 | head -1)"
    echo "meshdns_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
    echo "meshdns_dirty=$(git -C "$ROOT" status --porcelain -- node schemas Cargo.toml Cargo.lock 2>/dev/null | wc -l)"
    echo "meshdns_binary_mtime=$(date -u -r "$MESHDNS_SRC" '+%Y-%m-%d %H:%M:%S UTC')"
    echo "meshdns_binary_sha256=$(sha256sum "$MESHDNS" | cut -c1-16)"
    echo "meshdns_last_source_commit=$(git -C "$ROOT" log -1 --format='%h %ci' -- node schemas Cargo.toml Cargo.lock 2>/dev/null)"
    src_ct=$(git -C "$ROOT" log -1 --format=%ct -- node schemas Cargo.toml Cargo.lock 2>/dev/null || echo 0)
    echo "meshdns_binary_stale=$((${src_ct:-0} > $(stat -c %Y "$MESHDNS_SRC") ? 1 : 0))"
    echo "meshdns_udp_defaults=$(cd "$WORK" && "$MESHDNS" config check 2>&1 | grep -oE 'udp_(workers|batch): [a-z0-9]+' | tr '\n' ' ')"
    echo "busy_before=${idle_pct}% of one core (2 s sample before the run)"
    echo "nsd_version=$(nsd -v 2>&1 | head -1) (Debian $(dpkg-query -W -f='${Version}' nsd 2>/dev/null))"
    echo "knot_version=$(knotd -V 2>&1 | head -1) (Debian $(dpkg-query -W -f='${Version}' knot 2>/dev/null))"
    echo "dnsperf_version=$(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null)"
    echo "dig_version=$(dig -v 2>&1 | head -1)"
    echo "quick=$QUICK"
    echo "dur=$DUR"
    echo "runs=$RUNS"
    echo "rate=$RATE"
    echo "rate_dur=$RATE_DUR"
    echo "clients=$CLIENTS"
    echo "clk_tck=$CLK_TCK"
    echo "sizes=${SIZES[*]}"
    echo "main_n=$MAIN_N"
    echo "sweep_reps=$SWEEP_REPS"
} >"$RES/meta.txt"

# ---------------------------------------------------------------- zone + checks
log "generating the $MAIN_N-name zone and queries"
mkdir -p "$WORK/zone-$MAIN_N"
cmdlog "python3 bench/gen_zone.py $MAIN_N \$WORK/zone-$MAIN_N/bench.test.zone \$WORK/queries.txt"
python3 "$HERE/gen_zone.py" "$MAIN_N" "$WORK/zone-$MAIN_N/bench.test.zone" "$WORK/queries.txt"
ZF="$WORK/zone-$MAIN_N/bench.test.zone"
record "zone_lines.$MAIN_N" "$(grep -vc '^[;$]' "$ZF")"
record "zone_bytes.$MAIN_N" "$(stat -c %s "$ZF")"
awk '{print $2}' "$WORK/queries.txt" | sort | uniq -c >"$RES/query-types.txt"

check() { # label command...
    local label=$1 t0 rc=0
    shift
    cmdlog "$*"
    t0=$(now_ms)
    timeout 300 "$@" >"$RES/zonecheck-$label.txt" 2>&1 || rc=$?
    record "zonecheck_rc.$label" "$rc"
    record "zonecheck_ms.$label" "$(($(now_ms) - t0))"
    log "zone check $label: rc=$rc"
}
check nsd nsd-checkzone bench.test. "$ZF"
check knot kzonecheck -v -o bench.test. "$ZF"
check meshdns "$MESHDNS" zone check "$ZF"

# ----------------------------------------------------------- main comparison
log "starting the three servers on the $MAIN_N-name zone"
for s in "${SERVERS[@]}"; do
    wait_quiet "$s.main"
    start_server "$s" "$WORK/zone-$MAIN_N" main
done
for s in "${SERVERS[@]}"; do
    read -r rss pss <<<"$(mem_kb "${PID[$s]}")"
    record "rss_idle_kb.$s" "$rss"
    record "pss_idle_kb.$s" "$pss"
done

log "comparing answers on every 100th query"
awk 'NR % 100 == 0' "$WORK/queries.txt" >"$WORK/sample.txt"
cmdlog "python3 bench/compare.py \$WORK/sample.txt meshdns=${PORT[meshdns]} nsd=${PORT[nsd]} knot=${PORT[knot]}"
python3 "$HERE/compare.py" "$WORK/sample.txt" "meshdns=${PORT[meshdns]}" "nsd=${PORT[nsd]}" "knot=${PORT[knot]}" \
    >"$RES/compare.txt" 2>&1 || log "compare.py failed"

log "full-load runs: $RUNS x ${DUR}s per server, interleaved"
for ((r = 1; r <= RUNS; r++)); do
    for s in "${SERVERS[@]}"; do
        measured_run "$s" "full$r" "$RES/dnsperf-full-$s-$r.txt" -l "$DUR" || true
        sleep 1
    done
done

log "fixed-rate runs: $RUNS x $RATE qps for ${RATE_DUR}s per server, interleaved"
for ((r = 1; r <= RUNS; r++)); do
    for s in "${SERVERS[@]}"; do
        measured_run "$s" "rate$r" "$RES/dnsperf-rate-$s-$r.txt" -l "$RATE_DUR" -Q "$RATE" || true
        sleep 1
    done
done
for s in "${SERVERS[@]}"; do
    if alive "$s"; then
        read -r rss pss <<<"$(mem_kb "${PID[$s]}")"
        record "rss_load_kb.$s" "$rss"
        record "pss_load_kb.$s" "$pss"
        record "nproc_tree.$s" "$(tree_pids "${PID[$s]}" | wc -l)"
        record "threads.$s" "$(awk '/^Threads:/ {print $2}' "/proc/${PID[$s]}/status")"
    fi
done
cp "$WORK/nsd/nsd.conf" "$RES/nsd.conf"
cp "$WORK/knot/knot.conf" "$RES/knot.conf"
sed -i "s#$WORK#\$WORK#g" "$RES/nsd.conf" "$RES/knot.conf"
cp "$WORK/nsd/nsd.log" "$RES/nsd-main.log" 2>/dev/null || true
for s in "${SERVERS[@]}"; do stop_server "$s"; done

# ----------------------------------------------------------------- size sweep
for n in "${SIZES[@]}"; do
    zd="$WORK/zone-$n"
    if [[ ! -f $zd/bench.test.zone ]]; then
        log "generating the $n-name zone"
        mkdir -p "$zd"
        cmdlog "python3 bench/gen_zone.py $n \$WORK/zone-$n/bench.test.zone \$WORK/queries-$n.txt --queries 1000"
        python3 "$HERE/gen_zone.py" "$n" "$zd/bench.test.zone" "$WORK/queries-$n.txt" --queries 1000
    fi
    record "zone_lines.$n" "$(grep -vc '^[;$]' "$zd/bench.test.zone")"
    record "zone_bytes.$n" "$(stat -c %s "$zd/bench.test.zone")"
    # Each measurement SWEEP_REPS times; the shortest load time is kept, and
    # the memory figures of the last start.
    dd="$WORK/meshdns-data-$n"
    for ((rep = 1; rep <= SWEEP_REPS; rep++)); do
        rm -rf "$dd"
        for label in "compile$n" "restart$n"; do
            wait_quiet "meshdns.$label"
            start_server meshdns "$zd" "$label" "$dd"
            sleep 0.5
            read -r rss pss <<<"$(mem_kb "${PID[meshdns]}")"
            record "rss_kb.meshdns.$label" "$rss"
            record "pss_kb.meshdns.$label" "$pss"
            stop_server meshdns
        done
        record "snapshot_bytes.$n" "$(du -sb "$dd" | cut -f1)"
        for s in nsd knot; do
            wait_quiet "$s.size$n"
            start_server "$s" "$zd" "size$n"
            sleep 0.5
            read -r rss pss <<<"$(mem_kb "${PID[$s]}")"
            record "rss_kb.$s.size$n" "$rss"
            record "pss_kb.$s.size$n" "$pss"
            stop_server "$s"
        done
    done
    rm -rf "$dd"
    [[ $n != "$MAIN_N" ]] && rm -rf "$zd"
done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/meta.txt"
log "writing $OUT"
python3 "$HERE/report.py" "$RES" "$OUT"
# The caching resolver against Unbound and PowerDNS Recursor (its own section
# of the report, appended after report.py rewrote the file; about 7 minutes).
# Its servers are its own: it stops them itself. BENCH_RESOLVER=0 skips it.
if [[ ${BENCH_RESOLVER:-1} == 1 && $OUT == "$ROOT/docs/benchmarks.md" ]]; then
    log "resolver benchmark (bench/resolver.py)"
    BENCH_QUICK=$QUICK python3 "$HERE/resolver.py" --meshdns "$MESHDNS" >"$RES/resolver.md" 2>"$RES/resolver.log" ||
        log "bench/resolver.py failed, see $RES/resolver.log"
fi
log "done"
