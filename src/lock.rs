//! One apply per project per host at a time: an exclusive `flock` on a file in the state dir.
//! The kernel releases it when the process dies, so a crash never leaves a stale lock.

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create the lock file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("another apply of project `{project}` holds the lock ({holder}); gave up after {waited:?}")]
    Timeout { project: String, holder: String, waited: Duration },
}

/// Held while it lives.
pub struct ProjectLock {
    _lock: Flock<File>,
}

/// Takes the lock of `project`; while another process holds it, calls `waiting` once and keeps
/// trying until `timeout` (None: forever).
pub fn acquire(
    state_dir: &Path,
    project: &str,
    timeout: Option<Duration>,
    waiting: &mut dyn FnMut(&str),
) -> Result<ProjectLock, LockError> {
    let dir = state_dir.join("locks");
    let path = dir.join(format!("{project}.lock"));
    let io = |source| LockError::Io { path: path.clone(), source };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let started = Instant::now();
    let mut told = false;
    loop {
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // Who holds it, for the message another apply shows while it waits.
                let _ = lock.set_len(0);
                let _ = writeln!(&mut *lock, "pid {}", std::process::id());
                return Ok(ProjectLock { _lock: lock });
            }
            Err((_, _errno)) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
                let holder = if holder.is_empty() { "another process".to_string() } else { holder };
                if let Some(t) = timeout {
                    if started.elapsed() >= t {
                        return Err(LockError::Timeout { project: project.into(), holder, waited: t });
                    }
                }
                if !told {
                    waiting(&format!("waiting for another apply of project `{project}` ({holder}) to finish"));
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "p", None, &mut |_| {}).unwrap();
        let mut said = Vec::new();
        let e = acquire(dir.path(), "p", Some(Duration::from_millis(300)), &mut |m| said.push(m.to_string()));
        assert!(matches!(e, Err(LockError::Timeout { .. })));
        assert_eq!(said.len(), 1);
        assert!(said[0].contains(&format!("pid {}", std::process::id())), "{said:?}");
        // Other projects are independent.
        let _other = acquire(dir.path(), "q", Some(Duration::ZERO), &mut |_| {}).unwrap();
        drop(first);
        assert!(acquire(dir.path(), "p", Some(Duration::ZERO), &mut |_| {}).is_ok());
    }
}
