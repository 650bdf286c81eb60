//! Snapshots of the limiter's own counts: written so that a restart does not hand every key a
//! fresh quota, read back at start while their windows last.
//!
//! This file only turns states into bytes and bytes back into states, through any
//! [`std::io::Write`] and [`std::io::BufRead`]: where the bytes go (a temporary file, fsync,
//! rename, fsync of the directory) is the server's business (`server/snapshot.rs`).
//!
//! # Format (version 1)
//!
//! Text, one record a line, every line ending in a checksum of its own: the SipHash-1-3 (all-zero
//! key) of the line's bytes before the last space, in 16 hex digits. A changed byte spoils its
//! line only, a cut spoils the end, and what remains is still read.
//!
//! ```text
//! tollgate-limiter-snapshot 1 <written unix ms> <hash-key check> <states> <origin> <sum>
//! w <state hash> <expiry unix ms> <current> <previous> <attempts> <phase current> <phase previous> <sum>
//! l <state hash> <expiry unix ms> <attempts window unix ms> <attempts> <ts unix ms>:<hits>;… <sum>
//! end <states> <sum>
//! ```
//!
//! - The header names the format and its version (a reader refuses any other version), when
//!   the file was written, a check value of the hash key the states were named under
//!   (SipHash-1-3 under that key of a fixed label: it names the key without revealing it;
//!   states named under another key could never be found again), and how many states follow,
//!   so that a reader can say how many were lost, and its origin: `-`, or `<node>/<generation>`
//!   (16 hex digits, decimal) when the writer was a cluster node
//!   ([`Limiter::set_snapshot_origin`]), so that its next life can tell its peers' copies of
//!   these counts from new ones.
//! - `w` is a sliding-window counter, `l` a sliding log (`-` for no records); hashes are 16 hex
//!   digits, everything else decimal. Times are wall-clock Unix milliseconds, as the limiter
//!   keeps them: its clock ([`crate::clock::Clock`]) reads wall-clock time, and windows are
//!   aligned to the Unix epoch, so a state means the same in the next process (and on any
//!   node) as in the one that wrote it.
//! - A state's identity hash covers its limit's fingerprint (name, quota, window,
//!   algorithm): a state of a limit whose definition changed before the restart is never
//!   named by a request again, exactly as after a reload, and goes at its expiry.
//!
//! A file holds at most the states the limiter held, so its size is bounded by
//! `limiter.max_states` (about 60 bytes a counter, up to about 25 bytes a log record).

use std::hash::Hasher;
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashMap;
use parking_lot::Mutex;

use siphasher::sip::SipHasher13;

use super::log::{self, LogState};
use super::window::WindowState;
use super::{CellId, Limiter};

/// The first word of a snapshot.
pub const SNAPSHOT_MAGIC: &str = "tollgate-limiter-snapshot";
/// The version of the format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Longest line a reader accepts: a log of [`super::SLIDING_LOG_MAX`] records fits many
/// times over; anything longer is not a snapshot line.
const MAX_LINE: u64 = 64 * 1024;

/// What reading a snapshot gave: how many states came back and how many did not, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// States restored into the limiter.
    pub restored: u64,
    /// States whose windows had all ended: skipped, they would count nothing.
    pub ended: u64,
    /// States the file announced (or held) that could not be restored: a corrupt line, a cut
    /// file, another hash key, the state cap reached.
    pub lost: u64,
    /// The first problem met, for the log (`None` for a clean file).
    pub problem: Option<String>,
    /// The cluster node and generation that wrote the snapshot, if one did.
    pub origin: Option<(u64, u64)>,
}

enum Record {
    Window(WindowState),
    Log(LogState),
}

impl Record {
    fn expiry(&self) -> u32 {
        match self {
            Record::Window(s) => s.expiry,
            Record::Log(s) => s.expiry,
        }
    }

    fn hash(&self) -> u64 {
        match self {
            Record::Window(s) => s.hash,
            Record::Log(s) => s.hash,
        }
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_key(&[0; 16]);
    h.write(bytes);
    h.finish()
}

/// Writes `body` and its checksum as one line.
fn line(out: &mut dyn Write, body: &str) -> io::Result<()> {
    writeln!(out, "{body} {:016x}", checksum(body.as_bytes()))
}

/// Counts restored from a snapshot that a cluster node holds back from what it publishes
/// ([`Limiter::hold_back_restored_counts`]): its peers still hold them in the slot of the
/// generation that wrote the snapshot, so publishing them again in the new generation's slot
/// would count them twice across the cluster. Cells export this node's own count less what
/// was restored into that window; entries go when their windows end.
#[derive(Debug, Default)]
pub(super) struct HeldBack {
    /// Whether restored counts are held back at all (and any are held).
    holding: AtomicBool,
    enabled: AtomicBool,
    states: Mutex<HashMap<u64, Held>>,
    /// This node and generation, written in the snapshot's header.
    origin: Mutex<Option<(u64, u64)>>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    expiry: u32,
    current: u32,
    previous: u32,
    /// For a sliding log: its restored records are those made up to this time.
    log_until_ms: Option<u64>,
}

impl HeldBack {
    pub(super) fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }

    fn hold(&self, record: &Record) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let held = match record {
            Record::Window(s) => Held {
                expiry: s.expiry,
                current: s.current,
                previous: s.previous,
                log_until_ms: None,
            },
            Record::Log(s) => Held {
                expiry: s.expiry,
                current: 0,
                previous: 0,
                log_until_ms: s.records.back().map(|&r| log::record_ts(r)),
            },
        };
        self.states.lock().insert(record.hash(), held);
        self.holding.store(true, Ordering::Relaxed);
    }

    /// What a sliding-window counter restored into `cell`'s window.
    pub(super) fn window(&self, cell: &CellId) -> u64 {
        if !self.is_holding() {
            return 0;
        }
        let Some(h) = self.states.lock().get(&cell.state_hash).copied() else {
            return 0;
        };
        let w = cell.window_secs;
        let start = u64::from(h.expiry).saturating_sub(2 * w);
        if h.log_until_ms.is_some() {
            0
        } else if cell.window_start_secs == start {
            u64::from(h.current)
        } else if cell.window_start_secs.checked_add(w) == Some(start) {
            u64::from(h.previous)
        } else {
            0
        }
    }

    /// What a sliding log restored into `cell`'s window: its records made up to the restore.
    pub(super) fn log(&self, cell: &CellId, log: &LogState) -> u64 {
        if !self.is_holding() {
            return 0;
        }
        let Some(until) = self
            .states
            .lock()
            .get(&cell.state_hash)
            .and_then(|h| h.log_until_ms)
        else {
            return 0;
        };
        let from = cell.window_start_secs * 1000;
        let to = (cell.window_start_secs + cell.window_secs) * 1000;
        log.hits_between(from, to.min(until.saturating_add(1)))
    }

    /// Forgets what was held back for windows that have ended.
    pub(super) fn drop_passed(&self, now_secs: u64) {
        if !self.is_holding() {
            return;
        }
        let mut states = self.states.lock();
        states.retain(|_, h| u64::from(h.expiry) > now_secs);
        if states.is_empty() {
            self.holding.store(false, Ordering::Relaxed);
            states.shrink_to_fit();
        }
    }
}

impl Limiter {
    /// Makes the next [`Limiter::restore_snapshot`] hold the restored counts back from what
    /// this node publishes to its peers (cells and changed cells export its own count less
    /// what was restored), for a cluster node whose peers still hold its previous life's
    /// counts. Decisions here count them all the same.
    pub fn hold_back_restored_counts(&self) {
        self.held_back.enabled.store(true, Ordering::Relaxed);
    }

    /// Names the cluster node and generation this limiter's snapshots come from (written in
    /// their header, returned in [`RestoreReport::origin`] by the next life).
    pub fn set_snapshot_origin(&self, node: u64, generation: u64) {
        *self.held_back.origin.lock() = Some((node, generation));
    }

    /// A value that names the hash key without revealing it: SipHash-1-3 under the key of a
    /// fixed label.
    fn hash_key_check(&self) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.options.hash_key);
        h.write(b"tollgate limiter snapshot key check v1");
        h.finish()
    }

    /// Writes this node's own states whose windows have not all ended (counts merged from
    /// other nodes stay theirs). Returns how many states were written. The states are copied
    /// one shard at a time under its lock, then written with no lock held.
    pub fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<u64> {
        let now_ms = self.clock.now_millis();
        let now_secs = now_ms / 1000;
        let mut records: Vec<Record> = Vec::with_capacity(self.tracked_states());
        for slot in self.shards.iter() {
            let shard = slot.0.lock();
            records.extend(
                shard
                    .windows
                    .iter()
                    .filter(|s| u64::from(s.expiry) > now_secs)
                    .map(Record::Window),
            );
            records.extend(
                shard
                    .logs
                    .iter()
                    .filter(|s| u64::from(s.expiry) > now_secs)
                    .map(|s| Record::Log(s.clone())),
            );
        }
        let n = records.len() as u64;
        let origin = match *self.held_back.origin.lock() {
            Some((node, generation)) => format!("{node:016x}/{generation}"),
            None => "-".into(),
        };
        line(
            out,
            &format!(
                "{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION} {now_ms} {:016x} {n} {origin}",
                self.hash_key_check()
            ),
        )?;
        let mut body = String::with_capacity(128);
        for r in &records {
            body.clear();
            encode(r, &mut body);
            line(out, &body)?;
        }
        line(out, &format!("end {n}"))?;
        Ok(n)
    }

    /// Restores the states of a snapshot whose windows have not ended, at most up to the
    /// state cap. Meant for a limiter that has not served yet: a state already tracked is
    /// kept and the snapshot's copy skipped. Never fails: whatever cannot be read is counted
    /// as lost and described in [`RestoreReport::problem`].
    pub fn restore_snapshot(&self, input: &mut dyn BufRead) -> RestoreReport {
        let now_secs = self.clock.now_millis() / 1000;
        let mut report = RestoreReport::default();
        let problem = |report: &mut RestoreReport, what: String| {
            report.problem.get_or_insert(what);
        };
        let mut buf = Vec::with_capacity(256);
        let mut line_no = 0u64;
        let mut next = |buf: &mut Vec<u8>, line_no: &mut u64| -> io::Result<Option<bool>> {
            buf.clear();
            let n = (&mut *input).take(MAX_LINE + 1).read_until(b'\n', buf)?;
            if n == 0 {
                return Ok(None);
            }
            *line_no += 1;
            // A line without its end is a cut (or an overlong) line: not whole.
            let whole = buf.last() == Some(&b'\n');
            if whole {
                buf.pop();
            } else if n as u64 > MAX_LINE {
                // Skip the rest of the overlong line.
                loop {
                    let mut rest = Vec::new();
                    let m = (&mut *input).take(MAX_LINE).read_until(b'\n', &mut rest)?;
                    if m == 0 || rest.last() == Some(&b'\n') {
                        break;
                    }
                }
            }
            Ok(Some(whole))
        };

        // The header.
        let announced = match next(&mut buf, &mut line_no) {
            Ok(Some(true)) => match verified(&buf).and_then(|b| self.read_header(b)) {
                Ok((n, origin)) => {
                    report.origin = origin;
                    // Counts no cluster node wrote are held by no peer: nothing to hold back.
                    if origin.is_none() {
                        self.held_back.enabled.store(false, Ordering::Relaxed);
                    }
                    Some(n)
                }
                Err(e) => {
                    problem(&mut report, format!("line 1: {e}"));
                    None
                }
            },
            Ok(Some(false)) => {
                problem(&mut report, "line 1: cut short".into());
                None
            }
            Ok(None) => {
                problem(&mut report, "the file is empty".into());
                None
            }
            Err(e) => {
                problem(&mut report, format!("cannot read: {e}"));
                None
            }
        };
        let Some(announced) = announced else {
            // Without a header naming this build's format and this hash key, no line can be
            // trusted to mean what it says; count what looks like records as lost.
            let mut lines = 0u64;
            while let Ok(Some(_)) = next(&mut buf, &mut line_no) {
                lines += 1;
            }
            report.lost = lines.saturating_sub(1);
            return report;
        };

        let mut ended_well = false;
        let mut corrupt = 0u64;
        loop {
            let whole = match next(&mut buf, &mut line_no) {
                Ok(Some(whole)) => whole,
                Ok(None) => break,
                Err(e) => {
                    problem(
                        &mut report,
                        format!("line {}: cannot read: {e}", line_no + 1),
                    );
                    break;
                }
            };
            if !whole {
                problem(&mut report, format!("line {line_no}: cut short"));
                corrupt += 1;
                continue;
            }
            let body = match verified(&buf) {
                Ok(b) => b,
                Err(e) => {
                    problem(&mut report, format!("line {line_no}: {e}"));
                    corrupt += 1;
                    continue;
                }
            };
            if let Some(count) = body.strip_prefix("end ") {
                ended_well = count.parse::<u64>() == Ok(announced);
                if !ended_well {
                    problem(
                        &mut report,
                        format!("line {line_no}: end line disagrees with the header"),
                    );
                }
                break;
            }
            let Some(record) = decode(body) else {
                problem(&mut report, format!("line {line_no}: not a state record"));
                corrupt += 1;
                continue;
            };
            if u64::from(record.expiry()) <= now_secs {
                report.ended += 1;
            } else if self.insert_restored(record) {
                report.restored += 1;
            } else {
                problem(&mut report, "the state cap was reached".into());
                corrupt += 1;
            }
        }
        if !ended_well && report.problem.is_none() {
            report.problem = Some("the file ends before its end line (cut short)".into());
        }
        let accounted = report.restored + report.ended;
        report.lost = announced.saturating_sub(accounted).max(corrupt);
        report
    }

    /// Checks the header; returns the number of states it announces and its origin.
    fn read_header(&self, body: &str) -> Result<(u64, Option<(u64, u64)>), String> {
        let mut f = body.split(' ');
        if f.next() != Some(SNAPSHOT_MAGIC) {
            return Err("not a tollgate limiter snapshot".into());
        }
        let version = f.next().and_then(|v| v.parse::<u32>().ok());
        if version != Some(SNAPSHOT_VERSION) {
            return Err(format!(
                "snapshot format version {} is not {SNAPSHOT_VERSION}, the one this build reads",
                version.map_or("?".into(), |v| v.to_string())
            ));
        }
        let _written_ms = f.next().and_then(|v| v.parse::<u64>().ok());
        let key = f.next().and_then(|v| u64::from_str_radix(v, 16).ok());
        let states = f.next().and_then(|v| v.parse::<u64>().ok());
        let origin = match f.next() {
            Some("-") => Some(None),
            Some(o) => o.split_once('/').and_then(|(n, g)| {
                Some(Some((
                    u64::from_str_radix(n, 16).ok()?,
                    g.parse::<u64>().ok()?,
                )))
            }),
            None => None,
        };
        let (Some(key), Some(states), Some(origin)) = (key, states, origin) else {
            return Err("malformed header".into());
        };
        if key != self.hash_key_check() {
            return Err(format!(
                "its {states} states were named under another hash key (set limiter.hash_key_env \
                 to the same secret across restarts)"
            ));
        }
        Ok((states, origin))
    }

    /// Inserts one restored state, if there is room and it is not tracked already.
    fn insert_restored(&self, record: Record) -> bool {
        let hash = record.hash();
        let index = self.shard_of(hash);
        let mut shard = self.shards[index].0.lock();
        let exists = match &record {
            Record::Window(_) => shard.windows.find(hash).is_some(),
            Record::Log(_) => shard.logs.find(hash, |e| e.hash == hash).is_some(),
        };
        if exists {
            return true;
        }
        if !self.reserve_slot() {
            return false;
        }
        self.held_back.hold(&record);
        match record {
            Record::Window(s) => {
                shard.windows.insert_new(&s);
                self.publish_hint(index, &shard);
            }
            Record::Log(s) => {
                shard.logs.insert_unique(hash, s, |e| e.hash);
            }
        }
        true
    }
}

/// The line's body when its checksum is right.
fn verified(line: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not text".to_string())?;
    let (body, sum) = text
        .rsplit_once(' ')
        .ok_or_else(|| "no checksum".to_string())?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| "no checksum".to_string())?;
    if checksum(body.as_bytes()) != sum {
        return Err("checksum mismatch".into());
    }
    Ok(body)
}

fn encode(r: &Record, out: &mut String) {
    use std::fmt::Write as _;
    match r {
        Record::Window(s) => {
            let _ = write!(
                out,
                "w {:016x} {} {} {} {} {} {}",
                s.hash,
                u64::from(s.expiry) * 1000,
                s.current,
                s.previous,
                s.attempts,
                s.last_current,
                s.last_previous
            );
        }
        Record::Log(s) => {
            let _ = write!(
                out,
                "l {:016x} {} {} {} ",
                s.hash,
                u64::from(s.expiry) * 1000,
                u64::from(s.attempts_window) * 1000,
                s.attempts
            );
            if s.records.is_empty() {
                out.push('-');
            }
            for (i, &r) in s.records.iter().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                let _ = write!(out, "{}:{}", log::record_ts(r), log::record_hits(r));
            }
        }
    }
}

/// Unix milliseconds back to the whole seconds a state keeps (exact for what `encode` wrote).
fn secs_u32(ms: &str) -> Option<u32> {
    let ms = ms.parse::<u64>().ok()?;
    u32::try_from(ms / 1000).ok()
}

fn decode(body: &str) -> Option<Record> {
    let mut f = body.split(' ');
    let kind = f.next()?;
    let hash = u64::from_str_radix(f.next()?, 16)
        .ok()
        .filter(|&h| h != 0)?;
    let expiry = secs_u32(f.next()?)?;
    let record = match kind {
        "w" => {
            let mut n = || f.next().and_then(|v| v.parse::<u32>().ok());
            Record::Window(WindowState {
                hash,
                expiry,
                current: n()?,
                previous: n()?,
                attempts: n()?,
                last_current: n()?,
                last_previous: n()?,
            })
        }
        "l" => {
            let attempts_window = secs_u32(f.next()?)?;
            let attempts = f.next()?.parse::<u32>().ok()?;
            let mut state = LogState::new(hash);
            state.expiry = expiry;
            state.attempts_window = attempts_window;
            state.attempts = attempts;
            let list = f.next()?;
            if list != "-" {
                let mut newest = 0;
                for r in list.split(';') {
                    if state.records.len() as u64 >= super::SLIDING_LOG_MAX {
                        return None;
                    }
                    let (ts, hits) = r.split_once(':')?;
                    let (ts, hits) = (ts.parse::<u64>().ok()?, hits.parse::<u64>().ok()?);
                    // Records never go back in time (the log's invariant).
                    if ts < newest {
                        return None;
                    }
                    newest = ts;
                    state.records.push_back(log::record(ts, hits)?);
                }
            }
            Record::Log(state)
        }
        _ => return None,
    };
    f.next().is_none().then_some(record)
}

#[cfg(test)]
mod tests;
