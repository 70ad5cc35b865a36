//! The meshdns gRPC admin API (`proto/cluster.proto`, `proto/zones.proto`)
//! and the tonic code generated from it, checked in under `src/generated`
//! (`proto/regen.sh` rewrites it; builds need no protoc).
//!
//! The server lives in the node crate; `meshdns cluster ...` is the client.
#![allow(missing_docs, unreachable_pub, clippy::all)]

/// `meshdns.cluster.v1`: membership, ring and status of one node's view.
pub mod cluster {
    include!("generated/meshdns.cluster.v1.rs");
}

/// `meshdns.zones.v1`: replicated zones, written on any node.
pub mod zones {
    include!("generated/meshdns.zones.v1.rs");
}

#[cfg(test)]
mod tests {
    /// The checked-in code must come from the .proto files as they are:
    /// `src/generated/SOURCES.sha256` (written by regen.sh) records them.
    #[test]
    fn generated_code_matches_the_proto_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let recorded = std::fs::read_to_string(root.join("src/generated/SOURCES.sha256")).unwrap();
        let mut seen = 0;
        for line in recorded.lines() {
            let (hash, file) = line.split_once("  ").unwrap();
            let text = std::fs::read(root.join(file)).unwrap();
            let actual: String = ring::digest::digest(&ring::digest::SHA256, &text)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(actual, hash, "{file} changed since the code was generated: run proto/regen.sh");
            seen += 1;
        }
        let protos = std::fs::read_dir(root.join("proto"))
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "proto")));
        assert_eq!(protos.count(), seen, "a .proto file is not in SOURCES.sha256: run proto/regen.sh");
    }
}
