//! Any bytes, read as a YAML manifest, a TOML manifest and a compose file, must give a model or
//! positioned errors, never a panic.
#![no_main]

use hawser::desired::{load, ManifestFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for path in ["m.yaml", "m.toml", "compose.yaml"] {
        let files = [ManifestFile { path: path.into(), text: text.to_string() }];
        if let Err(diags) = load("fuzz", "rev", &files) {
            for d in &diags.0 {
                assert!(d.pos.line >= 1 && d.pos.col >= 1, "{d}");
                let _ = d.to_string();
            }
        }
    }
});
