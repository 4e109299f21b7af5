//! `hawser logs` on the native target: the monitor's json-file log, read and followed.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

fn emit(line: &str) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { return };
    let text = v["log"].as_str().unwrap_or_default();
    if v["stream"] == "stderr" {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Prints the last `tail` lines (all without it), then, with `follow`, what is written next,
/// across rotations, until the container's folder is gone.
pub async fn print(log: &Path, tail: Option<usize>, follow: bool) {
    let mut lines: Vec<String> = Vec::new();
    for f in super::record::log_files(log) {
        if let Ok(text) = std::fs::read_to_string(&f) {
            lines.extend(text.lines().map(str::to_string));
        }
    }
    let start = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[start..] {
        emit(l);
    }
    if !follow {
        return;
    }
    let mut at = std::fs::metadata(log).map_or(0, |m| m.len());
    let mut partial = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(dir) = log.parent() else { return };
        if !dir.exists() {
            return;
        }
        let len = std::fs::metadata(log).map_or(0, |m| m.len());
        if len < at {
            at = 0; // rotated: the new file from its start
        }
        if len == at {
            continue;
        }
        let Ok(mut f) = std::fs::File::open(log) else { continue };
        if f.seek(std::io::SeekFrom::Start(at)).is_err() {
            continue;
        }
        let mut more = String::new();
        let n = f.read_to_string(&mut more).unwrap_or(0);
        at += n as u64;
        partial.push_str(&more);
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            emit(line.trim_end());
        }
    }
}
