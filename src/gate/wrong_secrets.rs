//! Wrong admin secrets from one address are slowed down: after [`MAX_WRONG`] wrong secrets
//! from one IP address within [`WINDOW_MS`], every further attempt from it — right or wrong —
//! is refused until the window that began with its first wrong secret has passed. An online
//! guesser then gets [`MAX_WRONG`] tries a minute instead of thousands a second, while an
//! operator who mistyped is back within a minute. Unix-socket callers have no address and are
//! not counted: the socket's file mode is their access control.
//!
//! Bounded: at most [`MAX_ADDRESSES`] addresses are tracked; at the cap, addresses whose
//! window has passed are forgotten, then the whole table (which can only let a guesser start
//! over sooner, never lock anyone out longer).

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// Wrong secrets one address may present within [`WINDOW_MS`] before it is refused.
pub const MAX_WRONG: u32 = 10;
/// The window wrong secrets are counted in, and the longest an address is refused.
pub const WINDOW_MS: u64 = 60_000;
/// Most addresses tracked at once.
pub const MAX_ADDRESSES: usize = 4096;

/// Wrong secrets per address: how many, since when (Unix ms).
#[derive(Debug, Default)]
pub struct WrongSecrets(Mutex<HashMap<IpAddr, (u32, u64)>>);

impl WrongSecrets {
    /// `Some(seconds)` while `ip` is refused (the seconds until it is not, at least 1).
    pub fn refused(&self, ip: IpAddr, now_ms: u64) -> Option<u64> {
        let t = self.0.lock();
        let &(wrong, since) = t.get(&ip)?;
        let until = since.saturating_add(WINDOW_MS);
        (wrong >= MAX_WRONG && now_ms < until).then(|| (until - now_ms).div_ceil(1000).max(1))
    }

    /// Records a wrong secret from `ip`.
    pub fn wrong(&self, ip: IpAddr, now_ms: u64) {
        let mut t = self.0.lock();
        if t.len() >= MAX_ADDRESSES && !t.contains_key(&ip) {
            t.retain(|_, (_, since)| since.saturating_add(WINDOW_MS) > now_ms);
            if t.len() >= MAX_ADDRESSES {
                t.clear();
            }
        }
        let entry = t.entry(ip).or_insert((0, now_ms));
        if entry.1.saturating_add(WINDOW_MS) <= now_ms {
            *entry = (0, now_ms);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Records a right secret from `ip`: its count starts over.
    pub fn right(&self, ip: IpAddr) {
        self.0.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_893_456_000_000;

    #[test]
    fn ten_wrong_secrets_lock_an_address_out_for_the_rest_of_the_minute() {
        let w = WrongSecrets::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for i in 0..MAX_WRONG {
            assert_eq!(w.refused(a, T0 + u64::from(i)), None);
            w.wrong(a, T0 + u64::from(i));
        }
        assert_eq!(w.refused(a, T0 + 10), Some(60));
        assert_eq!(w.refused(a, T0 + 59_500), Some(1));
        assert_eq!(
            w.refused(b, T0 + 10),
            None,
            "another address is not touched"
        );
        assert_eq!(w.refused(a, T0 + 60_000), None, "the window has passed");
        // A new window counts afresh.
        w.wrong(a, T0 + 60_000);
        assert_eq!(w.refused(a, T0 + 60_001), None);
        // A right secret starts the count over.
        for _ in 0..MAX_WRONG - 1 {
            w.wrong(b, T0);
        }
        w.right(b);
        w.wrong(b, T0);
        assert_eq!(w.refused(b, T0), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let w = WrongSecrets::default();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            w.wrong(IpAddr::from(i.to_be_bytes()), T0);
        }
        assert!(w.0.lock().len() <= MAX_ADDRESSES);
    }
}
