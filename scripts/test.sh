#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests run
# beside meshdns (NSD, Knot, Unbound, ldns tools, PowerDNS Recursor, dnsperf,
# dig/nsupdate, iproute2, nftables, openssl) when missing, then checks
# formatting and lints and runs every test. The chaos
# harness's tests (real nodes in network namespaces, about four minutes)
# run last and alone, so they do not share the two cores with the rest.
#
#   scripts/test.sh            # everything
#   scripts/test.sh nsd_diff   # extra arguments go to the test runner (a filter)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nsd >/dev/null 2>&1 || need+=(nsd)
command -v nsd-control >/dev/null 2>&1 || need+=(nsd)
command -v knotd >/dev/null 2>&1 || need+=(knot)
command -v kdig >/dev/null 2>&1 || need+=(knot-dnsutils)
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
# The resolver lab (node/tests/common/lab.rs): Unbound is the reference
# resolver, ldns-keygen/ldns-signzone/ldns-key2ds sign its zones; the
# PowerDNS Recursor is a benchmark peer.
command -v unbound >/dev/null 2>&1 || need+=(unbound)
command -v ldns-signzone >/dev/null 2>&1 || need+=(ldnsutils)
command -v pdns_recursor >/dev/null 2>&1 || need+=(pdns-recursor)
# The admin API TLS test makes its certificates with openssl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The admin tests post cross-site forms with curl.
command -v curl >/dev/null 2>&1 || need+=(curl)
# The chaos harness: NFQUEUE rules for link latency, libfaketime for a
# node's wrong clock, nsupdate for RFC 2136 writes (bind9-dnsutils, above).
command -v iptables >/dev/null 2>&1 || need+=(iptables)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
if ((${#need[@]})); then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "scripts/test.sh: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # Debian's nsd/knot packages try to start their daemons on port 53; a
  # policy-rc.d that says "no" keeps them stopped (the tests start their own).
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$made_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

cargo fmt --all -- --check
# The checked-in gRPC code must be what the .proto files give.
proto/regen.sh --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so the summary printed
  # last is the whole suite's.
  cargo test --workspace --doc --quiet
  rc=0
  cargo nextest run --workspace --exclude meshdns-chaos --no-fail-fast --no-tests=pass "$@" || rc=$?
  cargo nextest run -p meshdns-chaos --no-fail-fast --no-tests=pass "$@" || rc=$?
  exit $rc
else
  cargo test --workspace --no-fail-fast "$@"
fi
