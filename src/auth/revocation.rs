//! The revocation store: tokens revoked by `jti`, and every token of a subject issued before a
//! time (logout everywhere, ban, password change).
//!
//! Durability: every new revocation is appended to a log file as one record line (with a
//! checksum; the format is in [`super::revocation_log`]) and fsynced before the call returns,
//! so once an admin request is answered the revocation survives `kill -9`. At startup the log
//! is replayed: every intact record is recovered, a record that fails its checksum is skipped
//! (it cannot be trusted), an incomplete last line (a write cut by a crash, never
//! acknowledged) is cut off, and what was recovered and lost is logged in one line — a warning
//! when anything was lost — and kept in [`RevocationStore::recovery`]; a damaged log never
//! stops the start. When anything was lost, the log as found is copied to `<path>.damaged`
//! first. Expired entries are compacted away by rewriting the live ones to a temporary file,
//! fsyncing it and renaming it over the log (atomic on POSIX), then fsyncing the directory;
//! a start that found damage, or records of the earlier format, rewrites the log so.
//!
//! Retention: a `jti` entry lives until that token's `exp` plus a slack (the largest leeway);
//! after that the token is refused as expired anyway. A subject entry lives until
//! `before + subject_retention`, which must exceed the longest token lifetime in use.
//! A token without `iat` cannot prove it was issued after a subject revocation, so under one
//! it counts as revoked.
//!
//! Bounds: at most `max_entries` entries; past that, new revocations are refused (after
//! purging expired ones) rather than evicting old ones, since evicting a revocation re-admits
//! a token. Reads (`is_revoked`, on every request and every cache hit) take a shared lock,
//! or none at all while the store is empty.
//!
//! Merging with other nodes: [`RevocationStore::list_entries`] gives every live entry with
//! its expiry, and [`RevocationStore::merge`] takes another store's entries in. The merge is
//! a join: a `jti` keeps the later `exp`; a subject keeps the later `before` *and* the later
//! `until`, each on its own. (Taking the whole entry with the later `before` would not do:
//! an entry `before = 20, until = 30` would replace `before = 10, until = 1000` and the
//! tokens issued before 10 would be admitted again after 30.) Component-wise maxima make
//! merging commutative, associative and idempotent, and a merge never weakens a revocation:
//! whatever was revoked stays revoked at least as long. Merged entries are logged and
//! fsynced like local ones. At the cap, entries for a `jti` or subject not yet held are
//! refused (counted in the [`MergeSummary`]) while those that extend held entries still
//! apply: the store never evicts a revocation to make room.
//!
//! For the cluster: [`RevocationStore::subscribe`] gives a bounded feed of the revocations
//! recorded *here* (through [`RevocationStore::apply`] and the `revoke_*` calls, not those
//! taken in by a merge, so a revocation learnt from a peer is not echoed back), which the
//! revocation plane pushes to the peers; a full feed drops and counts
//! ([`RevocationStats::feed_overflow`]), and the digest comparison repairs what it dropped.
//! [`RevocationStore::digest`] is kept up to date as entries change (each change XORs one
//! entry's hash out and one in), so publishing it every interval costs a read lock, not a
//! pass over every entry.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::identity::TokenClaims;
use super::revocation_log::{self, LogRecovery};
use crate::clock::Clock;

/// Longest `jti` or subject accepted.
pub const MAX_ID_BYTES: usize = 256;

/// One revocation, as logged and as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Revocation {
    /// The token with this `jti`; kept until `exp` (seconds) plus slack.
    Jti { jti: String, exp: i64 },
    /// Every token of `sub` issued before `before` (seconds); kept until `until`.
    Subject {
        sub: String,
        before: i64,
        until: i64,
    },
}

impl Revocation {
    /// When (seconds) the entry may be forgotten.
    pub fn expires_at(&self, jti_slack: i64) -> i64 {
        match self {
            Revocation::Jti { exp, .. } => exp.saturating_add(jti_slack),
            Revocation::Subject { until, .. } => *until,
        }
    }
}

/// Why a revocation was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("jti or subject must be 1 to {MAX_ID_BYTES} bytes")]
    BadId,
    #[error("time out of range")]
    BadTime,
    #[error("the revocation store is full ({0} entries)")]
    Full(usize),
    /// The revocation is in force in this process but may not survive a restart.
    #[error("revocation log: {0}")]
    Io(#[from] std::io::Error),
}

/// A live revocation and the Unix second after which it is forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEntry {
    pub revocation: Revocation,
    /// `exp` plus the slack for a `jti`, `until` for a subject.
    pub expires_at: i64,
}

/// What [`RevocationStore::merge`] did with the entries it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Entries that added or extended a revocation (logged).
    pub recorded: usize,
    /// Entries the store already covered.
    pub unchanged: usize,
    /// Entries already past their retention (the tokens they name are refused as expired).
    pub expired: usize,
    /// Entries with an empty or too long id, or a time out of range.
    pub invalid: usize,
    /// New entries refused because the store is full.
    pub refused_full: usize,
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct RevocationOptions {
    pub max_entries: usize,
    /// Seconds a subject entry is kept after its `before`.
    pub subject_retention_secs: i64,
    /// Seconds a jti entry is kept after its token's `exp` (≥ the largest leeway).
    pub jti_slack_secs: i64,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            subject_retention_secs: 30 * 86_400,
            jti_slack_secs: 300,
        }
    }
}

/// Counters exported by the metrics module.
#[derive(Debug, Default)]
pub struct RevocationStats {
    /// Revocations recorded (new or extended).
    pub recorded: AtomicU64,
    /// Tokens refused because revoked.
    pub refused: AtomicU64,
    /// Log compactions done.
    pub compactions: AtomicU64,
    /// Local revocations the feed ([`RevocationStore::subscribe`]) was too full to take.
    pub feed_overflow: AtomicU64,
}

#[derive(Default)]
struct Tables {
    /// jti → exp (seconds).
    jti: HashMap<String, i64>,
    /// subject → (before, until) in seconds.
    sub: HashMap<String, (i64, i64)>,
    /// XOR of [`entry_hash`] over every entry held: kept as entries change.
    digest: [u8; 32],
}

/// The SHA-256 of an entry's log line: what [`RevocationStore::digest`] XORs together.
fn entry_hash(r: &Revocation) -> [u8; 32] {
    let line = serde_json::to_vec(r).expect("a revocation serialises");
    let mut h = [0u8; 32];
    h.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &line).as_ref());
    h
}

fn xor_into(d: &mut [u8; 32], h: &[u8; 32]) {
    for (a, b) in d.iter_mut().zip(h) {
        *a ^= b;
    }
}

fn jti_entry(jti: &str, exp: i64) -> Revocation {
    Revocation::Jti {
        jti: jti.to_string(),
        exp,
    }
}

fn sub_entry(sub: &str, (before, until): (i64, i64)) -> Revocation {
    Revocation::Subject {
        sub: sub.to_string(),
        before,
        until,
    }
}

impl Tables {
    fn len(&self) -> usize {
        self.jti.len() + self.sub.len()
    }

    /// Applies `r`; true when it changed anything.
    fn apply(&mut self, r: &Revocation) -> bool {
        match r {
            Revocation::Jti { jti, exp } => match self.jti.get_mut(jti) {
                Some(e) if *e >= *exp => false,
                Some(e) => {
                    xor_into(&mut self.digest, &entry_hash(&jti_entry(jti, *e)));
                    *e = *exp;
                    xor_into(&mut self.digest, &entry_hash(r));
                    true
                }
                None => {
                    self.jti.insert(jti.clone(), *exp);
                    xor_into(&mut self.digest, &entry_hash(r));
                    true
                }
            },
            Revocation::Subject { sub, before, until } => match self.sub.get_mut(sub) {
                Some((b, u)) if *b >= *before && *u >= *until => false,
                Some((b, u)) => {
                    xor_into(&mut self.digest, &entry_hash(&sub_entry(sub, (*b, *u))));
                    *b = (*b).max(*before);
                    *u = (*u).max(*until);
                    let now = sub_entry(sub, (*b, *u));
                    xor_into(&mut self.digest, &entry_hash(&now));
                    true
                }
                None => {
                    self.sub.insert(sub.clone(), (*before, *until));
                    xor_into(&mut self.digest, &entry_hash(r));
                    true
                }
            },
        }
    }

    fn purge(&mut self, now_secs: i64, slack: i64) -> usize {
        let before = self.len();
        let digest = &mut self.digest;
        self.jti.retain(|jti, exp| {
            let live = exp.saturating_add(slack) > now_secs;
            if !live {
                xor_into(digest, &entry_hash(&jti_entry(jti, *exp)));
            }
            live
        });
        self.sub.retain(|sub, entry| {
            let live = entry.1 > now_secs;
            if !live {
                xor_into(digest, &entry_hash(&sub_entry(sub, *entry)));
            }
            live
        });
        before - self.len()
    }

    fn entries(&self) -> Vec<Revocation> {
        let mut v: Vec<Revocation> = self
            .jti
            .iter()
            .map(|(j, e)| Revocation::Jti {
                jti: j.clone(),
                exp: *e,
            })
            .chain(self.sub.iter().map(|(s, (b, u))| Revocation::Subject {
                sub: s.clone(),
                before: *b,
                until: *u,
            }))
            .collect();
        v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        v
    }
}

struct Log {
    path: PathBuf,
    file: File,
    /// Lines in the file, to decide when compaction pays.
    lines: usize,
}

/// The revocation store.
pub struct RevocationStore {
    clock: Arc<dyn Clock>,
    opts: RevocationOptions,
    tables: RwLock<Tables>,
    /// Entry count, read without the lock on the hot path.
    count: AtomicUsize,
    /// Serialises writers; `None` when memory-only.
    log: Mutex<Option<Log>>,
    /// Where revocations recorded here are announced ([`RevocationStore::subscribe`]).
    feed: Mutex<Option<mpsc::Sender<Revocation>>>,
    /// What the start found in the log; `None` when memory-only.
    recovery: Option<LogRecovery>,
    pub stats: RevocationStats,
}

impl std::fmt::Debug for RevocationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationStore")
            .field("entries", &self.len())
            .field("path", &self.log.lock().as_ref().map(|l| l.path.clone()))
            .finish()
    }
}

impl RevocationStore {
    /// Opens (or creates) the log at `path` with default options and replays it.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self, RevocationError> {
        Self::open_with(Some(path.as_ref()), clock, RevocationOptions::default())
    }

    /// A store that keeps revocations in memory only (lost on restart).
    pub fn in_memory(clock: Arc<dyn Clock>, opts: RevocationOptions) -> Self {
        Self {
            clock,
            opts,
            tables: RwLock::new(Tables::default()),
            count: AtomicUsize::new(0),
            log: Mutex::new(None),
            feed: Mutex::new(None),
            recovery: None,
            stats: RevocationStats::default(),
        }
    }

    /// Opens the log at `path` (memory-only when `None`), replays it, drops expired entries
    /// and compacts the file. A damaged log is recovered as far as it can be and reported
    /// (see the module doc); only an I/O error fails the open.
    pub fn open_with(
        path: Option<&Path>,
        clock: Arc<dyn Clock>,
        opts: RevocationOptions,
    ) -> Result<Self, RevocationError> {
        let mut store = Self::in_memory(clock, opts);
        let Some(path) = path else {
            return Ok(store);
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let (entries, recovery) = revocation_log::replay(&mut file)?;
        let damaged_copy = recovery
            .lost_anything()
            .then(|| keep_damaged_copy(path))
            .flatten();
        {
            let mut t = store.tables.write();
            for r in &entries {
                t.apply(r);
            }
            t.purge(store.now_secs(), store.opts.jti_slack_secs);
            store.count.store(t.len(), Ordering::Release);
        }
        let lines = recovery.recovered() + recovery.corrupt;
        // Damage, an incomplete tail or records without checksum: the log is rewritten, in
        // the current format and ending on a whole line.
        let rewrite = recovery.lost_anything() || recovery.unverified > 0 || recovery.unterminated;
        *store.log.lock() = Some(Log {
            path: path.to_path_buf(),
            file,
            lines,
        });
        if rewrite || lines > store.len() {
            store.compact()?;
        }
        report_recovery(path, &recovery, damaged_copy.as_deref(), store.len());
        store.recovery = Some(recovery);
        Ok(store)
    }

    /// What the start found in the log: records recovered (verified by their checksum, or of
    /// the earlier format without one) and lost (corrupt lines skipped, an incomplete tail cut
    /// off). `None` when memory-only.
    pub fn recovery(&self) -> Option<&LogRecovery> {
        self.recovery.as_ref()
    }

    fn now_secs(&self) -> i64 {
        (self.clock.now_millis() / 1000) as i64
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the store writes a log.
    pub fn is_durable(&self) -> bool {
        self.log.lock().is_some()
    }

    /// Revokes the token with this `jti`, which expires at `exp` (seconds). Returns whether
    /// anything changed (false: already revoked). Blocks on an fsync: call it from a
    /// blocking context (`spawn_blocking`) in async code.
    pub fn revoke_jti(&self, jti: &str, exp: i64) -> Result<bool, RevocationError> {
        check_id(jti)?;
        check_time(exp)?;
        self.apply(Revocation::Jti {
            jti: jti.to_string(),
            exp,
        })
    }

    /// Revokes every token of `sub` issued before `before` (seconds). Blocks on an fsync.
    pub fn revoke_subject(&self, sub: &str, before: i64) -> Result<bool, RevocationError> {
        check_id(sub)?;
        check_time(before)?;
        let until = before.saturating_add(self.opts.subject_retention_secs);
        self.apply(Revocation::Subject {
            sub: sub.to_string(),
            before,
            until,
        })
    }

    /// Records a revocation (from the admin API or a peer). Durable before it returns
    /// `Ok`. On `Err(Io)` the revocation is in force in memory but may not survive a
    /// restart: tollgate fails closed and lets the caller retry.
    pub fn apply(&self, r: Revocation) -> Result<bool, RevocationError> {
        check_revocation(&r)?;
        let now = self.now_secs();
        if r.expires_at(self.opts.jti_slack_secs) <= now {
            // Already past its retention: the token it names is refused as expired anyway.
            return Ok(false);
        }
        let log = self.log.lock();
        {
            let mut t = self.tables.write();
            let mut probe = Tables::default();
            let is_new_key = match &r {
                Revocation::Jti { jti, .. } => !t.jti.contains_key(jti),
                Revocation::Subject { sub, .. } => !t.sub.contains_key(sub),
            };
            if is_new_key && t.len() >= self.opts.max_entries {
                t.purge(now, self.opts.jti_slack_secs);
                if t.len() >= self.opts.max_entries {
                    self.count.store(t.len(), Ordering::Release);
                    return Err(RevocationError::Full(self.opts.max_entries));
                }
            }
            // Does it change anything? (Checked on a copy of the one entry.)
            match &r {
                Revocation::Jti { jti, .. } => {
                    if let Some(e) = t.jti.get(jti) {
                        probe.jti.insert(jti.clone(), *e);
                    }
                }
                Revocation::Subject { sub, .. } => {
                    if let Some(e) = t.sub.get(sub) {
                        probe.sub.insert(sub.clone(), *e);
                    }
                }
            }
            if !probe.apply(&r) {
                return Ok(false);
            }
            // In force at once, before the fsync: a failed write must not leave the token
            // usable.
            t.apply(&r);
            self.count.store(t.len(), Ordering::Release);
        }
        self.stats.recorded.fetch_add(1, Ordering::Relaxed);
        // Announced as soon as it is in force here, so peers log it while this node does.
        self.announce(&r);
        self.append(log, std::slice::from_ref(&r))?;
        Ok(true)
    }

    /// A feed of the revocations recorded on this node from now on, through
    /// [`RevocationStore::apply`] or the `revoke_*` calls (never those taken in by
    /// [`RevocationStore::merge`]: what a peer sent is not sent back). At most `capacity`
    /// wait in it; past that they are dropped and counted in
    /// [`RevocationStats::feed_overflow`] (the reader repairs by digest). One feed at a time:
    /// subscribing again replaces the previous one.
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<Revocation> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        *self.feed.lock() = Some(tx);
        rx
    }

    fn announce(&self, r: &Revocation) {
        if let Some(feed) = self.feed.lock().as_ref() {
            if let Err(mpsc::error::TrySendError::Full(_)) = feed.try_send(r.clone()) {
                self.stats.feed_overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes in another store's entries (a peer's [`RevocationStore::list_entries`]): the
    /// join described in the module doc. Entries that change nothing, are past their
    /// retention or are malformed are skipped; new ones past the cap are refused; all are
    /// counted in the summary. What changed is logged and fsynced (one write) before it
    /// returns `Ok`; on `Err(Io)` it is in force in memory but may not survive a restart.
    /// Blocks on an fsync.
    pub fn merge(
        &self,
        entries: impl IntoIterator<Item = Revocation>,
    ) -> Result<MergeSummary, RevocationError> {
        let now = self.now_secs();
        let slack = self.opts.jti_slack_secs;
        let mut summary = MergeSummary::default();
        let mut changed = Vec::new();
        let log = self.log.lock();
        {
            let mut t = self.tables.write();
            let mut purged = false;
            for r in entries {
                if check_revocation(&r).is_err() {
                    summary.invalid += 1;
                    continue;
                }
                if r.expires_at(slack) <= now {
                    summary.expired += 1;
                    continue;
                }
                let is_new_key = match &r {
                    Revocation::Jti { jti, .. } => !t.jti.contains_key(jti),
                    Revocation::Subject { sub, .. } => !t.sub.contains_key(sub),
                };
                if is_new_key && t.len() >= self.opts.max_entries {
                    if !purged {
                        t.purge(now, slack);
                        purged = true;
                    }
                    if t.len() >= self.opts.max_entries {
                        summary.refused_full += 1;
                        continue;
                    }
                }
                // In force at once, before the fsync, as in `apply`.
                if t.apply(&r) {
                    changed.push(r);
                } else {
                    summary.unchanged += 1;
                }
            }
            self.count.store(t.len(), Ordering::Release);
        }
        summary.recorded = changed.len();
        self.stats
            .recorded
            .fetch_add(changed.len() as u64, Ordering::Relaxed);
        self.append(log, &changed)?;
        Ok(summary)
    }

    /// Appends `entries` to the log (held locked by the caller) in one write and fsyncs it,
    /// then compacts when the log has grown well past the live entries.
    fn append(
        &self,
        mut log: parking_lot::MutexGuard<'_, Option<Log>>,
        entries: &[Revocation],
    ) -> Result<(), RevocationError> {
        let Some(l) = log.as_mut().filter(|_| !entries.is_empty()) else {
            return Ok(());
        };
        let mut buf = Vec::new();
        for r in entries {
            revocation_log::encode(r, &mut buf);
        }
        l.file.write_all(&buf)?;
        l.file.sync_data()?;
        l.lines += entries.len();
        let live = self.len();
        if l.lines > 1024 && l.lines > 2 * live {
            drop(log);
            self.compact()?;
        }
        Ok(())
    }

    /// True when the token these claims describe is revoked.
    pub fn is_revoked(&self, claims: &TokenClaims) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let t = self.tables.read();
        if let Some(jti) = &claims.jti {
            if t.jti.contains_key(jti) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        if let Some((before, _)) = t.sub.get(&claims.subject) {
            let revoked = match claims.iat {
                Some(iat) => iat < *before,
                // No iat: the token cannot show it postdates the revocation.
                None => true,
            };
            if revoked {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Every live revocation, in a stable order.
    pub fn list(&self) -> Vec<Revocation> {
        self.tables.read().entries()
    }

    /// Every revocation held, with when it is forgotten, in a stable order: what another
    /// store's [`RevocationStore::merge`] takes in. (Entries past their retention but not
    /// yet purged are left out.)
    pub fn list_entries(&self) -> Vec<RevocationEntry> {
        let now = self.now_secs();
        let slack = self.opts.jti_slack_secs;
        self.tables
            .read()
            .entries()
            .into_iter()
            .map(|revocation| RevocationEntry {
                expires_at: revocation.expires_at(slack),
                revocation,
            })
            .filter(|e| e.expires_at > now)
            .collect()
    }

    /// An order-independent digest of the entries held (XOR of each entry's SHA-256), for
    /// peers to tell whether their stores agree without exchanging them. Kept up to date as
    /// entries change: reading it costs a read lock. (Entries past their retention count
    /// until they are purged.)
    pub fn digest(&self) -> [u8; 32] {
        self.tables.read().digest
    }

    /// The first 8 bytes of [`RevocationStore::digest`]: what a node publishes to its peers.
    pub fn digest_u64(&self) -> u64 {
        let d = self.digest();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        u64::from_be_bytes(first)
    }

    /// Drops expired entries from memory (the log is compacted separately).
    pub fn purge_expired(&self) -> usize {
        let mut t = self.tables.write();
        let n = t.purge(self.now_secs(), self.opts.jti_slack_secs);
        self.count.store(t.len(), Ordering::Release);
        n
    }

    /// Periodic upkeep: drops expired entries, and compacts the log when it holds lines that
    /// are no longer live. Blocks on file I/O.
    pub fn maintain(&self) -> Result<(), RevocationError> {
        self.purge_expired();
        let stale = self
            .log
            .lock()
            .as_ref()
            .is_some_and(|l| l.lines > self.len());
        if stale {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the log with only the live entries (write to a temporary file, fsync,
    /// rename over the log, fsync the directory). A no-op when memory-only.
    pub fn compact(&self) -> Result<(), RevocationError> {
        let mut guard = self.log.lock();
        let Some(log) = guard.as_mut() else {
            return Ok(());
        };
        let entries = {
            let mut t = self.tables.write();
            t.purge(self.now_secs(), self.opts.jti_slack_secs);
            self.count.store(t.len(), Ordering::Release);
            t.entries()
        };
        let tmp = log.path.with_extension("compact.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut buf = Vec::new();
            for r in &entries {
                revocation_log::encode(r, &mut buf);
            }
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &log.path)?;
        if let Some(dir) = log.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        log.file = OpenOptions::new().append(true).open(&log.path)?;
        log.lines = entries.len();
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub(super) fn check_revocation(r: &Revocation) -> Result<(), RevocationError> {
    match r {
        Revocation::Jti { jti, exp } => {
            check_id(jti)?;
            check_time(*exp)
        }
        Revocation::Subject { sub, before, until } => {
            check_id(sub)?;
            check_time(*before)?;
            check_time(*until)
        }
    }
}

fn check_id(s: &str) -> Result<(), RevocationError> {
    if s.is_empty() || s.len() > MAX_ID_BYTES {
        return Err(RevocationError::BadId);
    }
    Ok(())
}

fn check_time(t: i64) -> Result<(), RevocationError> {
    // Within ±2^42 seconds (±139,000 years): keeps every sum below overflow.
    if t.unsigned_abs() > 1 << 42 {
        return Err(RevocationError::BadTime);
    }
    Ok(())
}

/// Copies the log as found to `<path>.damaged` (replacing an earlier copy) before a start
/// rewrites it, so that what was lost can be looked at; the copy's path, or `None` (logged)
/// when it could not be made.
fn keep_damaged_copy(path: &Path) -> Option<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    let copy = PathBuf::from(name);
    match std::fs::copy(path, &copy) {
        Ok(_) => Some(copy),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not keep a copy of the damaged revocation log");
            None
        }
    }
}

/// The one line a start logs about the revocation log: a warning when anything was lost.
fn report_recovery(path: &Path, r: &LogRecovery, damaged_copy: Option<&Path>, live: usize) {
    let path = path.display();
    if r.lost_anything() {
        tracing::warn!(
            %path,
            verified = r.verified,
            unverified = r.unverified,
            skipped = r.corrupt,
            tail_cut_bytes = r.torn_tail.map_or(0, |t| t.bytes),
            damage = %r.damage_summary(),
            copy = %damaged_copy.map_or("none".into(), |p| p.display().to_string()),
            live,
            "revocation log damaged: {} records recovered, {} lines skipped as corrupt{}; \
             revocations may be missing: revoke again what must stay revoked",
            r.recovered(),
            r.corrupt,
            if r.torn_tail.is_some() { ", an incomplete last line cut off" } else { "" },
        );
    } else {
        tracing::info!(
            %path,
            verified = r.verified,
            unverified = r.unverified,
            live,
            "revocation log read: {} records, none lost",
            r.recovered()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn claims(jti: Option<&str>, sub: &str, iat: Option<i64>) -> TokenClaims {
        TokenClaims {
            jti: jti.map(str::to_string),
            subject: sub.into(),
            iat,
            exp: 10_000,
        }
    }

    fn clock(secs: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock::new(secs * 1000))
    }

    #[test]
    fn jti_and_subject_rules() {
        let s = RevocationStore::in_memory(clock(1000), RevocationOptions::default());
        assert!(!s.is_revoked(&claims(Some("j1"), "u", Some(900))));
        assert!(s.revoke_jti("j1", 2000).unwrap());
        assert!(
            !s.revoke_jti("j1", 1500).unwrap(),
            "shorter exp changes nothing"
        );
        assert!(s.is_revoked(&claims(Some("j1"), "u", Some(900))));
        assert!(!s.is_revoked(&claims(Some("j2"), "u", Some(900))));
        assert!(s.revoke_subject("alice", 1000).unwrap());
        assert!(s.is_revoked(&claims(None, "alice", Some(999))));
        assert!(
            !s.is_revoked(&claims(None, "alice", Some(1000))),
            "issued at T: valid"
        );
        assert!(
            s.is_revoked(&claims(None, "alice", None)),
            "no iat: revoked"
        );
        assert!(!s.is_revoked(&claims(None, "bob", None)));
        // A later subject revocation moves T forward, never back.
        assert!(s.revoke_subject("alice", 1200).unwrap());
        assert!(!s.revoke_subject("alice", 1100).unwrap());
        assert!(s.is_revoked(&claims(None, "alice", Some(1100))));
        assert_eq!(s.len(), 2);
        assert_eq!(s.stats.recorded.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn bad_input_is_refused() {
        let s = RevocationStore::in_memory(clock(0), RevocationOptions::default());
        assert!(matches!(s.revoke_jti("", 5), Err(RevocationError::BadId)));
        assert!(matches!(
            s.revoke_jti(&"x".repeat(MAX_ID_BYTES + 1), 5),
            Err(RevocationError::BadId)
        ));
        assert!(matches!(
            s.revoke_jti("j", i64::MAX),
            Err(RevocationError::BadTime)
        ));
        assert!(matches!(
            s.revoke_subject("u", i64::MIN),
            Err(RevocationError::BadTime)
        ));
    }

    #[test]
    fn bounded_and_expired_entries_make_room() {
        let c = clock(1000);
        let opts = RevocationOptions {
            max_entries: 2,
            jti_slack_secs: 10,
            ..Default::default()
        };
        let s = RevocationStore::in_memory(c.clone(), opts);
        s.revoke_jti("a", 1005).unwrap();
        s.revoke_jti("b", 5000).unwrap();
        assert!(matches!(
            s.revoke_jti("c", 5000),
            Err(RevocationError::Full(2))
        ));
        // Already-revoked keys can still be extended when full.
        assert!(s.revoke_jti("b", 6000).unwrap());
        c.advance_millis(20_000); // "a" is now past exp + slack
        assert!(s.revoke_jti("c", 5000).unwrap());
        assert_eq!(s.len(), 2);
        // Revoking something already past its retention is a no-op.
        assert!(!s.revoke_jti("old", 100).unwrap());
    }

    #[test]
    fn log_survives_reopen_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rev.log");
        let c = clock(1000);
        {
            let s = RevocationStore::open(&path, c.clone()).unwrap();
            s.revoke_jti("j1", 5000).unwrap();
            s.revoke_subject("alice", 900).unwrap();
        }
        // Simulate a crash in the middle of a third write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"jti":"torn","ex"#).unwrap();
        drop(f);
        let s = RevocationStore::open(&path, c.clone()).unwrap();
        assert!(s.is_revoked(&claims(Some("j1"), "x", Some(1))));
        assert!(s.is_revoked(&claims(None, "alice", Some(899))));
        assert!(!s.is_revoked(&claims(Some("torn"), "x", Some(1))));
        assert_eq!(s.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n') && !text.contains("torn"));
    }

    #[test]
    fn compaction_drops_expired_entries_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rev.log");
        let c = clock(1000);
        let opts = RevocationOptions {
            jti_slack_secs: 0,
            ..Default::default()
        };
        let s = RevocationStore::open_with(Some(&path), c.clone(), opts.clone()).unwrap();
        for i in 0..10 {
            s.revoke_jti(&format!("short{i}"), 1100).unwrap();
        }
        s.revoke_jti("long", 9000).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 11);
        c.advance_millis(200_000);
        s.compact().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("long"));
        // Nothing stale: maintenance leaves the file alone.
        let compactions = s.stats.compactions.load(Ordering::Relaxed);
        s.maintain().unwrap();
        assert_eq!(s.stats.compactions.load(Ordering::Relaxed), compactions);
        // The store still appends to the new file.
        s.revoke_subject("bob", 1200).unwrap();
        drop(s);
        let s = RevocationStore::open_with(Some(&path), c.clone(), opts).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.list().len(), 2);
        // Once "bob" expires, maintenance drops it from memory and from the file.
        c.advance_millis(40 * 86_400_000);
        s.revoke_jti("later", 99_999_999).unwrap();
        s.maintain().unwrap();
        assert_eq!(s.list().len(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn digests_agree_exactly_when_contents_do() {
        let a = RevocationStore::in_memory(clock(0), RevocationOptions::default());
        let b = RevocationStore::in_memory(clock(0), RevocationOptions::default());
        assert_eq!(a.digest(), b.digest());
        a.revoke_jti("j", 50).unwrap();
        a.revoke_subject("u", 10).unwrap();
        assert_ne!(a.digest(), b.digest());
        b.revoke_subject("u", 10).unwrap();
        b.revoke_jti("j", 50).unwrap();
        assert_eq!(a.digest(), b.digest(), "order does not matter");
        b.revoke_jti("j", 60).unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    /// The digest as it was computed before it was kept up to date: a pass over the entries.
    fn digest_from_scratch(s: &RevocationStore) -> [u8; 32] {
        let mut d = [0u8; 32];
        for r in s.tables.read().entries() {
            xor_into(&mut d, &entry_hash(&r));
        }
        d
    }

    #[test]
    fn the_kept_digest_is_the_digest_of_the_entries() {
        let c = clock(1000);
        let opts = RevocationOptions {
            jti_slack_secs: 0,
            ..Default::default()
        };
        let s = RevocationStore::in_memory(c.clone(), opts);
        let empty = s.digest();
        s.revoke_jti("a", 1100).unwrap();
        s.revoke_jti("b", 5000).unwrap();
        s.revoke_jti("b", 6000).unwrap();
        s.revoke_subject("u", 900).unwrap();
        s.merge([
            Revocation::Subject {
                sub: "u".into(),
                before: 950,
                until: 10,
            },
            Revocation::Jti {
                jti: "c".into(),
                exp: 7000,
            },
        ])
        .unwrap();
        assert_eq!(s.digest(), digest_from_scratch(&s));
        c.advance_millis(200_000);
        assert_eq!(s.purge_expired(), 1);
        assert_eq!(s.digest(), digest_from_scratch(&s));
        s.compact().unwrap();
        assert_eq!(s.digest(), digest_from_scratch(&s));
        assert_ne!(s.digest(), empty);
        assert_eq!(
            s.digest_u64(),
            u64::from_be_bytes(s.digest()[..8].try_into().unwrap())
        );
    }

    #[test]
    fn the_feed_carries_local_revocations_only_and_counts_overflow() {
        let s = RevocationStore::in_memory(clock(0), RevocationOptions::default());
        s.revoke_jti("before-subscribing", 50).unwrap();
        let mut feed = s.subscribe(2);
        s.revoke_jti("j", 50).unwrap();
        assert!(
            !s.revoke_jti("j", 40).unwrap(),
            "nothing new: not announced"
        );
        s.merge([Revocation::Jti {
            jti: "from-a-peer".into(),
            exp: 50,
        }])
        .unwrap();
        s.revoke_subject("u", 10).unwrap();
        s.revoke_jti("overflows", 50).unwrap();
        assert_eq!(
            feed.try_recv().unwrap(),
            Revocation::Jti {
                jti: "j".into(),
                exp: 50
            }
        );
        assert!(matches!(
            feed.try_recv().unwrap(),
            Revocation::Subject { .. }
        ));
        assert!(feed.try_recv().is_err());
        assert_eq!(s.stats.feed_overflow.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn merge_joins_entries_and_logs_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rev.log");
        let c = clock(1000);
        let opts = RevocationOptions {
            max_entries: 3,
            jti_slack_secs: 10,
            ..Default::default()
        };
        let s = RevocationStore::open_with(Some(&path), c.clone(), opts.clone()).unwrap();
        s.revoke_jti("j", 2000).unwrap();
        s.revoke_subject("alice", 900).unwrap(); // until 900 + 30 days
        let sub = |before: i64, until: i64| Revocation::Subject {
            sub: "alice".into(),
            before,
            until,
        };
        let got = s
            .merge([
                Revocation::Jti {
                    jti: "j".into(),
                    exp: 1500,
                },
                Revocation::Jti {
                    jti: "k".into(),
                    exp: 3000,
                },
                // A later `before` with a shorter retention: `before` moves, `until` stays.
                sub(950, 2000),
                Revocation::Jti {
                    jti: "old".into(),
                    exp: 100,
                },
                Revocation::Jti {
                    jti: String::new(),
                    exp: 3000,
                },
                Revocation::Jti {
                    jti: "full".into(),
                    exp: 3000,
                },
            ])
            .unwrap();
        assert_eq!(
            got,
            MergeSummary {
                recorded: 2,
                unchanged: 1,
                expired: 1,
                invalid: 1,
                refused_full: 1,
            }
        );
        assert!(s.is_revoked(&claims(Some("k"), "x", Some(1))));
        assert!(s.is_revoked(&claims(None, "alice", Some(949))));
        let entries = s.list_entries();
        assert_eq!(entries.len(), 3);
        assert!(entries.contains(&RevocationEntry {
            revocation: Revocation::Jti {
                jti: "j".into(),
                exp: 2000
            },
            expires_at: 2010,
        }));
        assert!(entries.contains(&RevocationEntry {
            revocation: sub(950, 900 + 30 * 86_400),
            expires_at: 900 + 30 * 86_400,
        }));
        // At the cap, an entry that extends a held one still applies.
        let extend = s
            .merge([Revocation::Jti {
                jti: "k".into(),
                exp: 4000,
            }])
            .unwrap();
        assert_eq!(extend.recorded, 1);
        // Durable: a reopened store holds the merged state.
        drop(s);
        let s = RevocationStore::open_with(Some(&path), c, opts).unwrap();
        assert_eq!(
            s.list_entries().len(),
            3,
            "{:?}",
            std::fs::read_to_string(&path)
        );
        assert!(s.is_revoked(&claims(Some("k"), "x", Some(1))));
        assert!(s.is_revoked(&claims(None, "alice", Some(949))));
        // Merging a store's own entries into it changes nothing and writes nothing.
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        let own: Vec<Revocation> = s.list_entries().into_iter().map(|e| e.revocation).collect();
        let again = s.merge(own).unwrap();
        assert_eq!((again.recorded, again.unchanged), (0, 3));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            lines
        );
    }

    #[test]
    fn list_is_serialisable_for_the_admin_api() {
        let s = RevocationStore::in_memory(clock(0), RevocationOptions::default());
        s.revoke_jti("j", 50).unwrap();
        s.revoke_subject("u", 10).unwrap();
        let json = serde_json::to_string(&s.list()).unwrap();
        assert!(json.contains(r#"{"jti":"j","exp":50}"#), "{json}");
        assert!(json.contains(r#""sub":"u","before":10"#), "{json}");
        let back: Vec<Revocation> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s.list());
    }
}
