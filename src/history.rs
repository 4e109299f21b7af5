//! The reconcile history, in SQLite in the state dir (bundled: no server). `hawser serve` and
//! `hawser apply` write one row per reconcile; `hawser history` and `hawser status` read it.
//! Rows hold revisions, causes and errors, never secret values (no message carries one).
//!
//! It is bounded, since reconciles can be asked for by anyone who can push or reach a button:
//! the newest [`MAX_ROWS`] rows are kept, each error at most [`MAX_ERROR_BYTES`], so the file
//! stays within a few tens of MB (SQLite reuses the pages of deleted rows).

use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub started_unix: f64,
    pub source: String,
    pub project: Option<String>,
    pub revision: Option<String>,
    pub trigger: String,
    /// Actions carried out.
    pub actions: u64,
    pub outcome: String,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// Rows kept, newest first; older ones are deleted as new ones come.
pub const MAX_ROWS: i64 = 5000;
/// An error longer than this is cut (the whole of it is in the log of the run that made it).
pub const MAX_ERROR_BYTES: usize = 4096;

pub struct History {
    conn: Connection,
}

#[derive(Debug, thiserror::Error)]
#[error("history database {path}: {source}")]
pub struct HistoryError {
    path: String,
    source: rusqlite::Error,
}

impl History {
    pub fn open(state_dir: &Path) -> Result<History, HistoryError> {
        let path = state_dir.join("history.sqlite3");
        let err = |source| HistoryError { path: path.display().to_string(), source };
        let _ = std::fs::create_dir_all(state_dir);
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        // The write-ahead log stays when a connection closes, instead of being folded into the
        // database (with three fsyncs) by every short-lived `hawser apply`: SQLite folds it in
        // itself every thousand pages.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(err)?;
        conn.execute_batch(
            // A history row lost to a power cut costs nothing; an fsync per reconcile costs a
            // no-op a good part of its time. WAL keeps the file consistent either way.
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS reconciles (
                 id INTEGER PRIMARY KEY,
                 started_unix REAL NOT NULL,
                 source TEXT NOT NULL,
                 project TEXT,
                 revision TEXT,
                 trigger TEXT NOT NULL,
                 actions INTEGER NOT NULL,
                 outcome TEXT NOT NULL,
                 duration_ms INTEGER NOT NULL,
                 error TEXT
             );
             CREATE INDEX IF NOT EXISTS reconciles_project ON reconciles (project, id);",
        )
        .map_err(err)?;
        Ok(History { conn })
    }

    pub fn record(&self, e: &Entry) -> rusqlite::Result<()> {
        let error = e.error.as_deref().map(cut);
        self.conn.execute(
            "INSERT INTO reconciles (started_unix, source, project, revision, trigger, actions, outcome, duration_ms, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![e.started_unix, e.source, e.project, e.revision, e.trigger, e.actions as i64, e.outcome, e.duration_ms as i64, error],
        )?;
        let newest = self.conn.last_insert_rowid();
        self.conn.execute("DELETE FROM reconciles WHERE id <= ?1", params![newest - MAX_ROWS])?;
        Ok(())
    }

    /// The newest `limit` entries, newest first, of one project or all.
    pub fn recent(&self, project: Option<&str>, limit: usize) -> rusqlite::Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare(
            "SELECT started_unix, source, project, revision, trigger, actions, outcome, duration_ms, error
             FROM reconciles WHERE (?1 IS NULL OR project = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![project, limit as i64], |r| {
            Ok(Entry {
                started_unix: r.get(0)?,
                source: r.get(1)?,
                project: r.get(2)?,
                revision: r.get(3)?,
                trigger: r.get(4)?,
                actions: r.get::<_, i64>(5)? as u64,
                outcome: r.get(6)?,
                duration_ms: r.get::<_, i64>(7)? as u64,
                error: r.get(8)?,
            })
        })?;
        rows.collect()
    }
}

/// `text` within [`MAX_ERROR_BYTES`], cut at a character boundary, saying so.
fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_ERROR_BYTES {
        return text.into();
    }
    let mut end = MAX_ERROR_BYTES - 64;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes cut; the run's log has the whole error)", &text[..end], text.len() - end).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_newest_first_by_project() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        for (i, p) in ["a", "b", "a"].iter().enumerate() {
            let e = Entry {
                started_unix: i as f64,
                source: "s".into(),
                project: Some(p.to_string()),
                revision: Some(format!("r{i}")),
                trigger: "push".into(),
                actions: i as u64,
                outcome: "changed".into(),
                duration_ms: 10,
                error: None,
            };
            h.record(&e).unwrap();
        }
        let a = History::open(dir.path()).unwrap().recent(Some("a"), 10).unwrap();
        assert_eq!(a.iter().map(|e| e.revision.clone().unwrap()).collect::<Vec<_>>(), ["r2", "r0"]);
        assert_eq!(h.recent(None, 1).unwrap().len(), 1);
    }

    /// Attack: 2,522 presses of "Reconcile now" in 30 s, each a row with its whole error, grew
    /// the history from 1 MB to 98 MB and `/history` to a 96 MB page.
    #[test]
    fn the_history_keeps_a_bounded_number_of_rows_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let long = "é".repeat(20_000);
        let rows = MAX_ROWS as usize + 300;
        h.conn.execute_batch("BEGIN").unwrap();
        for i in 0..rows {
            let e = Entry {
                started_unix: i as f64,
                source: "s".into(),
                project: Some("p".into()),
                revision: Some(format!("r{i}")),
                trigger: "manual".into(),
                actions: 0,
                outcome: "failed".into(),
                duration_ms: 1,
                error: Some(long.clone()),
            };
            h.record(&e).unwrap();
        }
        h.conn.execute_batch("COMMIT").unwrap();
        let all = h.recent(None, usize::MAX >> 1).unwrap();
        assert_eq!(all.len(), MAX_ROWS as usize);
        assert_eq!(all[0].revision.as_deref(), Some(format!("r{}", rows - 1).as_str()), "the newest are kept");
        let error = all[0].error.as_deref().unwrap();
        assert!(
            error.len() <= MAX_ERROR_BYTES && error.ends_with("the run's log has the whole error)"),
            "{}",
            error.len()
        );
        let bytes: usize = all.iter().map(|e| e.error.as_ref().map_or(0, String::len)).sum();
        assert!(bytes <= MAX_ROWS as usize * MAX_ERROR_BYTES);
    }
}
