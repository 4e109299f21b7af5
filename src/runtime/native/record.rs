//! What the native target keeps on disk about each container, so that its state can be read
//! back after any crash of hawser, of a monitor or of the host:
//!
//! ```text
//! containers/ID/container.json   what it was created as (never holds secret values)
//! containers/ID/status.json      its run state, written by its monitor
//! containers/ID/events           one line per start, exit and health change: `UNIX EVENT`
//! containers/ID/log              its output as JSON lines (Docker's json-file format), rotated
//! containers/ID/bundle/          the OCI bundle: config.json and the rootfs mount point
//! containers/ID/stop             present while a stop is asked for: the monitor restarts nothing
//! names/NAME                     the id holding a name (made exclusively: names are unique)
//! ```

use crate::desired::ContainerSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub created_unix: f64,
    pub spec: ContainerSpec,
    /// The OCI runtime binary that runs it, and its state folder.
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// The image's layer folders, top first (the overlay's lower folders).
    pub layers: Vec<PathBuf>,
    /// The native target's folder (networks, other containers' names).
    #[serde(default)]
    pub native_root: PathBuf,
    /// Names it also answers to on its networks (the resource name of a candidate).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The healthcheck the monitor runs: the spec's, else the image's own (as Docker).
    #[serde(default)]
    pub healthcheck: Option<crate::desired::Healthcheck>,
    /// The image's own stop signal, when it gives one.
    #[serde(default)]
    pub image_stop_signal: Option<String>,
    /// Its host ports are published by hawser's own rules (`runtime::ports`), not by the CNI
    /// portmap plugin (containers made before hawser did so).
    #[serde(default)]
    pub hawser_ports: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Created,
    Running,
    Restarting,
    Exited,
    /// Its process runs but its monitor is gone (killed): nobody keeps its output, sees its
    /// exit or restarts it. Never written, only observed; starting it runs it again under a
    /// new monitor.
    Dead,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    /// The container's first process, as the host sees it.
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub exit_code: Option<i64>,
    pub started_unix: Option<f64>,
    pub finished_unix: Option<f64>,
    /// Restarts by the restart policy since the last start asked for.
    pub restart_count: i64,
    /// Starts since creation; a waiting `start` sees it go up.
    pub starts: u64,
    /// `starting`, `healthy` or `unhealthy`, with a healthcheck.
    pub health: Option<String>,
    pub health_output: Option<String>,
    /// Why the last start failed (the runtime's message).
    pub error: Option<String>,
}

/// The host's events log is started anew past this size (the older one kept as `.1`).
const HOST_EVENTS_MAX: u64 = 1 << 20;

pub use crate::display::now_unix;

pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: PathBuf) -> Paths {
        Paths { dir }
    }
    pub fn record(&self) -> PathBuf {
        self.dir.join("container.json")
    }
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn events(&self) -> PathBuf {
        self.dir.join("events")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("bundle").join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn stop(&self) -> PathBuf {
        self.dir.join("stop")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }
    pub fn runtime_log(&self) -> PathBuf {
        self.dir.join("runtime.log")
    }

    pub fn read_record(&self) -> std::io::Result<ContainerRecord> {
        let b = std::fs::read(self.record())?;
        serde_json::from_slice(&b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn read_status(&self) -> Status {
        std::fs::read(self.status()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn write_status(&self, s: &Status) -> std::io::Result<()> {
        crate::state_file::write_atomic(&self.status(), &serde_json::to_vec(s).expect("statuses serialize"))
    }

    /// Records `event` of the container `rec`: in its own events file (for a gate watching
    /// it) and in the host's (`NATIVE/events.log`, for `hawser serve`).
    pub fn append_event(&self, rec: &ContainerRecord, event: &str) {
        let now = now_unix();
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(self.events()) {
            let _ = writeln!(f, "{now:.6} {event}");
        }
        let host = rec.native_root.join("events.log");
        if std::fs::metadata(&host).is_ok_and(|m| m.len() > HOST_EVENTS_MAX) {
            let _ = std::fs::rename(&host, host.with_extension("log.1"));
        }
        let line = serde_json::json!({
            "time": now,
            "id": rec.id,
            "name": rec.name,
            "project": rec.labels.get(crate::labels::PROJECT),
            "event": event,
        });
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(host) {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Events at or after `since` (unix seconds), as `(time, event)`.
    pub fn events_since(&self, since: f64, from_byte: &mut u64) -> Vec<(f64, String)> {
        use std::io::{Read, Seek};
        let Ok(mut f) = std::fs::File::open(self.events()) else { return Vec::new() };
        if f.seek(std::io::SeekFrom::Start(*from_byte)).is_err() {
            return Vec::new();
        }
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        // Only whole lines; a line being written is read next time.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        *from_byte += whole as u64;
        text[..whole]
            .lines()
            .filter_map(|l| l.split_once(' ').and_then(|(t, e)| Some((t.parse::<f64>().ok()?, e.to_string()))))
            .filter(|(t, _)| *t >= since)
            .collect()
    }
}

/// Is `pid` alive and a hawser monitor (not a process that reused the number)?
pub fn monitor_alive(pid: Option<i32>) -> bool {
    let Some(pid) = pid else { return false };
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        // A zombie is not alive.
        Ok(c) => !zombie(pid) && c.split(|b| *b == 0).any(|a| a == b"__monitor"),
        Err(_) => false,
    }
}

pub fn zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

/// A container's log files, oldest first: `log.N` ... `log.1`, `log`.
pub fn log_files(log: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        (1..100).map(|k| log.with_extension(k.to_string())).take_while(|f| f.exists()).collect();
    files.reverse();
    files.push(log.to_path_buf());
    files
}

/// Last `n` lines of a container's output (the current log and the rotated ones), as text.
pub fn tail_log(log: &Path, n: usize) -> String {
    // Newest file first, and no further back than needed: the older files may be large.
    let mut lines: Vec<String> = Vec::new();
    for f in log_files(log).iter().rev() {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let mut these: Vec<String> = text
            .lines()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["log"].as_str().map(str::to_string))
            })
            .collect();
        these.append(&mut lines);
        lines = these;
        if lines.len() >= n {
            break;
        }
    }
    let start = lines.len().saturating_sub(n);
    lines[start..].concat()
}
