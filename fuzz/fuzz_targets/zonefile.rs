//! Any bytes as a zone file: parsing and compiling must return a result or
//! a diagnostic, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshdns::zone::{compile, parse};

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("meshdns-fuzz-zone-{}.zone", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(parsed) = parse::parse_file(&path, Some("fuzz.test.")) {
        let _ = compile::compile(&parsed, None);
    }
});
