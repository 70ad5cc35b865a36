//! Writes the tonic/prost code for `proto/*.proto` into the directory
//! given, with a vendored `protoc` (no system protobuf compiler needed).
//! `proto/regen.sh` runs it; nothing in a normal build does.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args_os().nth(1).ok_or("usage: meshdns-proto-regen OUT_DIR")?.into();
    let out = std::path::absolute(out)?;
    // Relative paths, as the old build script used, from the crate root.
    std::env::set_current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().out_dir(&out).compile_with_config(
        config,
        &["proto/cluster.proto", "proto/zones.proto"],
        &["proto"],
    )?;
    Ok(())
}
