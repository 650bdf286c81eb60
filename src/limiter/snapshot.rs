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
//! tollgate-limiter-snapshot 1 <written unix ms> <hash-key check> <states> <sum>
//! w <state hash> <expiry unix ms> <current> <previous> <attempts> <phase current> <phase previous> <sum>
//! l <state hash> <expiry unix ms> <attempts window unix ms> <attempts> <ts unix ms>:<hits>;… <sum>
//! end <states> <sum>
//! ```
//!
//! - The header names the format and its version (a reader refuses any other version), when
//!   the file was written, a check value of the hash key the states were named under
//!   (SipHash-1-3 under that key of a fixed label: it names the key without revealing it;
//!   states named under another key could never be found again), and how many states follow,
//!   so that a reader can say how many were lost.
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

use siphasher::sip::SipHasher13;

use super::log::{self, LogState};
use super::window::WindowState;
use super::Limiter;

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

impl Limiter {
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
        line(
            out,
            &format!(
                "{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION} {now_ms} {:016x} {n}",
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
                Ok(n) => n,
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
                    problem(&mut report, format!("line {}: cannot read: {e}", line_no + 1));
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
                    problem(&mut report, format!("line {line_no}: end line disagrees with the header"));
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

    /// Checks the header; returns the number of states it announces.
    fn read_header(&self, body: &str) -> Result<Option<u64>, String> {
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
        let (Some(key), Some(states)) = (key, states) else {
            return Err("malformed header".into());
        };
        if key != self.hash_key_check() {
            return Err(format!(
                "its {states} states were named under another hash key (set limiter.hash_key_env \
                 to the same secret across restarts)"
            ));
        }
        Ok(Some(states))
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
    let hash = u64::from_str_radix(f.next()?, 16).ok().filter(|&h| h != 0)?;
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
