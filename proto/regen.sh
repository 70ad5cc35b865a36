#!/usr/bin/env bash
# Regenerates the checked-in gRPC code (src/generated) from proto/*.proto,
# with tonic-prost-build and a vendored protoc (the regen/ crate, kept out
# of the workspace so builds need neither). Run it after editing a .proto
# file and commit the result.
#
#   proto/regen.sh           rewrite src/generated
#   proto/regen.sh --check   exit 1 if src/generated is stale (CI)
#
# src/generated/SOURCES.sha256 records the .proto files the code came
# from; `cargo test -p meshdns-proto` fails when they differ, without
# running protoc.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --quiet --offline --manifest-path regen/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-regen/target}" -- "$tmp" 2>/dev/null \
  || cargo run --quiet --manifest-path regen/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-regen/target}" -- "$tmp"
sha256sum proto/*.proto > "$tmp/SOURCES.sha256"
if [ "${1:-}" = --check ]; then
  if ! diff -ru src/generated "$tmp"; then
    echo "regen.sh: src/generated is stale: run proto/regen.sh and commit the result" >&2
    exit 1
  fi
  echo "regen.sh: src/generated is current"
else
  rm -f src/generated/*
  cp "$tmp"/* src/generated/
  echo "regenerated: $(ls src/generated | tr '\n' ' ')"
fi
