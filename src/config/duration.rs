//! Durations as operators write them in the configuration: `500ms`, `90s`, `15m`, `1h`, `1d`,
//! `1w`, and combinations from the largest unit to the smallest (`1h30m`, `1d12h`, `2m30s`).
//!
//! The configuration keeps durations as the text the operator wrote so that an error message
//! can quote it; [`parse_duration`] turns that text into a [`Duration`] and
//! [`format_duration`] writes a duration back in the same syntax (for summaries and logs).

use std::fmt;
use std::time::Duration;

/// The units, largest first. A combination must use them in this order, each at most once,
/// so `30m1h` (almost surely a typo) is refused rather than silently summed.
const UNITS: [(&str, u64); 6] = [
    ("w", 604_800_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Longest text accepted. The longest meaningful duration (`1d23h59m59s999ms`) is far
/// shorter; the bound only keeps error messages that quote the input small.
const MAX_LEN: usize = 64;

/// Why a text is not a duration. Its `Display` quotes the input and gives examples, ready to
/// follow a configuration path: `tiers.basic.window: "15x" is not a duration (use e.g. ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Empty text, an unknown unit, stray characters: nothing more specific to say.
    Malformed,
    /// A number without a unit (`90`): seconds or milliseconds? Refuse to guess.
    MissingUnit,
    /// Units out of order or repeated (`30m1h`, `1h1h`).
    UnitOrder,
    /// More than `u64::MAX` milliseconds.
    TooLarge,
}

impl DurationError {
    fn new(input: &str, reason: Reason) -> Self {
        let input = if input.len() > MAX_LEN {
            // Cut on a character boundary so the quoted text stays valid UTF-8.
            let mut end = MAX_LEN;
            while !input.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &input[..end])
        } else {
            input.to_string()
        };
        Self { input, reason }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match self.reason {
            Reason::Malformed => write!(f, "{input:?} is not a duration"),
            Reason::MissingUnit => {
                write!(f, "{input:?} is not a duration: the number needs a unit")
            }
            Reason::UnitOrder => write!(
                f,
                "{input:?} is not a duration: units go from largest to smallest, each once"
            ),
            Reason::TooLarge => return write!(f, "{input:?} is too long a duration"),
        }?;
        f.write_str(" (use e.g. 90s, 15m, 1h, 1d)")
    }
}

impl std::error::Error for DurationError {}

/// Parses `500ms`, `90s`, `15m`, `1h`, `1d`, `1w` or a combination such as `1h30m`.
///
/// Surrounding whitespace is ignored; there is no whitespace inside, no sign, no fraction
/// (`1.5h` is `1h30m`). `0s` parses to zero: whether zero is acceptable is for the caller
/// (a window, for instance, must be at least a second).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return Err(DurationError::new(text, Reason::Malformed));
    }
    let bytes = s.as_bytes();
    let mut total_ms: u64 = 0;
    // Index into UNITS of the smallest unit used so far: the next must be smaller.
    let mut next_unit = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(DurationError::new(text, Reason::Malformed));
        }
        let number: u64 = s[digits_start..i]
            .parse()
            .map_err(|_| DurationError::new(text, Reason::TooLarge))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            let reason = if i == bytes.len() {
                Reason::MissingUnit
            } else {
                Reason::Malformed
            };
            return Err(DurationError::new(text, reason));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(DurationError::new(text, Reason::Malformed));
        };
        if index < next_unit {
            return Err(DurationError::new(text, Reason::UnitOrder));
        }
        next_unit = index + 1;
        total_ms = number
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| DurationError::new(text, Reason::TooLarge))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration in the syntax [`parse_duration`] reads, largest units first:
/// `1h30m`, `5m`, `1d`, `1w`, `1500ms` → `1s500ms`. Sub-millisecond parts are dropped; zero is `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        let n = ms / unit_ms;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            ms -= n * unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn single_units() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("15m"), Duration::from_secs(900));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok("1w"), Duration::from_secs(604_800));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("  5m \n"), Duration::from_secs(300));
    }

    #[test]
    fn combinations_largest_first() {
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1d12h"), Duration::from_secs(129_600));
        assert_eq!(ok("2m30s"), Duration::from_secs(150));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
        assert_eq!(ok("1d1h1m1s1ms"), Duration::from_millis(90_061_001));
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "", "   ", "15x", "h", "1.5h", "-1s", "1 h", "1hh", "1H", "s1", "1h 30m",
        ] {
            let e = parse_duration(bad).expect_err(bad).to_string();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
            assert!(e.ends_with("(use e.g. 90s, 15m, 1h, 1d)"), "{bad}: {e}");
        }
        assert_eq!(
            parse_duration("15x").unwrap_err().to_string(),
            r#""15x" is not a duration (use e.g. 90s, 15m, 1h, 1d)"#
        );
        assert!(parse_duration("90")
            .unwrap_err()
            .to_string()
            .contains("needs a unit"));
        for out_of_order in ["30m1h", "1h1h", "1ms1s"] {
            assert!(parse_duration(out_of_order)
                .unwrap_err()
                .to_string()
                .contains("largest to smallest"));
        }
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let e = parse_duration("99999999999999999999d").unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let e = parse_duration("213503982335d").unwrap_err(); // > u64::MAX ms
        assert!(e.to_string().contains("too long"), "{e}");
        assert!(parse_duration("18446744073709551615ms").is_ok());
        assert!(parse_duration("18446744073709551615ms1ms").is_err());
    }

    #[test]
    fn long_input_is_quoted_short() {
        let long = "1".repeat(10_000);
        let e = parse_duration(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        let multibyte = "é".repeat(100);
        assert!(parse_duration(&multibyte).is_err());
    }

    #[test]
    fn format_round_trips() {
        for s in [
            "500ms", "90s", "15m", "1h", "1d", "1h30m", "1d12h", "1s500ms", "0s",
        ] {
            let d = ok(s);
            let written = format_duration(d);
            assert_eq!(ok(&written), d, "{s} → {written}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    }
}
