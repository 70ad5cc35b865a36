#!/bin/sh
# Regenerates the signed DNSSEC fixtures the resolver's dnssec tests read.
# The tests read the checked-in files, never run this: keys are random, so
# every run gives new keys, signatures and DS records (the tests look them
# up by file, not by key tag). Needs ldns-utils (ldns-keygen, ldns-signzone)
# and, for the opt-out zone, bind9-utils (dnssec-keygen, dnssec-signzone):
# ldns-signzone -p sets the opt-out flag but still gives every unsigned
# delegation its own NSEC3, so it never produces the opt-out span we test.
#
# Every fixture is example.zone signed with a fresh KSK (flags 257) and ZSK
# (flags 256); NAME.zone is the signed zone, NAME.ds the KSK's DS (SHA-256).
# Signatures run to 2036-01-01 so the fixtures stay valid for ten years,
# except expired.zone, whose signatures ended 2020-01-01.
#
# Usage: make.sh [NAME...]   (no NAME: regenerate all of them)
set -eu
only="$*"
want() { [ -z "$only" ] || case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# make NAME ALGORITHM BITS SIGNZONE-OPTIONS...
make() {
    name=$1; alg=$2; bits=$3; shift 3
    want "$name" || return 0
    rm -f K*
    if [ "$bits" = - ]; then b=""; else b="-b $bits"; fi
    ksk=$(ldns-keygen -r /dev/urandom -a "$alg" $b -k example.)
    zsk=$(ldns-keygen -r /dev/urandom -a "$alg" $b example.)
    cp "$here/example.zone" zone
    ldns-signzone -o example. -f signed "$@" zone "$ksk" "$zsk"
    {
        echo "; example.zone signed by make.sh: $alg, ldns-signzone $*"
        grep -v '^;' signed
    } > "$here/$name.zone"
    grep -v '^;' "$ksk.ds" > "$here/$name.ds"
}

far="-i 20250101000000 -e 20360101000000"
make nsec-ecdsa     ECDSAP256SHA256 - $far
make rsa            RSASHA256    2048 $far
make ed25519        ED25519         - $far
make p384           ECDSAP384SHA384 - $far
make nsec3          ECDSAP256SHA256 - $far -n -t 0 -s aabbccdd

# nsec3-optout: BIND, so unsigned delegations get no NSEC3 (RFC 5155 §6).
if want nsec3-optout; then
rm -f K*
ksk=$(dnssec-keygen -q -a ECDSAP256SHA256 -f KSK example.)
zsk=$(dnssec-keygen -q -a ECDSAP256SHA256 example.)
cat "$here/example.zone" "$ksk.key" "$zsk.key" > zone
dnssec-signzone -q -O full -o example. -f signed -3 aabbccdd -H 0 -A \
    -s 20250101000000 -e 20360101000000 zone "$ksk" "$zsk" > /dev/null
{
    echo "; example.zone signed by make.sh: ECDSAP256SHA256, dnssec-signzone -3 aabbccdd -H 0 -A (opt-out)"
    grep -v '^;' signed
} > "$here/nsec3-optout.zone"
dnssec-dsfromkey -2 "$ksk.key" > "$here/nsec3-optout.ds"
fi
make nsec3-iter200  ECDSAP256SHA256 - $far -n -t 200 -s aabbccdd
make expired        ECDSAP256SHA256 - -i 20190101000000 -e 20200101000000
echo "fixtures written to $here"
