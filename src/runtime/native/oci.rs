//! The OCI runtime binary (runc or crun: both speak the same command line), its state in a
//! folder of hawser's own, and the overlay root filesystem it runs on.

use super::error::{io, NativeError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Runtime {
    pub bin: PathBuf,
    pub root: PathBuf,
}

/// The runtime to use: `HAWSER_OCI_RUNTIME` if set; else crun, which starts a container in a
/// few milliseconds, unless the host mixes cgroup v1 and v2 with controllers on v2, which
/// crun refuses ("cgroups in hybrid mode not supported") and runc takes; else runc.
pub fn choose() -> Result<PathBuf, NativeError> {
    if let Some(p) = std::env::var_os("HAWSER_OCI_RUNTIME") {
        return Ok(PathBuf::from(p));
    }
    let find = |name: &str| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
            .unwrap_or(None)
            .or_else(|| {
                ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
                    .iter()
                    .map(|d| Path::new(d).join(name))
                    .find(|f| f.is_file())
            })
    };
    let hybrid_v2_controllers =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").is_ok_and(|c| !c.trim().is_empty());
    let order: &[&str] = if hybrid_v2_controllers { &["runc", "crun"] } else { &["crun", "runc"] };
    for name in order {
        if hybrid_v2_controllers && *name == "crun" {
            continue;
        }
        if let Some(p) = find(name) {
            return Ok(p);
        }
    }
    Err(NativeError::NoRuntime(if hybrid_v2_controllers {
        "no OCI runtime that works on this host: install runc (`apt install runc`); crun refuses hosts that mix cgroup v1 and v2"
    } else {
        "no OCI runtime found: install crun or runc (`apt install crun`), or set HAWSER_OCI_RUNTIME"
    }))
}

impl Runtime {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c
    }

    fn quiet(&self, args: &[&str]) -> Result<(), NativeError> {
        let out = self.command().args(args).stdin(Stdio::null()).output().map_err(io(&self.bin))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NativeError::Program {
                program: format!("{} {}", self.bin.display(), args.first().unwrap_or(&"")),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    pub fn kill(&self, id: &str, signal: &str) -> Result<(), NativeError> {
        self.quiet(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) {
        let _ = self.quiet(&["delete", "--force", id]);
    }

    /// `created`, `running`, `stopped`, or `None` when the runtime has no such container.
    pub fn state(&self, id: &str) -> Option<String> {
        let out = self.command().args(["state", id]).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    /// Runs `args` in the container; its exit code (None when it timed out) and output.
    pub fn exec(&self, id: &str, args: &[String], timeout: Duration) -> (Option<i32>, String) {
        let out_file = match tempfile_in_dev_shm() {
            Some(f) => f,
            None => return (None, "cannot make a file for the output".into()),
        };
        let (file, path) = out_file;
        let child = self
            .command()
            .arg("exec")
            .arg(id)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().map(Stdio::from).unwrap_or(Stdio::null()))
            .stderr(Stdio::from(file))
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return (None, e.to_string()),
        };
        let deadline = Instant::now() + timeout;
        let code = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st.code().or(Some(128)),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    // What it started inside the container first: killed alone, `runc exec`
                    // leaves its process running as an orphan of the monitor.
                    kill_tree(child.id() as i32);
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text.truncate(4096);
        (code, text)
    }
}

/// SIGKILL to every descendant of `pid` (not to `pid` itself), deepest first.
fn kill_tree(pid: i32) {
    for c in children(&pid.to_string()) {
        kill_tree(c);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c), nix::sys::signal::Signal::SIGKILL);
    }
}

/// The children of a process (`self` or a pid), whichever of its threads they belong to.
pub fn children(pid: &str) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
        .collect()
}

fn tempfile_in_dev_shm() -> Option<(std::fs::File, PathBuf)> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let path = dir.join(format!("hawser-exec-{}-{n}", std::process::id()));
    std::fs::File::create(&path).ok().map(|f| (f, path))
}

/// Mounts the overlay of `layers` (top first) with the container's own upper folder at `rootfs`.
/// Layer folders are named relative to their common parent (the mount options must fit in a
/// page), so the caller's working folder changes to it.
pub fn mount_rootfs(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    rootfs: &Path,
    empty: &Path,
) -> Result<(), NativeError> {
    let _ = nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH);
    for d in [upper, work, rootfs] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let lower: Vec<String> = if layers.is_empty() {
        std::fs::create_dir_all(empty).map_err(io(empty))?;
        vec![empty.display().to_string()]
    } else {
        let parent = layers[0].parent().unwrap_or(Path::new("/"));
        if layers.iter().all(|l| l.parent() == Some(parent)) {
            std::env::set_current_dir(parent).map_err(io(parent))?;
            layers.iter().map(|l| l.file_name().unwrap_or_default().to_string_lossy().to_string()).collect()
        } else {
            layers.iter().map(|l| l.display().to_string()).collect()
        }
    };
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    nix::mount::mount(Some("overlay"), rootfs, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str()))
        .map_err(|source| NativeError::Sys {
            what: format!("mounting the root filesystem at {}", rootfs.display()),
            source,
        })
}

pub fn unmount_rootfs(rootfs: &Path) {
    let _ = nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH);
}
