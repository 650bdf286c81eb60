//! Node values, carried as foca custom broadcasts: each node's [`NodeValues`] under a
//! version counter, last writer wins per (node name, generation, version).
//!
//! A record is small (about 50 bytes with a short name) and rides on the datagrams the
//! protocol sends anyway. foca hands every record it receives to [`ValuesHandler`], which
//! keeps it when it is newer than what it holds for that name — a later generation, or the
//! same generation and a higher version — and then tells foca to pass it on; an older or
//! equal record is dropped and not passed on, so a record spreads like an infection and dies
//! out once everyone has it. A record may also say that its node *left* (a graceful
//! shutdown): peers then drop the node from their lists instead of reporting it down.
//!
//! Layout: kind `1` (1), name (length (1) and bytes), generation (8), version (8),
//! flags (1: bit 0 ready, bit 1 left, the rest zero), plane address (as in
//! [`super::codec`]), config hash (8), revocation digest (8).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BufMut;
use foca::{BroadcastHandler, Invalidates};
use parking_lot::Mutex;

use super::codec::{
    addr_len, name_len, put_addr, put_name, read_addr, read_name, read_u64, read_u8, CodecError,
};
use super::identity::SwimIdentity;
use super::MAX_MEMBERS;
use crate::cluster::membership::{Generation, NodeValues};

/// The first byte of a node-values record (room for other kinds of broadcast later).
const KIND_VALUES: u8 = 1;
const READY: u8 = 1;
const LEFT: u8 = 2;

/// One node's values at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub name: Arc<str>,
    pub version: u64,
    /// The node left the cluster on purpose.
    pub left: bool,
    pub values: NodeValues,
}

impl Record {
    /// Last writer wins: generation first (a restart starts its versions again), then version.
    fn order(&self) -> (Generation, u64) {
        (self.values.generation, self.version)
    }

    /// The record's bytes; `None` when the name is too long to carry.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let len = 1 + name_len(&self.name)? + 8 + 8 + 1 + addr_len(&self.values.plane) + 8 + 8;
        let mut buf = Vec::with_capacity(len);
        buf.put_u8(KIND_VALUES);
        put_name(&mut buf, &self.name);
        buf.put_u64(self.values.generation.0);
        buf.put_u64(self.version);
        let mut flags = 0;
        if self.values.ready {
            flags |= READY;
        }
        if self.left {
            flags |= LEFT;
        }
        buf.put_u8(flags);
        put_addr(&mut buf, &self.values.plane);
        buf.put_u64(self.values.config_hash);
        buf.put_u64(self.values.revocation_digest);
        Some(buf)
    }

    /// Reads exactly one record; refuses anything else.
    pub fn decode(mut data: &[u8]) -> Result<Self, CodecError> {
        if read_u8(&mut data)? != KIND_VALUES {
            return Err(CodecError("unknown broadcast"));
        }
        let name = read_name(&mut data)?;
        if name.is_empty() {
            return Err(CodecError("empty name"));
        }
        let generation = Generation(read_u64(&mut data)?);
        let version = read_u64(&mut data)?;
        let flags = read_u8(&mut data)?;
        if flags & !(READY | LEFT) != 0 {
            return Err(CodecError("unknown flags"));
        }
        let plane = read_addr(&mut data)?;
        let config_hash = read_u64(&mut data)?;
        let revocation_digest = read_u64(&mut data)?;
        if !data.is_empty() {
            return Err(CodecError("bytes after the record"));
        }
        Ok(Record {
            name,
            version,
            left: flags & LEFT != 0,
            values: NodeValues {
                plane,
                generation,
                config_hash,
                revocation_digest,
                ready: flags & READY != 0,
            },
        })
    }
}

/// What foca keeps a record under while it passes it on: a newer record of the same node
/// replaces an older one still waiting to be sent.
#[derive(Debug, Clone)]
pub(crate) struct RecordKey {
    name: Arc<str>,
    order: (Generation, u64),
}

impl Invalidates for RecordKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.name == other.name && self.order >= other.order
    }
}

/// A held record and when it last arrived (a copy or a newer one).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub record: Record,
    pub seen_at: Instant,
}

/// Every other node's latest values, by name; at most [`MAX_MEMBERS`] names.
#[derive(Debug)]
pub(crate) struct ValuesTable {
    own_name: Arc<str>,
    held: BTreeMap<Arc<str>, Held>,
    /// The time of the call in progress (the handler has no clock of its own).
    pub now: Instant,
}

impl ValuesTable {
    pub fn new(own_name: Arc<str>, now: Instant) -> Self {
        Self {
            own_name,
            held: BTreeMap::new(),
            now,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Held> {
        self.held.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Held> {
        self.held.values()
    }

    /// Keeps `record` when it is newer than what is held for its node; says whether it was.
    fn offer(&mut self, record: Record) -> bool {
        let now = self.now;
        let full = self.held.len() >= MAX_MEMBERS;
        match self.held.get_mut(&record.name) {
            Some(held) if held.record.order() >= record.order() => {
                if held.record.order() == record.order() {
                    held.seen_at = now;
                }
                false
            }
            Some(held) => {
                *held = Held {
                    record,
                    seen_at: now,
                };
                true
            }
            None if full => false,
            None => {
                self.held.insert(
                    record.name.clone(),
                    Held {
                        record,
                        seen_at: now,
                    },
                );
                true
            }
        }
    }

    /// Forgets the nodes `keep` says no to and that nothing was heard of for `after`.
    pub fn forget(&mut self, after: Duration, keep: impl Fn(&str) -> bool) {
        let now = self.now;
        self.held
            .retain(|name, held| keep(name) || now.saturating_duration_since(held.seen_at) < after);
    }
}

/// foca's [`BroadcastHandler`]: decodes records into the shared [`ValuesTable`].
pub(crate) struct ValuesHandler {
    pub table: Arc<Mutex<ValuesTable>>,
}

impl BroadcastHandler<SwimIdentity> for ValuesHandler {
    type Key = RecordKey;
    type Error = CodecError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&SwimIdentity>,
    ) -> Result<Option<RecordKey>, CodecError> {
        let record = Record::decode(data)?;
        let key = RecordKey {
            name: record.name.clone(),
            order: record.order(),
        };
        let mut table = self.table.lock();
        if record.name == table.own_name {
            // This node's own record is sent as given (`sender` is None); an echo of it, or a
            // record of another node using this node's name, is not kept or passed on.
            return Ok(sender.is_none().then_some(key));
        }
        Ok(table.offer(record).then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn record(name: &str, generation: u64, version: u64) -> Record {
        Record {
            name: Arc::from(name),
            version,
            left: false,
            values: NodeValues {
                plane: SocketAddr::from(([10, 0, 0, 1], 7946)),
                generation: Generation(generation),
                config_hash: 0xfeed,
                revocation_digest: 0xbeef,
                ready: true,
            },
        }
    }

    #[test]
    fn records_round_trip_and_refuse_anything_else() {
        let mut r = record("node-a", 5, 9);
        r.left = true;
        r.values.plane = "[fd00::1]:7946".parse().unwrap();
        let bytes = r.encode().unwrap();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Record::decode(&longer).is_err());
        let mut flags = bytes.clone();
        flags[1 + 7 + 16] |= 4;
        assert_eq!(Record::decode(&flags), Err(CodecError("unknown flags")));
        let mut kind = bytes;
        kind[0] = 2;
        assert_eq!(Record::decode(&kind), Err(CodecError("unknown broadcast")));
        let mut long = record("x", 1, 1);
        long.name = Arc::from("n".repeat(254));
        assert!(long.encode().is_none());
    }

    #[test]
    fn last_writer_wins_by_generation_then_version() {
        let now = Instant::now();
        let table = Arc::new(Mutex::new(ValuesTable::new(Arc::from("me"), now)));
        let mut h = ValuesHandler {
            table: table.clone(),
        };
        let from = SwimIdentity::seed(SocketAddr::from(([10, 0, 0, 2], 1)));
        let mut offer = |r: Record| {
            h.receive_item(&r.encode().unwrap(), Some(&from))
                .unwrap()
                .is_some()
        };
        assert!(offer(record("a", 5, 2)));
        assert!(!offer(record("a", 5, 2)), "a copy is not passed on");
        assert!(!offer(record("a", 5, 1)), "an older version loses");
        assert!(offer(record("a", 5, 3)));
        assert!(
            offer(record("a", 6, 0)),
            "a restart wins whatever its version"
        );
        assert!(!offer(record("a", 5, 99)), "the previous life loses");
        assert!(
            !offer(record("me", 9, 9)),
            "this node's name from elsewhere"
        );
        assert_eq!(table.lock().get("a").unwrap().record, record("a", 6, 0));
        assert!(table.lock().get("me").is_none());
    }

    #[test]
    fn own_records_are_always_sent_and_keys_invalidate_older_ones() {
        let table = Arc::new(Mutex::new(ValuesTable::new(
            Arc::from("me"),
            Instant::now(),
        )));
        let mut h = ValuesHandler { table };
        let own = record("me", 1, 1).encode().unwrap();
        let newer = h.receive_item(&own, None).unwrap().unwrap();
        assert!(h.receive_item(&own, None).unwrap().is_some());
        let older = RecordKey {
            name: Arc::from("me"),
            order: (Generation(1), 0),
        };
        assert!(newer.invalidates(&older));
        assert!(!older.invalidates(&newer));
        let other = RecordKey {
            name: Arc::from("you"),
            order: (Generation(0), 0),
        };
        assert!(!newer.invalidates(&other));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_silent_nodes() {
        let t0 = Instant::now();
        let mut table = ValuesTable::new(Arc::from("me"), t0);
        for i in 0..MAX_MEMBERS + 10 {
            table.offer(record(&format!("n{i}"), 1, 1));
        }
        assert_eq!(table.iter().count(), MAX_MEMBERS);
        table.now = t0 + Duration::from_secs(10);
        assert!(!table.offer(record("n0", 1, 1)));
        table.forget(Duration::from_secs(5), |name| name == "n1");
        let left: Vec<&str> = table.iter().map(|h| &*h.record.name).collect();
        assert_eq!(left, ["n0", "n1"]);
    }
}
