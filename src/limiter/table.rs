//! The open-addressing table that holds a shard's sliding-window states.
//!
//! Why not `hashbrown`: a lookup there reads a control-byte group and then the entry, two
//! cache misses once the map outgrows the caches (a million keys), and its SIMD group
//! probing costs more instructions than a hit needs. Here the slot array *is* the table:
//! linear probing over 32-byte slots keyed by the state's 64-bit hash (never 0, which marks
//! an empty slot), so a lookup is usually one miss, and the engine can prefetch that slot
//! before it takes the shard's lock (see [`WindowTable::slot_ptr`]).
//!
//! - Load factor at most 4/5 (an unsuccessful probe then scans about 13 slots on average,
//!   a successful one about 3); the capacity is a power of two, at least 16.
//! - Slots are allocated zeroed (`calloc`), so the pages of a fresh table are not resident
//!   until written.
//! - Removal is in bulk only (idle drop and eviction run over the whole shard anyway):
//!   [`WindowTable::retain`] empties the removed slots, then re-places the survivors so
//!   that every probe chain is unbroken again.

use super::window::WindowState;

/// One slot: `[hash, expiry | current << 32, previous | attempts << 32,
/// last_current | last_previous << 32]`; hash 0 = empty.
type Slot = [u64; 4];

const EMPTY: Slot = [0; 4];
const MIN_CAPACITY: usize = 16;

fn encode(s: &WindowState) -> Slot {
    [
        s.hash,
        u64::from(s.expiry) | u64::from(s.current) << 32,
        u64::from(s.previous) | u64::from(s.attempts) << 32,
        u64::from(s.last_current) | u64::from(s.last_previous) << 32,
    ]
}

fn decode(slot: &Slot) -> WindowState {
    WindowState {
        hash: slot[0],
        expiry: slot[1] as u32,
        current: (slot[1] >> 32) as u32,
        previous: slot[2] as u32,
        attempts: (slot[2] >> 32) as u32,
        last_current: slot[3] as u32,
        last_previous: (slot[3] >> 32) as u32,
    }
}

/// Sliding-window states keyed by their (non-zero) hash.
#[derive(Debug, Default)]
pub(crate) struct WindowTable {
    /// Power-of-two length, or empty before the first insert.
    slots: Vec<Slot>,
    len: usize,
}

impl WindowTable {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of slots (the table's memory is `capacity × 32` bytes).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot index a hash starts probing at.
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// Where a lookup of `hash` starts, for prefetching: the base pointer and mask of the
    /// slot array (null when there is none yet).
    pub fn probe_base(&self) -> (*const u8, usize) {
        if self.slots.is_empty() {
            (std::ptr::null(), 0)
        } else {
            (self.slots.as_ptr().cast(), self.mask())
        }
    }

    /// The address of the slot `hash` starts probing at, computed from a possibly stale
    /// [`WindowTable::probe_base`]. Only ever used as a prefetch hint, never dereferenced.
    pub fn slot_ptr(base: *const u8, mask: usize, hash: u64) -> *const u8 {
        base.wrapping_add((hash as usize & mask) * std::mem::size_of::<Slot>())
    }

    /// Index of the slot holding `hash`.
    pub fn find(&self, hash: u64) -> Option<usize> {
        debug_assert_ne!(hash, 0);
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let h = self.slots[i][0];
            if h == hash {
                return Some(i);
            }
            if h == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&self, index: usize) -> WindowState {
        decode(&self.slots[index])
    }

    /// Overwrites the state at `index` (found by [`WindowTable::find`] for the same hash).
    pub fn set(&mut self, index: usize, state: &WindowState) {
        debug_assert_eq!(self.slots[index][0], state.hash);
        self.slots[index] = encode(state);
    }

    /// Inserts a state whose hash is not in the table.
    pub fn insert_new(&mut self, state: &WindowState) {
        debug_assert_ne!(state.hash, 0);
        debug_assert!(self.find(state.hash).is_none());
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.grow();
        }
        self.place(encode(state));
        self.len += 1;
    }

    /// Puts a slot at the first empty position of its probe sequence.
    fn place(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut i = self.home(slot[0]);
        while self.slots[i][0] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(MIN_CAPACITY);
        self.rebuild(capacity);
    }

    /// Moves every state into a fresh array of `capacity` slots.
    fn rebuild(&mut self, capacity: usize) {
        // `vec![[0u64; 3]; n]` allocates zeroed memory (calloc): untouched pages stay
        // out of the resident set.
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; capacity]);
        for slot in old.into_iter().filter(|s| s[0] != 0) {
            self.place(slot);
        }
    }

    /// Every state, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = WindowState> + Clone + '_ {
        self.slots.iter().filter(|s| s[0] != 0).map(decode)
    }

    /// Keeps the states for which `keep` is true; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&WindowState) -> bool) -> usize {
        if self.len == 0 {
            return 0;
        }
        // A slot that was empty before the removals: no probe chain crosses it, so a scan
        // starting after it meets every chain from its beginning. (The load factor keeps at
        // least a fifth of the slots empty.)
        let Some(start) = self.slots.iter().position(|s| s[0] == 0) else {
            return 0;
        };
        let mut removed = 0;
        for slot in self.slots.iter_mut().filter(|s| s[0] != 0) {
            if !keep(&decode(slot)) {
                *slot = EMPTY;
                removed += 1;
            }
        }
        if removed == 0 {
            return 0;
        }
        self.len -= removed;
        // Re-place every survivor, in probe order from `start`: each moves back to the first
        // empty slot of its own chain, which closes the holes the removals left. An entry
        // only ever moves towards its home slot, so entries already re-placed stay reachable.
        let mask = self.mask();
        for step in 1..=self.slots.len() {
            let i = (start + step) & mask;
            let slot = self.slots[i];
            if slot[0] != 0 {
                self.slots[i] = EMPTY;
                self.place(slot);
            }
        }
        removed
    }

    /// Gives memory back when a sweep has emptied most of the table.
    pub fn shrink_if_sparse(&mut self) {
        let capacity = self.slots.len();
        if capacity > MIN_CAPACITY && self.len * 8 < capacity {
            // Smallest power of two that holds the states at a load of at most 1/2.
            let target = (self.len * 2).next_power_of_two().max(MIN_CAPACITY);
            if self.len == 0 {
                self.slots = Vec::new();
            } else {
                self.rebuild(target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn state(hash: u64, n: u32) -> WindowState {
        WindowState {
            hash,
            expiry: n,
            current: n.wrapping_mul(3),
            previous: n.wrapping_mul(5),
            attempts: n.wrapping_mul(7) | 1 << 31,
            last_current: n.wrapping_mul(11),
            last_previous: n.wrapping_mul(13),
        }
    }

    #[test]
    fn a_slot_round_trips() {
        let s = state(0xdead_beef_0000_0001, u32::MAX);
        assert_eq!(decode(&encode(&s)), s);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Update(u64),
        Retain(u64),
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Hashes drawn from a small range collide on home slots often, which is what the
        // probe chains must survive; mixed with a few arbitrary ones.
        let hash = prop_oneof![3 => 1u64..200, 1 => 1u64..=u64::MAX];
        prop_oneof![
            6 => hash.clone().prop_map(Op::Insert),
            2 => hash.prop_map(Op::Update),
            1 => (2u64..6).prop_map(Op::Retain),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        /// The table behaves as a map from hash to state, through growth, bulk removal
        /// and shrinking.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec(op(), 1..400)) {
            let mut table = WindowTable::default();
            let mut model: HashMap<u64, WindowState> = HashMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u32;
                match op {
                    Op::Insert(h) => {
                        if let Some(i) = table.find(h) {
                            table.set(i, &state(h, n));
                        } else {
                            table.insert_new(&state(h, n));
                        }
                        model.insert(h, state(h, n));
                    }
                    Op::Update(h) => {
                        if let Some(i) = table.find(h) {
                            table.set(i, &state(h, n));
                            model.insert(h, state(h, n));
                        }
                    }
                    Op::Retain(m) => {
                        let removed = table.retain(|s| s.hash % m != 0);
                        let before = model.len();
                        model.retain(|h, _| h % m != 0);
                        prop_assert_eq!(removed, before - model.len());
                    }
                    Op::Shrink => table.shrink_if_sparse(),
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert!(table.len() * 5 <= table.capacity() * 4 || table.capacity() == 0);
                for (h, s) in &model {
                    let i = table.find(*h);
                    prop_assert!(i.is_some(), "hash {} lost", h);
                    prop_assert_eq!(table.get(i.unwrap()), *s);
                }
                prop_assert_eq!(table.iter().count(), model.len());
            }
            for h in 1u64..300 {
                prop_assert_eq!(table.find(h).is_some(), model.contains_key(&h));
            }
        }
    }
}
