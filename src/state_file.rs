//! Files of the state directory, written whole or not at all: a reader (another hawser, the
//! next start after a crash) sees the old content or the new, never half.

use std::path::Path;

/// Writes `data` to `path` through a temporary file beside it and a rename; the temporary file
/// is removed when either step fails.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = std::fs::write(&tmp, data).and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}
