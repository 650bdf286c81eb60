//! The limiter's snapshot file (`limiter.snapshot_path`): restored at start, written every
//! `limiter.snapshot_interval` and once more on shutdown, after the drain.
//!
//! The limiter turns its states into lines and back ([`crate::limiter::Limiter::write_snapshot`],
//! [`crate::limiter::Limiter::restore_snapshot`]); this file does the I/O, so that the limiter
//! keeps knowing only the clock. A write is atomic: a temporary file in the same directory,
//! fsync, rename over the target, fsync of the directory — a crash at any moment leaves the
//! previous snapshot or the new one, never a mix. A write runs on the blocking pool: it copies
//! every state and waits for the disk.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::gate::Gate;
use crate::server::listener::Shutdown;

/// Restores the snapshot at `path` into the gate's limiter, before any door answers. A
/// missing file is a first start; a damaged one is read as far as it is whole. Never fails:
/// what happened is said in one log line and counted in `/metrics`. Returns the cluster
/// node and generation that wrote it, if one did.
pub fn restore(gate: &Gate, path: &Path) -> Option<(u64, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no limiter snapshot yet: counts start afresh");
            return None;
        }
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot open the limiter snapshot: counts start afresh"
            );
            gate.metrics().snapshot_restored(0, 0, 0);
            return None;
        }
    };
    let report = gate
        .limiter()
        .restore_snapshot(&mut BufReader::with_capacity(64 * 1024, file));
    gate.metrics()
        .snapshot_restored(report.restored, report.ended, report.lost);
    match &report.problem {
        None => tracing::info!(
            path = %path.display(),
            restored = report.restored,
            ended = report.ended,
            "limiter snapshot restored"
        ),
        Some(problem) => tracing::warn!(
            path = %path.display(),
            restored = report.restored,
            ended = report.ended,
            lost = report.lost,
            problem = %problem,
            "limiter snapshot damaged: restored what was whole, the lost states start afresh"
        ),
    }
    report.origin
}

/// Writes the gate's counts to `path` atomically. Returns how many states were written.
pub fn write(gate: &Gate, path: &Path) -> anyhow::Result<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .context("the snapshot path names no file")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> anyhow::Result<u64> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let n = gate
            .limiter()
            .write_snapshot(&mut out)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        out.flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
            .with_context(|| format!("cannot fsync {}", tmp.display()))?;
        drop(file);
        fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        // The rename is durable once the directory is.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot fsync the directory {}", dir.display()))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    gate.metrics().snapshot_written(result.is_ok());
    result
}

/// [`write()`] on the blocking pool, with its outcome logged; `when` says why it was written.
pub async fn write_logged(gate: Arc<Gate>, path: PathBuf, when: &'static str) {
    let started = std::time::Instant::now();
    let p = path.clone();
    let outcome = tokio::task::spawn_blocking(move || write(&gate, &p)).await;
    match outcome {
        Ok(Ok(states)) => tracing::debug!(
            path = %path.display(),
            states,
            ms = started.elapsed().as_millis() as u64,
            when,
            "limiter snapshot written"
        ),
        Ok(Err(e)) => tracing::error!(
            path = %path.display(),
            error = %format!("{e:#}"),
            when,
            "cannot write the limiter snapshot; the previous one stays"
        ),
        Err(e) => tracing::error!(error = %e, when, "the limiter snapshot task failed"),
    }
}

/// Writes the snapshot every `interval` until the shutdown begins (the final snapshot is
/// the supervisor's, after the drain).
pub async fn write_periodically(
    gate: Arc<Gate>,
    path: PathBuf,
    interval: Duration,
    shutdown: Shutdown,
) {
    let draining = shutdown.draining();
    tokio::pin!(draining);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // immediate: the counts were just restored
    loop {
        tokio::select! {
            _ = &mut draining => return,
            _ = tick.tick() => write_logged(gate.clone(), path.clone(), "periodic").await,
        }
    }
}
