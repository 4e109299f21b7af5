//! The per-container monitor: `hawser __monitor DIR`, what conmon is to Podman. It detaches from
//! whoever started it (so it outlives `hawser apply`), becomes the subreaper of the container's
//! process, holds its output and writes it to a rotated log, records every start and exit,
//! runs the healthcheck through the runtime's exec, and applies the restart policy with
//! Docker's backoff (100 ms, doubling, back to 100 ms after 10 s of running). No async runtime:
//! a few threads, a few hundred kilobytes of its own.

use super::error::{io, NativeError};
use super::oci::{self, Runtime};
use super::record::{now_unix, ContainerRecord, Paths, State, Status};
use crate::desired::RestartPolicy;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEFAULT_LOG_SIZE: u64 = 10 << 20;

/// Entered from `main` before anything else starts: the forks below need one thread.
pub fn main(dir: PathBuf) -> ! {
    // Detach: the caller waits for this first process only; the monitor is its child.
    // SAFETY: single-threaded here (nothing has started a thread yet).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            eprintln!("monitor: fork: {e}");
            std::process::exit(1)
        }
    }
    let _ = nix::unistd::setsid();
    // SAFETY: plain prctl, no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let paths = Paths::new(dir);
    let code = match run(&paths) {
        Ok(()) => 0,
        Err(e) => {
            let mut st = paths.read_status();
            st.error = Some(e.to_string());
            st.monitor_pid = None;
            st.starts += 1;
            if st.state != State::Exited {
                st.state = if st.started_unix.is_some() { State::Exited } else { State::Created };
            }
            let _ = paths.write_status(&st);
            1
        }
    };
    std::process::exit(code)
}

struct Shared {
    paths: Paths,
    status: Mutex<Status>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st);
        let _ = self.paths.write_status(&st);
    }
    fn stop_asked(&self) -> bool {
        self.paths.stop().exists()
    }
}

fn run(paths: &Paths) -> Result<(), NativeError> {
    let rec = paths.read_record().map_err(io(paths.record()))?;
    let rt = Runtime { bin: rec.runtime.clone(), root: rec.runtime_root.clone() };
    let mut st = paths.read_status();
    st.monitor_pid = Some(std::process::id() as i32);
    st.error = None;
    st.restart_count = 0;
    let shared = Arc::new(Shared { paths: Paths::new(paths.dir.clone()), status: Mutex::new(st) });
    shared.update(|_| {});
    let log = Arc::new(Mutex::new(LogFile::open(paths.log(), &rec)));
    std::thread::spawn(reap_orphans);
    // Its networks live as long as the monitor: the addresses stay across restarts.
    let joins = super::joins(&rec)?;
    if !joins.is_empty() {
        // Host ports hawser publishes itself are not the plugin's.
        let portmap = if rec.hawser_ports { &[][..] } else { &rec.spec.ports[..] };
        super::net::attach(&rec.id, &paths.dir, &joins, portmap)?;
        super::hosts::refresh(&rec.native_root);
    }
    let detach = || {
        if !joins.is_empty() {
            super::net::detach(&rec.id, &paths.dir);
            super::hosts::refresh(&rec.native_root);
        }
    };
    let mut backoff = Duration::from_millis(100);
    let mut generation = 0u64;
    loop {
        generation += 1;
        let started = std::time::Instant::now();
        let code = match run_once(&rec, &rt, &shared, &log, generation) {
            Ok(code) => code,
            Err(e) if generation == 1 => {
                oci::unmount_rootfs(&paths.rootfs());
                detach();
                return Err(e);
            }
            Err(e) => {
                // A restart that cannot start: recorded like an exit, and tried again.
                shared.update(|s| s.error = Some(e.to_string()));
                127
            }
        };
        if shared.stop_asked() {
            break;
        }
        let again = match rec.spec.restart.unwrap_or(RestartPolicy::No) {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => {
                let count = shared.status.lock().map(|s| s.restart_count).unwrap_or(0);
                code != 0 && max.is_none_or(|m| count < i64::from(m))
            }
        };
        if !again {
            break;
        }
        if started.elapsed() >= Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        shared.update(|s| s.state = State::Restarting);
        let until = std::time::Instant::now() + backoff;
        while std::time::Instant::now() < until && !shared.stop_asked() {
            std::thread::sleep(Duration::from_millis(20));
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
        if shared.stop_asked() {
            shared.update(|s| s.state = State::Exited);
            break;
        }
        shared.update(|s| s.restart_count += 1);
    }
    oci::unmount_rootfs(&paths.rootfs());
    detach();
    shared.update(|s| s.monitor_pid = None);
    Ok(())
}

/// One run of the container: create, start, wait. Returns its exit code.
fn run_once(
    rec: &ContainerRecord,
    rt: &Runtime,
    shared: &Arc<Shared>,
    log: &Arc<Mutex<LogFile>>,
    generation: u64,
) -> Result<i64, NativeError> {
    let paths = &shared.paths;
    rt.delete(&rec.id);
    let empty = rec.runtime_root.join("empty-layer");
    oci::mount_rootfs(&rec.layers, &paths.upper(), &paths.work(), &paths.rootfs(), &empty)?;
    for m in &rec.spec.volumes {
        if let crate::desired::Mount::Volume { source, target, .. } = m {
            let data = rec.native_root.join("volumes").join(source).join("_data");
            super::volumes::fill_if_empty(&paths.rootfs(), target, &data)
                .map_err(|e| NativeError::FillVolume { name: source.clone(), source: e })?;
        }
    }
    let _ = std::fs::remove_file(paths.pid_file());
    let (out_r, out_w) = std::io::pipe().map_err(io("a pipe"))?;
    let (err_r, err_w) = std::io::pipe().map_err(io("a pipe"))?;
    for (r, stream) in [(out_r, "stdout"), (err_r, "stderr")] {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(r);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).map(|n| n > 0).unwrap_or(false) {
                log.lock().unwrap_or_else(|p| p.into_inner()).write(stream, &line);
                line.clear();
            }
        });
    }
    let created = rt
        .command()
        .arg("--log")
        .arg(paths.runtime_log())
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(paths.bundle())
        .arg("--pid-file")
        .arg(paths.pid_file())
        .arg(&rec.id)
        .stdin(std::process::Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .status()
        .map_err(io(&rt.bin))?;
    if !created.success() {
        rt.delete(&rec.id);
        return Err(NativeError::Program {
            program: "the OCI runtime could not create the container".into(),
            message: runtime_error(&paths.runtime_log()),
        });
    }
    let pid: i32 = std::fs::read_to_string(paths.pid_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| NativeError::Program { program: "the OCI runtime".into(), message: "it wrote no pid".into() })?;
    let out = rt
        .command()
        .arg("--log")
        .arg(paths.runtime_log())
        .args(["--log-format", "json", "start", &rec.id])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io(&rt.bin))?;
    if !out.status.success() {
        rt.delete(&rec.id);
        return Err(NativeError::Program {
            program: "the OCI runtime could not start the container".into(),
            message: runtime_error(&paths.runtime_log()),
        });
    }
    let health = rec.healthcheck.as_ref().filter(|h| h.test.first().is_some_and(|t| t != "NONE"));
    shared.update(|s| {
        s.state = State::Running;
        s.pid = Some(pid);
        s.exit_code = None;
        s.started_unix = Some(now_unix());
        s.finished_unix = None;
        s.starts += 1;
        s.error = None;
        s.health = health.map(|_| "starting".to_string());
        s.health_output = None;
    });
    paths.append_event(rec, "start");
    let running = Arc::new(std::sync::atomic::AtomicU64::new(generation));
    if let Some(h) = health.cloned() {
        let (shared, rt, rec, running) = (shared.clone(), rt.clone(), rec.clone(), running.clone());
        std::thread::spawn(move || healthcheck(&shared, &rt, &rec, &h, &running, generation));
    }
    let code = loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => break i64::from(c),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i64,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            // Not our child (the monitor was started again while it ran): poll it instead.
            Err(_) => {
                while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                break 255;
            }
        }
    };
    running.store(0, std::sync::atomic::Ordering::SeqCst);
    rt.delete(&rec.id);
    shared.update(|s| {
        s.state = State::Exited;
        s.exit_code = Some(code);
        s.pid = None;
        s.finished_unix = Some(now_unix());
        if s.health.is_some() {
            s.health = Some("unhealthy".into());
        }
    });
    paths.append_event(rec, "die");
    Ok(code)
}

/// Reaps the orphans the monitor inherits as the subreaper of its container. One is a
/// process of a health check whose `runc exec` was killed at its timeout; left a zombie, it
/// would hold the container's init in its exit for ever (the init of a pid namespace waits
/// for every process of the namespace to be reaped), so the container could never be stopped.
/// A child in a container's pid namespace is always an orphan (the monitor starts nothing
/// there itself) and is reaped at once; any other is a program the monitor runs and waits for,
/// unless it has stayed a zombie for seconds, which no waiting thread leaves it.
fn reap_orphans() {
    let own = pid_depth("self");
    let mut seen: std::collections::HashMap<(i32, String), std::time::Instant> = Default::default();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = std::time::Instant::now();
        let mut zombies = std::collections::HashMap::new();
        for child in oci::children("self") {
            let Some(started) = zombie_since(child) else { continue };
            let first = *seen.get(&(child, started.clone())).unwrap_or(&now);
            if pid_depth(&child.to_string()) > own || now.duration_since(first) >= Duration::from_secs(3) {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(child),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            } else {
                zombies.insert((child, started), first);
            }
        }
        seen = zombies;
    }
}

/// A zombie's start time (which tells it from a later process with its pid), or None when it is
/// not a zombie.
fn zombie_since(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    // After the name: state is the 1st field, starttime the 20th.
    (fields.first() == Some(&"Z")).then(|| fields.get(19).unwrap_or(&"").to_string())
}

/// How many pid namespaces deep a process is (its `NSpid` has one number per level); 0 if gone.
fn pid_depth(pid: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("NSpid:")).map_or(0, |l| l.split_whitespace().count())
}

/// The last error line of the runtime's JSON log.
fn runtime_error(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .or_else(|| text.lines().last().map(str::to_string))
        .unwrap_or_else(|| "no message".into())
}

fn healthcheck(
    shared: &Shared,
    rt: &Runtime,
    rec: &ContainerRecord,
    h: &crate::desired::Healthcheck,
    running: &std::sync::atomic::AtomicU64,
    generation: u64,
) {
    let interval = h.interval.map_or(Duration::from_secs(30), |d| d.as_std());
    let timeout = h.timeout.map_or(Duration::from_secs(30), |d| d.as_std());
    let retries = h.retries.unwrap_or(3).max(1);
    let start_period = h.start_period.map_or(Duration::ZERO, |d| d.as_std());
    let args: Vec<String> = match h.test.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
        Some("CMD") => h.test[1..].to_vec(),
        _ => h.test.clone(),
    };
    let began = std::time::Instant::now();
    let mut streak = 0u32;
    let alive = || running.load(std::sync::atomic::Ordering::SeqCst) == generation;
    loop {
        // The first check comes after one interval, as Docker's.
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until {
            if !alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        let (code, output) = rt.exec(&rec.id, &args, timeout);
        if !alive() {
            return;
        }
        let verdict = if code == Some(0) {
            streak = 0;
            Some("healthy")
        } else if began.elapsed() < start_period {
            None
        } else {
            streak += 1;
            (streak >= retries).then_some("unhealthy")
        };
        let output = if code.is_none() { format!("timed out after {timeout:?}") } else { output.trim().to_string() };
        let mut changed = None;
        shared.update(|s| {
            s.health_output = Some(output);
            if let Some(v) = verdict {
                if s.health.as_deref() != Some(v) {
                    changed = Some(v);
                }
                s.health = Some(v.to_string());
            }
        });
        if let Some(v) = changed {
            shared.paths.append_event(rec, v);
        }
    }
}

/// The container's output as Docker's json-file driver writes it, rotated at `max-size`
/// (logging option; default 10 MiB), keeping `max-file` files.
struct LogFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    max: u64,
    /// Rotated files kept (`max-file` less the current one, at most 99 older; default 1).
    older: usize,
}

impl LogFile {
    fn open(path: PathBuf, rec: &ContainerRecord) -> LogFile {
        let max = rec
            .spec
            .logging
            .as_ref()
            .and_then(|l| l.options.get("max-size"))
            .and_then(|s| parse_size(s))
            .unwrap_or(DEFAULT_LOG_SIZE);
        let older = rec
            .spec
            .logging
            .as_ref()
            .and_then(|l| l.options.get("max-file"))
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(1, |n| n.clamp(1, 100) - 1);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).ok();
        let size = file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        LogFile { path, file, size, max, older }
    }

    fn write(&mut self, stream: &str, line: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream,
            "time": crate::display::rfc3339(now_unix()),
        });
        let mut bytes = serde_json::to_vec(&entry).expect("json");
        bytes.push(b'\n');
        if self.size + bytes.len() as u64 > self.max && self.size > 0 {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            if f.write_all(&bytes).is_ok() {
                self.size += bytes.len() as u64;
            }
        }
    }
}

impl LogFile {
    /// `log` becomes `log.1`, `log.1` becomes `log.2`... and the oldest beyond `older` goes.
    fn rotate(&mut self) {
        let nth = |k: usize| self.path.with_extension(k.to_string());
        if self.older == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(nth(self.older));
            for k in (1..self.older).rev() {
                let _ = std::fs::rename(nth(k), nth(k + 1));
            }
            let _ = std::fs::rename(&self.path, nth(1));
        }
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).ok();
        self.size = 0;
    }
}

/// `10m`, `512k`, `1g` or bytes, as Docker's log options take them.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_rotate_keeping_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = super::LogFile { path: path.clone(), file: None, size: 0, max: 100, older: 2 };
        log.rotate();
        for i in 0..40 {
            log.write("stdout", format!("line {i}\n").as_bytes());
        }
        let files = super::super::record::log_files(&path);
        assert_eq!(files.len(), 3, "the current one and two older: {files:?}");
        let text = super::super::record::tail_log(&path, 1000);
        assert!(text.ends_with("line 39\n") && !text.contains("line 0\n"), "oldest first, the oldest gone: {text}");
    }

    #[test]
    fn log_sizes_as_docker_takes_them() {
        assert_eq!(super::parse_size("10m"), Some(10 << 20));
        assert_eq!(super::parse_size("512k"), Some(512 << 10));
        assert_eq!(super::parse_size("100"), Some(100));
        assert_eq!(super::parse_size("x"), None);
    }
}
