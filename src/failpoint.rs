//! Named failpoints for crash-recovery tests. Built with the `failpoints` feature, the process
//! aborts (no cleanup, like a kill -9) when it reaches the point named by `HAWSER_FAILPOINT`.
//! Without the feature, `hit` compiles to nothing.

/// The points of a replacement where a crash is simulated in tests.
pub const CANDIDATE_CREATED: &str = "candidate-created";
pub const CANDIDATE_STARTED: &str = "candidate-started";
/// Start-first with host ports: they were switched to the candidate.
pub const SWITCHED: &str = "switched";
pub const OLD_STOPPED: &str = "old-stopped";
pub const OLD_REMOVED: &str = "old-removed";
pub const BEFORE_RENAME: &str = "before-rename";

#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("HAWSER_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
