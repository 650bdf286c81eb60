//! The revocation log on disk: one record a line, each with a checksum, and what a start does
//! with a log that was damaged.
//!
//! # Record format
//!
//! ```text
//! v1 <checksum> <json>\n
//! v1 69c5a48bf3035c98 {"jti":"a1b2","exp":1767225600}
//! v1 7dba0190012865d8 {"sub":"alice","before":1767220000,"until":1769812000}
//! ```
//!
//! `v1` is the record version; `<checksum>` is the first 8 bytes of the SHA-256 of `<json>`
//! in 16 lowercase hex digits; `<json>` is the revocation as the admin API lists it. A
//! checksum per record (not per file) lets a start keep every intact record around a damaged
//! one, and is what tells a changed `exp` digit or `jti` letter — JSON that still parses —
//! from what was written. Logs of earlier tollgate versions hold bare JSON lines (`{…}`):
//! they are still read, as *unverified* records (nothing can show they were not changed),
//! and the start rewrites the log in the current format.
//!
//! # Recovery at start
//!
//! [`replay`] reads every line and sorts it:
//!
//! - a `v1` record whose checksum matches and whose revocation is well formed is *verified*;
//! - a bare JSON revocation (the earlier format) is *unverified* and honoured;
//! - anything else — a checksum that does not match, an unknown version, JSON that is not a
//!   revocation, a line longer than [`MAX_LINE_BYTES`], an empty line — is *corrupt* and
//!   skipped: a record that fails its checksum cannot be trusted in either direction (its
//!   `exp` may have moved earlier or later, its `jti` may name another token), so it is not
//!   honoured. Reading goes on at the next line;
//! - the bytes after the last newline are the *tail*: a complete record there (verified, or
//!   unverified JSON that parses) is kept and given its newline; anything else is *torn* (a
//!   write cut by a crash, never acknowledged — or a file cut short) and is cut off, so new
//!   appends start on a clean line.
//!
//! Nothing in a damaged log stops the start. What was recovered and what was lost is in
//! [`LogRecovery`]: the store logs it in one line (a warning when anything was skipped or cut
//! off, since revocations may be missing) and the metrics export its counts.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use super::revocation::{check_revocation, Revocation};

/// Longest log line read back (a record of two 256-byte ids is well under it).
pub const MAX_LINE_BYTES: usize = 4096;
/// How many damaged lines a [`LogRecovery`] names one by one (the count has them all).
pub const MAX_DAMAGED_LISTED: usize = 16;

/// The version tag that starts every record written now.
const TAG: &[u8] = b"v1 ";
/// Hex digits of the checksum.
const SUM_HEX: usize = 16;

/// Appends `r` to `out` as one record line.
pub fn encode(r: &Revocation, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(96);
    serde_json::to_writer(&mut body, r).expect("a revocation serialises");
    out.extend_from_slice(TAG);
    out.extend_from_slice(format!("{:016x}", checksum(&body)).as_bytes());
    out.push(b' ');
    out.extend_from_slice(&body);
    out.push(b'\n');
}

/// The first 8 bytes of the SHA-256 of a record's JSON.
fn checksum(body: &[u8]) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let mut first = [0u8; 8];
    first.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// What one line (without its newline) holds.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    /// A current record whose checksum matches.
    Verified(Revocation),
    /// A record of the earlier format: bare JSON, no checksum.
    Unverified(Revocation),
    /// Not to be trusted; why.
    Corrupt(&'static str),
}

fn decode(line: &[u8]) -> Record {
    if let Some(rest) = line.strip_prefix(TAG) {
        if rest.len() <= SUM_HEX || rest[SUM_HEX] != b' ' {
            return Record::Corrupt("malformed record");
        }
        let sum = std::str::from_utf8(&rest[..SUM_HEX])
            .ok()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        let body = &rest[SUM_HEX + 1..];
        if sum != Some(checksum(body)) {
            return Record::Corrupt("checksum mismatch");
        }
        match revocation(body) {
            Some(r) => Record::Verified(r),
            None => Record::Corrupt("not a revocation"),
        }
    } else if line.first() == Some(&b'{') {
        match revocation(line) {
            Some(r) => Record::Unverified(r),
            None => Record::Corrupt("not a revocation"),
        }
    } else {
        Record::Corrupt("unknown record format")
    }
}

fn revocation(json: &[u8]) -> Option<Revocation> {
    serde_json::from_slice(json)
        .ok()
        .filter(|r| check_revocation(r).is_ok())
}

/// A line [`replay`] skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedLine {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's start in the file.
    pub offset: u64,
    pub reason: &'static str,
}

/// Bytes after the last newline that were not a complete record, cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where they started: the file's length afterwards.
    pub offset: u64,
    pub bytes: u64,
}

/// What a start found in the revocation log: what was recovered and what was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// The file's length as found.
    pub file_bytes: u64,
    /// Records whose checksum matched (honoured).
    pub verified: usize,
    /// Records of the earlier format, without checksum (honoured).
    pub unverified: usize,
    /// Lines skipped as corrupt: their revocations, if any, are lost.
    pub corrupt: usize,
    /// The first [`MAX_DAMAGED_LISTED`] of them.
    pub damaged: Vec<DamagedLine>,
    /// An incomplete last line, cut off.
    pub torn_tail: Option<TornTail>,
    /// A complete record after the last newline, kept: it needs its newline written.
    pub(super) unterminated: bool,
}

impl LogRecovery {
    /// True when a line was skipped or a tail cut off: revocations may be missing.
    pub fn lost_anything(&self) -> bool {
        self.corrupt > 0 || self.torn_tail.is_some()
    }

    /// Records honoured.
    pub fn recovered(&self) -> usize {
        self.verified + self.unverified
    }

    /// Where the damage is, for the log line: `line 3 (byte 120, checksum mismatch), …`.
    pub fn damage_summary(&self) -> String {
        let mut s = String::new();
        for d in &self.damaged {
            if !s.is_empty() {
                s.push_str(", ");
            }
            let _ = write!(s, "line {} (byte {}, {})", d.line, d.offset, d.reason);
        }
        if self.corrupt > self.damaged.len() {
            let _ = write!(s, ", and {} more", self.corrupt - self.damaged.len());
        }
        if let Some(t) = self.torn_tail {
            if !s.is_empty() {
                s.push_str("; ");
            }
            let _ = write!(
                s,
                "incomplete last line at byte {} ({} bytes)",
                t.offset, t.bytes
            );
        }
        s
    }

    fn skip(&mut self, line: usize, offset: u64, reason: &'static str) {
        self.corrupt += 1;
        if self.damaged.len() < MAX_DAMAGED_LISTED {
            self.damaged.push(DamagedLine {
                line,
                offset,
                reason,
            });
        }
    }
}

/// Reads the whole log from its start: the revocations it holds, in order, and what was
/// recovered and lost. Only an I/O error fails it; the file is not changed.
pub fn replay(file: &mut File) -> std::io::Result<(Vec<Revocation>, LogRecovery)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&mut *file);
    let mut entries = Vec::new();
    let mut report = LogRecovery::default();
    let mut offset = 0u64;
    let mut line = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        let start = offset;
        offset += n as u64;
        line += 1;
        if buf.last() != Some(&b'\n') {
            if n <= MAX_LINE_BYTES {
                // End of file without a newline: the tail.
                match decode(&buf) {
                    Record::Verified(r) => {
                        report.verified += 1;
                        report.unterminated = true;
                        entries.push(r);
                    }
                    Record::Unverified(r) => {
                        report.unverified += 1;
                        report.unterminated = true;
                        entries.push(r);
                    }
                    Record::Corrupt(_) => {
                        report.torn_tail = Some(TornTail {
                            offset: start,
                            bytes: n as u64,
                        })
                    }
                }
                break;
            }
            // Too long: skip to the end of the line, which may be the end of the file.
            let mut rest = n as u64;
            let ended = loop {
                buf.clear();
                let m = (&mut reader)
                    .take(MAX_LINE_BYTES as u64)
                    .read_until(b'\n', &mut buf)?;
                rest += m as u64;
                if m == 0 || buf.last() == Some(&b'\n') {
                    break m != 0;
                }
            };
            offset = start + rest;
            if ended {
                report.skip(line, start, "line too long");
                continue;
            }
            report.torn_tail = Some(TornTail {
                offset: start,
                bytes: rest,
            });
            break;
        }
        match decode(&buf[..n - 1]) {
            Record::Verified(r) => {
                report.verified += 1;
                entries.push(r);
            }
            Record::Unverified(r) => {
                report.unverified += 1;
                entries.push(r);
            }
            Record::Corrupt(reason) => report.skip(line, start, reason),
        }
    }
    report.file_bytes = offset;
    Ok((entries, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jti(j: &str, exp: i64) -> Revocation {
        Revocation::Jti { jti: j.into(), exp }
    }

    fn line(r: &Revocation) -> Vec<u8> {
        let mut v = Vec::new();
        encode(r, &mut v);
        v
    }

    #[test]
    fn a_record_reads_back_verified() {
        let r = Revocation::Subject {
            sub: "alice".into(),
            before: 10,
            until: 20,
        };
        let l = line(&r);
        assert!(l.starts_with(b"v1 ") && l.ends_with(b"\n"));
        assert_eq!(decode(&l[..l.len() - 1]), Record::Verified(r));
    }

    #[test]
    fn the_documented_example_is_what_is_written() {
        assert_eq!(
            line(&jti("a1b2", 1_767_225_600)),
            b"v1 69c5a48bf3035c98 {\"jti\":\"a1b2\",\"exp\":1767225600}\n"
        );
    }

    #[test]
    fn any_changed_byte_is_corrupt() {
        let l = line(&jti("abc", 1_767_225_600));
        let body = &l[..l.len() - 1];
        for i in 0..body.len() {
            let mut changed = body.to_vec();
            // A digit stays a digit, a letter a letter: JSON that still parses.
            changed[i] = match changed[i] {
                b'0'..=b'8' | b'a'..=b'y' => changed[i] + 1,
                b'9' => b'0',
                b'z' => b'a',
                other => other ^ 0x20,
            };
            assert!(
                matches!(decode(&changed), Record::Corrupt(_)),
                "byte {i} changed, still accepted: {}",
                String::from_utf8_lossy(&changed)
            );
        }
    }

    #[test]
    fn the_earlier_format_reads_unverified() {
        assert_eq!(
            decode(br#"{"jti":"a","exp":5}"#),
            Record::Unverified(jti("a", 5))
        );
        assert!(matches!(
            decode(br#"{"jti":"","exp":5}"#),
            Record::Corrupt(_)
        ));
        assert!(matches!(decode(b""), Record::Corrupt(_)));
        assert!(matches!(decode(b"v2 whatever"), Record::Corrupt(_)));
    }

    // ---- the store's start on a damaged log ----

    use std::sync::Arc;

    use crate::auth::{RevocationOptions, RevocationStore, TokenClaims};
    use crate::clock::ManualClock;

    const EXP: i64 = 1_800_000_000;

    fn store(path: &std::path::Path) -> RevocationStore {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        RevocationStore::open_with(Some(path), clock, RevocationOptions::default()).unwrap()
    }

    fn revoked(s: &RevocationStore, jti: &str) -> bool {
        s.is_revoked(&TokenClaims {
            jti: Some(jti.into()),
            subject: "someone".into(),
            iat: Some(1),
            exp: EXP,
        })
    }

    /// A log of `n` jti records `j0`…, written by a store.
    fn written(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
        let path = dir.join("revocations.log");
        let s = store(&path);
        for i in 0..n {
            s.revoke_jti(&format!("j{i}"), EXP + i as i64).unwrap();
        }
        path
    }

    /// Changes the byte at `at` of the file to `to`.
    fn poke(path: &std::path::Path, at: usize, to: u8) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] = to;
        std::fs::write(path, bytes).unwrap();
    }

    fn recovery(s: &RevocationStore) -> LogRecovery {
        s.recovery().unwrap().clone()
    }

    #[test]
    fn a_changed_exp_digit_is_detected_reported_and_not_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        let second = text.find('\n').unwrap() + 1;
        // The last digit of j1's exp: still valid JSON, a different expiry.
        let digit = second + text[second..].find("}\n").unwrap() - 1;
        let was = text.as_bytes()[digit];
        poke(&path, digit, if was == b'9' { b'0' } else { was + 1 });

        let s = store(&path);
        let r = recovery(&s);
        assert_eq!((r.verified, r.unverified, r.corrupt), (2, 0, 1), "{r:?}");
        assert_eq!(
            r.damaged,
            vec![DamagedLine {
                line: 2,
                offset: second as u64,
                reason: "checksum mismatch"
            }]
        );
        assert!(r.lost_anything());
        assert_eq!(
            r.damage_summary(),
            format!("line 2 (byte {second}, checksum mismatch)")
        );
        assert!(revoked(&s, "j0") && revoked(&s, "j2"));
        assert!(
            !revoked(&s, "j1"),
            "a record that fails its checksum is not honoured"
        );
        // The log as found is kept aside; the log itself is rewritten clean.
        let copy = dir.path().join("revocations.log.damaged");
        assert_eq!(std::fs::read_to_string(copy).unwrap().len(), text.len());
        drop(s);
        let r = recovery(&store(&path));
        assert_eq!((r.verified, r.corrupt, r.torn_tail), (2, 0, None));
    }

    #[test]
    fn a_changed_jti_letter_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.log");
        store(&path).revoke_jti("victim", EXP).unwrap();
        let at = std::fs::read_to_string(&path)
            .unwrap()
            .find("victim")
            .unwrap()
            + 5;
        poke(&path, at, b'n'); // "victin": another token's id
        let s = store(&path);
        let r = recovery(&s);
        assert_eq!((r.verified, r.corrupt), (0, 1));
        assert_eq!(r.damaged[0].line, 1);
        assert!(!revoked(&s, "victin"), "the changed record names nobody");
        assert!(!revoked(&s, "victim"));
    }

    #[test]
    fn a_log_cut_in_half_keeps_its_whole_records_and_takes_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), 100);
        let text = std::fs::read_to_string(&path).unwrap();
        let half = text.len() / 2;
        std::fs::write(&path, &text.as_bytes()[..half]).unwrap();
        let whole = text[..half].matches('\n').count();
        let cut_at = text[..half].rfind('\n').unwrap() + 1;

        let s = store(&path);
        let r = recovery(&s);
        assert_eq!((r.verified, r.corrupt), (whole, 0));
        assert_eq!(
            r.torn_tail,
            Some(TornTail {
                offset: cut_at as u64,
                bytes: (half - cut_at) as u64
            })
        );
        assert!(r.lost_anything(), "a cut file is reported");
        assert!(r
            .damage_summary()
            .contains(&format!("incomplete last line at byte {cut_at}")));
        assert_eq!(s.len(), whole);
        assert!(revoked(&s, "j0") && revoked(&s, &format!("j{}", whole - 1)));
        assert!(!revoked(&s, &format!("j{whole}")));
        // Appends after the restart start on a clean line and read back.
        s.revoke_jti("after", EXP).unwrap();
        drop(s);
        let s = store(&path);
        let r = recovery(&s);
        assert_eq!((r.verified, r.corrupt, r.torn_tail), (whole + 1, 0, None));
        assert!(revoked(&s, "after"));
    }

    #[test]
    fn a_complete_record_without_its_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();
        let s = store(&path);
        let r = recovery(&s);
        assert_eq!((r.verified, r.torn_tail), (2, None));
        assert!(!r.lost_anything());
        assert!(revoked(&s, "j1"));
        s.revoke_jti("next", EXP).unwrap();
        drop(s);
        assert_eq!(recovery(&store(&path)).verified, 3);
    }

    #[test]
    fn a_garbage_file_starts_empty_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.log");
        // A line far too long, then bytes of every value with some newlines among them, and
        // no newline at the end.
        let mut garbage = vec![b'x'; 3 * MAX_LINE_BYTES];
        garbage.push(b'\n');
        garbage.extend((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        garbage.extend_from_slice(b"\n{\"jti\":");
        std::fs::write(&path, &garbage).unwrap();
        let s = store(&path);
        let r = recovery(&s);
        assert_eq!(r.recovered(), 0);
        assert!(r.corrupt > 1 && r.torn_tail.is_some(), "{r:?}");
        assert_eq!(r.damaged.len(), r.corrupt.min(MAX_DAMAGED_LISTED));
        assert_eq!(
            r.damaged[0],
            DamagedLine {
                line: 1,
                offset: 0,
                reason: "line too long"
            }
        );
        assert_eq!(r.damaged[1].offset, 3 * MAX_LINE_BYTES as u64 + 1);
        assert_eq!(r.file_bytes, garbage.len() as u64);
        assert!(s.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        s.revoke_jti("fresh", EXP).unwrap();
        drop(s);
        let s = store(&path);
        assert!(!recovery(&s).lost_anything());
        assert!(revoked(&s, "fresh"));
    }

    #[test]
    fn an_empty_file_is_a_clean_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.log");
        std::fs::write(&path, b"").unwrap();
        let s = store(&path);
        assert_eq!(recovery(&s), LogRecovery::default());
        assert!(!dir.path().join("revocations.log.damaged").exists());
    }

    #[test]
    fn a_log_of_the_earlier_format_loads_and_is_rewritten_with_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.log");
        std::fs::write(
            &path,
            format!(
                "{{\"jti\":\"old1\",\"exp\":{EXP}}}\n\
                 {{\"sub\":\"alice\",\"before\":1700000000,\"until\":{EXP}}}\n\
                 {{\"jti\":\"old2\",\"exp\":{EXP}}}\n"
            ),
        )
        .unwrap();
        let s = store(&path);
        let r = recovery(&s);
        assert_eq!((r.verified, r.unverified, r.corrupt), (0, 3, 0));
        assert!(!r.lost_anything(), "nothing is lost on an upgrade");
        assert!(revoked(&s, "old1") && revoked(&s, "old2"));
        assert!(s.is_revoked(&TokenClaims {
            jti: None,
            subject: "alice".into(),
            iat: Some(1_600_000_000),
            exp: EXP,
        }));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| l.starts_with("v1 ")), "{text}");
        drop(s);
        assert_eq!(recovery(&store(&path)).verified, 3);
    }

    /// Log output captured from a closure.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().clone()).unwrap();
        text
    }

    #[test]
    fn the_start_logs_one_line_a_warning_naming_the_damage_and_no_jti() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.log");
        let s = store(&path);
        s.revoke_jti("first-token-id", EXP).unwrap();
        s.revoke_jti("second-token-id", EXP).unwrap();
        drop(s);
        let text = std::fs::read_to_string(&path).unwrap();
        let second = text.find('\n').unwrap() + 1;
        poke(&path, second + text[second..].find("second").unwrap(), b'S');

        let out = logged(|| drop(store(&path)));
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("revocation")).collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line = lines[0];
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("revocations may be missing"), "{line}");
        assert!(
            line.contains(&format!("line 2 (byte {second}, checksum mismatch)")),
            "{line}"
        );
        assert!(
            line.contains("skipped=1") && line.contains("verified=1"),
            "{line}"
        );
        assert!(line.contains("revocations.log.damaged"), "{line}");
        assert!(!line.contains("token-id"), "no jti in the log: {line}");

        // Clean now (the start rewrote the log): one line, at info.
        let out = logged(|| drop(store(&path)));
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("revocation")).collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(
            lines[0].contains("INFO") && lines[0].contains("none lost"),
            "{out}"
        );
    }
}
