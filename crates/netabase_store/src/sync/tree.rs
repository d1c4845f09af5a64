//! The fingerprint tree of one synced model: per-record entries kept in leaf blocks,
//! plus a hierarchy of block sums, stored in the store's own tables and updated inside
//! the write transaction that changes the records.
//!
//! One table per model, `__netabase/sync/<Definition>/<Model>`:
//! - **leaves** (level 1), `1 ‖ 0x00` (the head leaf) or `1 ‖ 0x01 ‖ enc(pk)` (a leaf
//!   starting at a level-1 boundary) → the leaf's [`Fingerprint`] and the level of its
//!   first key (41 bytes), then the sync entry of every record from that key up to the
//!   next boundary, in key order: `varint(len) ‖ pk ‖ stamp (44 bytes) ‖ tombstone flag ‖
//!   record hash (32 bytes)`. Tombstones stay here, so a removal is part of the
//!   reconciled set. About 32 records per leaf: a transaction writes a leaf once however
//!   many of its records it changes.
//! - blocks of level `l` (2, 3), `l ‖ 0x00` (the head block) or `l ‖ 0x01 ‖ enc(pk)` (a
//!   block starting at a level-`l` boundary) → the [`Fingerprint`] of every record from
//!   that key up to the next level-`l` boundary, and the level of its first key.
//!
//! A key's level is the number of [`LEVEL_BITS`] thresholds that the leading zero bits
//! of a 64-bit hash of the key alone reach (capped at [`MAX_LEVEL`]): it never changes
//! when the record is updated, and a level-`l` boundary is also a boundary of every lower
//! level, so a leaf holds about 32 records, a block of level 2 about 64 leaves and a
//! block of level 3 about 64 blocks of level 2. A write changes one leaf and one block
//! per level (a new key that is a boundary splits one block per level it reaches; a
//! pruned one merges two). The fingerprint of the keys below `x` adds the whole blocks
//! before `x` level by level from the top, descending into the block that holds `x`:
//! about 64 blocks read per level and one leaf, so a range fingerprint costs `O(log n)`
//! reads and never scans the range.
//!
//! Fingerprints add record hashes modulo 2^256 (with a count), so the fingerprint of a
//! range is the difference of two prefix sums and a write updates a block by a delta.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::backend::{Direction, RawRange, ReadTxn, WriteOp, WriteTxn};
use crate::error::{NetabaseError, Result};

use super::stamp::VersionStamp;

/// The highest level of the block hierarchy (level 1 being the leaves): a top block
/// holds about 32 · 64 · 64 (131,072) records, so a prefix sum reads a few hundred top
/// blocks at most up to stores of tens of millions of records. Every level costs a block
/// update per write, so there are no more than needed.
pub(crate) const MAX_LEVEL: u8 = 3;

/// The leading zero bits of a key's level hash that make it a boundary of level 1, 2
/// and 3: a fan-out of 32 records per leaf, then 64 blocks per block.
#[cfg(not(test))]
const LEVEL_BITS: [u32; MAX_LEVEL as usize] = [5, 11, 17];

/// The unit tests use small blocks, so that a few thousand keys exercise every level's
/// splits and merges.
#[cfg(test)]
const LEVEL_BITS: [u32; MAX_LEVEL as usize] = [2, 4, 6];

/// The table key of the head block of a level (the records before its first boundary).
const HEAD: &[u8] = &[0x00];

/// The level of the leaves.
const LEAVES: u8 = 1;

/// The sum (modulo 2^256) of the BLAKE3 hashes of a set of records, and their number:
/// equal sets have equal fingerprints, and finding two different sets with equal
/// fingerprints is as hard as breaking the hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The sum of the record hashes, a little-endian 256-bit integer.
    pub sum: [u8; 32],
    /// The number of records.
    pub count: u64,
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint(")?;
        for b in &self.sum[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, ".., {})", self.count)
    }
}

fn limbs(bytes: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        *limb = u64::from_le_bytes(b);
    }
    out
}

fn from_limbs(limbs: [u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, limb) in limbs.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
    }
    out
}

fn add256(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let (a, b) = (limbs(a), limbs(b));
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        out[i] = s;
        carry = c1 || c2;
    }
    from_limbs(out)
}

fn sub256(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let (a, b) = (limbs(a), limbs(b));
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (s, b1) = a[i].overflowing_sub(b[i]);
        let (s, b2) = s.overflowing_sub(u64::from(borrow));
        out[i] = s;
        borrow = b1 || b2;
    }
    from_limbs(out)
}

impl Fingerprint {
    /// The fingerprint of one record hash.
    pub(crate) fn one(hash: &[u8; 32]) -> Self {
        Fingerprint {
            sum: *hash,
            count: 1,
        }
    }

    /// Adds the records of `other`.
    pub(crate) fn add(&mut self, other: &Fingerprint) {
        self.sum = add256(&self.sum, &other.sum);
        self.count = self.count.wrapping_add(other.count);
    }

    /// Removes the records of `other` (a subset).
    pub(crate) fn sub(&mut self, other: &Fingerprint) {
        self.sum = sub256(&self.sum, &other.sum);
        self.count = self.count.wrapping_sub(other.count);
    }
}

/// The sync table of one model: its leaves and every level of blocks, apart by the
/// first byte of the key (one table, so that a write transaction opens one more table,
/// not four).
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) table: String,
}

impl Tables {
    /// The sync table of the model whose primary table is `table`
    /// (`<Definition>/<Model>`).
    pub(crate) fn of(table: &str) -> Self {
        Tables {
            table: format!("__netabase/sync/{table}"),
        }
    }
}

/// The key of the block of level `l` starting at `block` (a [`block_key`] or [`HEAD`]).
fn level_key(l: u8, block: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(block.len() + 1);
    key.push(l);
    key.extend_from_slice(block);
    key
}

/// The raw range of the keys under `prefix` whose rest lies within `start`..`end`.
fn prefixed(prefix: u8, start: Bound<&[u8]>, end: Bound<&[u8]>) -> RawRange {
    let with = |rest: &[u8]| {
        let mut key = Vec::with_capacity(rest.len() + 1);
        key.push(prefix);
        key.extend_from_slice(rest);
        key
    };
    RawRange {
        start: match start {
            Bound::Included(k) => Bound::Included(with(k)),
            Bound::Excluded(k) => Bound::Excluded(with(k)),
            Bound::Unbounded => Bound::Included(vec![prefix]),
        },
        end: match end {
            Bound::Included(k) => Bound::Included(with(k)),
            Bound::Excluded(k) => Bound::Excluded(with(k)),
            Bound::Unbounded => Bound::Excluded(vec![prefix + 1]),
        },
    }
}

/// The range of the blocks of level `l` that start at or below the block key `key`: its
/// last entry is the block holding `key`.
fn up_to(l: u8, key: &[u8]) -> RawRange {
    prefixed(l, Bound::Unbounded, Bound::Included(key))
}

/// The sync entry of one record: its stamp, whether it is a tombstone, the level of its
/// key, and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stamp: VersionStamp,
    pub(crate) tombstone: bool,
    pub(crate) level: u8,
    pub(crate) hash: [u8; 32],
}

#[cfg(test)]
impl Entry {
    /// The entry of the record at `pk` written at `stamp` with `value` (`None`: removed).
    pub(crate) fn new(pk: &[u8], stamp: VersionStamp, value: Option<&[u8]>) -> Self {
        RecordHasher::default().entry(pk, stamp, value)
    }
}

/// The base key of record hashes.
fn base_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| blake3::derive_key("netabase sync record hash v2", b""))
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b < 0x80 {
            return Some(n);
        }
    }
    None
}

/// Hashes record versions. The hash of a record is a keyed BLAKE3 hash of its framed
/// primary key and its stored value (header included) or the tombstone mark, under a
/// key derived from its stamp (a keyed BLAKE3 hash of the stamp under a fixed key):
/// so key, value and stamp are all covered, and a record of a short key and value
/// hashes a single 64-byte block. Every record of a transaction shares a stamp, so the
/// stamp's key is derived once per transaction, not once per record.
#[derive(Default)]
pub(crate) struct RecordHasher {
    stamp: Option<(VersionStamp, [u8; 32])>,
    buf: Vec<u8>,
}

impl RecordHasher {
    /// The hash of the record at `pk` written at `stamp` with `value` (`None`: removed).
    pub(crate) fn hash(
        &mut self,
        pk: &[u8],
        stamp: &VersionStamp,
        value: Option<&[u8]>,
    ) -> [u8; 32] {
        let key = match &self.stamp {
            Some((s, key)) if s == stamp => *key,
            _ => {
                let key = *blake3::keyed_hash(base_key(), &stamp.to_bytes()).as_bytes();
                self.stamp = Some((*stamp, key));
                key
            }
        };
        self.buf.clear();
        push_varint(&mut self.buf, pk.len());
        self.buf.extend_from_slice(pk);
        match value {
            Some(v) => {
                self.buf.push(1);
                push_varint(&mut self.buf, v.len());
                self.buf.extend_from_slice(v);
            }
            None => self.buf.push(0),
        }
        *blake3::keyed_hash(&key, &self.buf).as_bytes()
    }

    /// The entry of the record at `pk` written at `stamp` with `value` (`None`: removed).
    pub(crate) fn entry(&mut self, pk: &[u8], stamp: VersionStamp, value: Option<&[u8]>) -> Entry {
        Entry {
            stamp,
            tombstone: value.is_none(),
            level: key_level(pk),
            hash: self.hash(pk, &stamp, value),
        }
    }
}

/// The level of a primary key in the block hierarchy: from a 64-bit hash of the key
/// (FNV-1a, then the MurmurHash3 finaliser so that every key bit reaches the top bits).
/// The hash needs no secret and no collision resistance: it only places block
/// boundaries, and the fingerprints are sums of BLAKE3 hashes whatever the boundaries.
pub(crate) fn key_level(pk: &[u8]) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in pk {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    let zeros = h.leading_zeros();
    let mut level = 0u8;
    for bits in LEVEL_BITS {
        if zeros >= bits {
            level += 1;
        }
    }
    level
}

/// A block: the fingerprint of its records and the level of its first key (`u8::MAX`
/// for a head block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Block {
    fp: Fingerprint,
    level: u8,
}

/// The encoded size of a [`Block`], and of the header of a leaf.
const BLOCK_LEN: usize = 41;

impl Block {
    fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fp.sum);
        out.extend_from_slice(&self.fp.count.to_be_bytes());
        out.push(self.level);
    }

    fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BLOCK_LEN);
        self.encode(&mut out);
        out
    }

    /// Reads a block, or the header of a leaf.
    fn from_bytes(table: &str, key: &[u8], bytes: &[u8]) -> Result<Self> {
        if bytes.len() < BLOCK_LEN || (key.first() != Some(&LEAVES) && bytes.len() != BLOCK_LEN) {
            return Err(NetabaseError::decode(table, key, "not a sync block"));
        }
        let mut sum = [0u8; 32];
        sum.copy_from_slice(&bytes[..32]);
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[32..40]);
        Ok(Block {
            fp: Fingerprint {
                sum,
                count: u64::from_be_bytes(count),
            },
            level: bytes[40],
        })
    }
}

fn block_key(pk: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(pk.len() + 1);
    key.push(0x01);
    key.extend_from_slice(pk);
    key
}

/// One record's entry inside a leaf.
#[derive(Debug, Clone)]
struct LeafEntry {
    pk: Vec<u8>,
    stamp: VersionStamp,
    tombstone: bool,
    hash: [u8; 32],
}

impl LeafEntry {
    fn entry(&self) -> Entry {
        Entry {
            stamp: self.stamp,
            tombstone: self.tombstone,
            level: key_level(&self.pk),
            hash: self.hash,
        }
    }
}

/// The size of an entry after its key: the tombstone flag (top bit) and the position
/// of its stamp in the leaf's stamps (a big-endian `u32`), then the record hash.
const ENTRY_TAIL: usize = 4 + 32;

/// The tombstone bit of an entry's stamp field.
const TOMB: u32 = 1 << 31;

/// The stamps of a leaf (every stamp its entries use, once, ascending) and its entries'
/// bytes, from its stored bytes.
fn leaf_parts(bytes: &[u8]) -> Option<(Vec<VersionStamp>, &[u8])> {
    let mut at = BLOCK_LEN;
    let n = read_varint(bytes, &mut at)?;
    let end = n.checked_mul(VersionStamp::LEN)?.checked_add(at)?;
    let stamps = bytes
        .get(at..end)?
        .chunks_exact(VersionStamp::LEN)
        .map(VersionStamp::from_bytes)
        .collect::<Option<Vec<_>>>()?;
    Some((stamps, &bytes[end..]))
}

/// The stamp field and hash of the entry whose tail starts at `tail`.
fn tail_at(body: &[u8], tail: usize) -> Option<(u32, [u8; 32])> {
    let field = u32::from_be_bytes(body.get(tail..tail + 4)?.try_into().ok()?);
    let hash = body.get(tail + 4..tail + ENTRY_TAIL)?.try_into().ok()?;
    Some((field, hash))
}

/// Calls `f` with the offset of each entry's tail in `body` (`None`: malformed).
fn each_tail(body: &[u8], mut f: impl FnMut(usize) -> Option<()>) -> Option<()> {
    let mut at = 0;
    while at < body.len() {
        let len = read_varint(body, &mut at)?;
        let tail = at.checked_add(len)?;
        body.get(tail..tail + ENTRY_TAIL)?;
        f(tail)?;
        at = tail + ENTRY_TAIL;
    }
    Some(())
}

/// Decodes the entries of a leaf (its stored bytes, header included).
fn leaf_entries(table: &str, key: &[u8], bytes: &[u8]) -> Result<Vec<LeafEntry>> {
    let bad = || NetabaseError::decode(table, key, "not a sync leaf");
    let (stamps, body) = leaf_parts(bytes).ok_or_else(bad)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = read_varint(body, &mut at).ok_or_else(bad)?;
        let end = at.checked_add(len).ok_or_else(bad)?;
        let pk = body.get(at..end).ok_or_else(bad)?.to_vec();
        let (field, hash) = tail_at(body, end).ok_or_else(bad)?;
        let stamp = *stamps
            .get(usize::try_from(field & !TOMB).unwrap_or(usize::MAX))
            .ok_or_else(bad)?;
        out.push(LeafEntry {
            pk,
            stamp,
            tombstone: field & TOMB != 0,
            hash,
        });
        at = end + ENTRY_TAIL;
    }
    Ok(out)
}

/// A leaf being edited: where it starts, its header, and its entries as stored (edited
/// in place: an update overwrites an entry's tail, an insert or a removal moves the
/// bytes after it, nothing is decoded).
#[derive(Debug)]
struct Leaf {
    start: Vec<u8>,
    block: Block,
    /// The stamps the entries point to (in any order, some maybe unused, while the leaf
    /// is edited; ascending and all used once encoded).
    stamps: Vec<VersionStamp>,
    body: Vec<u8>,
    /// Entries inserted but not yet moved into `body`, in the order inserted (keys
    /// descending): where each goes in `body`, and its bytes in `pending_bytes`. A bulk
    /// write inserts a leaf's entries one before the other; moving them in once, not
    /// at each insert, copies the leaf once.
    pending: Vec<(usize, std::ops::Range<usize>)>,
    pending_bytes: Vec<u8>,
    dirty: bool,
}

/// Where a key is, or would be, in a leaf's body.
enum Slot {
    /// The entry of the key: its offset, and where its tail (stamp, flag, hash) starts.
    Found { at: usize, tail: usize },
    /// No entry: the offset where it would go.
    Missing(usize),
}

impl Leaf {
    /// The stored bytes: header, stamps, entries. The stamps are first made canonical
    /// (those in use, ascending), so that a leaf's bytes depend on its records alone.
    fn encode(&mut self) -> Option<Vec<u8>> {
        self.settle();
        self.canonical_stamps()?;
        let mut out = Vec::with_capacity(
            BLOCK_LEN + 2 + self.stamps.len() * VersionStamp::LEN + self.body.len(),
        );
        self.block.encode(&mut out);
        push_varint(&mut out, self.stamps.len());
        for stamp in &self.stamps {
            out.extend_from_slice(&stamp.to_bytes());
        }
        out.extend_from_slice(&self.body);
        Some(out)
    }

    fn canonical_stamps(&mut self) -> Option<()> {
        let n = self.stamps.len();
        let mut used = vec![false; n];
        each_tail(&self.body, |tail| {
            let (field, _) = tail_at(&self.body, tail)?;
            *used.get_mut(usize::try_from(field & !TOMB).ok()?)? = true;
            Some(())
        })?;
        if used.iter().all(|u| *u) && self.stamps.windows(2).all(|w| w[0] < w[1]) {
            return Some(());
        }
        let mut order: Vec<usize> = (0..n).filter(|&i| used[i]).collect();
        order.sort_unstable_by_key(|&i| self.stamps[i]);
        let mut remap = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            remap[old] = u32::try_from(new).ok()?;
        }
        self.stamps = order.iter().map(|&i| self.stamps[i]).collect();
        let body = &mut self.body;
        let mut tails = Vec::new();
        each_tail(body, |tail| {
            tails.push(tail);
            Some(())
        })?;
        for tail in tails {
            let (field, _) = tail_at(body, tail)?;
            let idx = remap[usize::try_from(field & !TOMB).ok()?];
            body[tail..tail + 4].copy_from_slice(&((field & TOMB) | idx).to_be_bytes());
        }
        Some(())
    }

    /// Moves the pending entries into the body.
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut body = Vec::with_capacity(self.body.len() + self.pending_bytes.len());
        let mut from = 0;
        // Ascending positions; of two entries for one position, the later inserted
        // (the smaller key) first.
        for (at, bytes) in self.pending.iter().rev() {
            body.extend_from_slice(&self.body[from..*at]);
            body.extend_from_slice(&self.pending_bytes[bytes.clone()]);
            from = *at;
        }
        body.extend_from_slice(&self.body[from..]);
        self.body = body;
        self.pending.clear();
        self.pending_bytes.clear();
    }

    /// The stamp field of an entry written at `stamp`, a tombstone or not.
    fn stamp_field(&mut self, stamp: &VersionStamp, tombstone: bool) -> Option<u32> {
        let idx = match self.stamps.iter().rposition(|s| s == stamp) {
            Some(i) => i,
            None => {
                self.stamps.push(*stamp);
                self.stamps.len() - 1
            }
        };
        let idx = u32::try_from(idx).ok().filter(|i| i & TOMB == 0)?;
        Some(if tombstone { idx | TOMB } else { idx })
    }

    /// Whether the leaf holds `pk` (keys come from the greatest down, so whenever it
    /// starts at or below it).
    fn holds(&self, pk: &[u8]) -> bool {
        self.start[0] == 0x00 || &self.start[1..] <= pk
    }

    /// The slot of `pk` (`None`: the body is malformed).
    fn find(&self, pk: &[u8]) -> Option<Slot> {
        let body = self.body.as_slice();
        let mut at = 0;
        while at < body.len() {
            let mut key_at = at;
            let len = read_varint(body, &mut key_at)?;
            let tail = key_at.checked_add(len)?;
            match body.get(key_at..tail)?.cmp(pk) {
                std::cmp::Ordering::Less => at = tail + ENTRY_TAIL,
                std::cmp::Ordering::Equal => {
                    body.get(tail..tail + ENTRY_TAIL)?;
                    return Some(Slot::Found { at, tail });
                }
                std::cmp::Ordering::Greater => return Some(Slot::Missing(at)),
            }
        }
        Some(Slot::Missing(body.len()))
    }

    /// The record hashes of the entries in `body` (`None`: malformed).
    fn hashes(body: &[u8]) -> Option<Fingerprint> {
        let mut fp = Fingerprint::default();
        each_tail(body, |tail| {
            fp.add(&Fingerprint::one(&tail_at(body, tail)?.1));
            Some(())
        })?;
        Some(fp)
    }
}

/// Writes an entry's tail: stamp field, hash.
fn put_tail(out: &mut [u8], field: u32, hash: &[u8; 32]) {
    out[..4].copy_from_slice(&field.to_be_bytes());
    out[4..ENTRY_TAIL].copy_from_slice(hash);
}

/// The block of one level above the leaves that the last key touched, with its pending
/// changes.
#[derive(Debug)]
struct Cached {
    start: Vec<u8>,
    block: Block,
    dirty: bool,
    /// A block key at or above the end of the block (the start of a block visited
    /// earlier, above this one), when known: it bounds the scans of a split, so that
    /// they read no further than the block.
    end: Option<Vec<u8>>,
}

impl Cached {
    fn holds(&self, pk: &[u8]) -> bool {
        self.start[0] == 0x00 || &self.start[1..] <= pk
    }
}

/// Applies record changes to the fingerprint tree of one model: `changes` gives, in
/// strictly ascending key order, each primary key's new entry (`None` removes the
/// entry: tombstone pruning).
///
/// Keys are visited from the greatest down: a block split or merged at a key only
/// involves keys above it, which are final by then; the leaf and the block of each
/// level that the last key touched stay in memory, so a bulk write reads and writes
/// each of them once; writes are collected and handed to the engine in one batch.
pub(crate) fn apply<T: WriteTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    changes: &[(&[u8], Option<Entry>)],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
    let mut ed = Editor {
        txn,
        table: tables.table.as_str(),
        leaf: None,
        cache: (2..=MAX_LEVEL).map(|_| None).collect(),
        last_start: (2..=MAX_LEVEL).map(|_| None).collect(),
        ops: Vec::new(),
    };
    for (pk, change) in changes.iter().rev() {
        ed.load(pk)?;
        let Some((old, new)) = ed.edit_leaf(pk, change.as_ref())? else {
            continue;
        };
        let level = change.as_ref().map_or_else(|| key_level(pk), |e| e.level);
        for l in 2..=MAX_LEVEL {
            match (&old, &new) {
                (Some(o), Some(n)) => {
                    let c = ed.loaded(l, pk)?;
                    c.block.fp.sum = add256(&sub256(&c.block.fp.sum, o), n);
                    c.dirty = true;
                }
                (None, Some(n)) if l <= level => ed.split(l, pk, level, n)?,
                (None, Some(n)) => {
                    let c = ed.loaded(l, pk)?;
                    c.block.fp.add(&Fingerprint::one(n));
                    c.dirty = true;
                }
                (Some(o), None) if l <= level => ed.merge(l, pk, o)?,
                (Some(o), None) => {
                    let c = ed.containing(l, pk)?;
                    c.block.fp.sub(&Fingerprint::one(o));
                    c.dirty = true;
                }
                (None, None) => {}
            }
        }
    }
    ed.flush_leaf()?;
    for l in 2..=MAX_LEVEL {
        ed.flush(l);
    }
    ed.flush_ops()
}

/// A block read by [`Editor::load`]: its start, its header, and for a leaf its stamps
/// and entries.
type Found = (Vec<u8>, Block, Vec<VersionStamp>, Vec<u8>);

/// What a change did to a record's hash: the old one (`None`: a new record), the new
/// one (`None`: the entry was pruned).
type HashChange = (Option<[u8; 32]>, Option<[u8; 32]>);

struct Editor<'a, T: ?Sized> {
    txn: &'a T,
    table: &'a str,
    /// The leaf the last key touched.
    leaf: Option<Leaf>,
    /// Per level from 2, the block the last key touched.
    cache: Vec<Option<Cached>>,
    /// Per level from 2, the start of the block loaded last: a boundary, so an upper
    /// bound on the end of any block below it (forgotten when a merge removes a
    /// boundary).
    last_start: Vec<Option<Vec<u8>>>,
    /// Writes not yet handed to the engine.
    ops: Vec<WriteOp<'a>>,
}

impl<'a, T: WriteTxn + ?Sized> Editor<'a, T> {
    /// Hands the collected writes to the engine.
    fn flush_ops(&mut self) -> Result<()> {
        if !self.ops.is_empty() {
            // Keys were visited from the greatest down; the engine inserts in ascending
            // order more cheaply. The sort is stable: writes of one key keep their order.
            self.ops.sort_by(|a, b| op_key(a).cmp(op_key(b)));
            self.txn.apply(&self.ops)?;
            self.ops.clear();
        }
        Ok(())
    }

    /// Writes a block or leaf of level `l` (or removes it: only a head can empty; it is
    /// left out, so that the tables are a function of the records alone).
    fn write(&mut self, l: u8, start: &[u8], count: u64, value: impl FnOnce() -> Vec<u8>) {
        let key = level_key(l, start);
        self.ops.push(if count == 0 {
            WriteOp::Delete {
                table: self.table,
                key,
            }
        } else {
            WriteOp::Put {
                table: self.table,
                key,
                value: value(),
            }
        });
    }

    fn flush_leaf(&mut self) -> Result<()> {
        if let Some(mut leaf) = self.leaf.take()
            && leaf.dirty
        {
            let bytes = leaf
                .encode()
                .ok_or_else(|| NetabaseError::decode(self.table, &leaf.start, "not a sync leaf"))?;
            self.write(LEAVES, &leaf.start, leaf.block.fp.count, || bytes);
        }
        Ok(())
    }

    fn flush(&mut self, l: u8) {
        if let Some(c) = self.cache[usize::from(l) - 2].take()
            && c.dirty
        {
            self.write(l, &c.start, c.block.fp.count, || c.block.to_bytes());
        }
    }

    /// Makes the cached leaf and the cached block of every level the ones holding `pk`,
    /// reading those that are not in one call. Every block read this way is untouched
    /// by this transaction so far: the blocks written start above `pk`.
    fn load(&mut self, pk: &[u8]) -> Result<()> {
        let hit = self.leaf.as_ref().is_some_and(|leaf| leaf.holds(pk))
            && self
                .cache
                .iter()
                .all(|c| c.as_ref().is_some_and(|c| c.holds(pk)));
        if hit {
            return Ok(());
        }
        let key = block_key(pk);
        let mut ranges = Vec::new();
        let mut levels = Vec::new();
        if !self.leaf.as_ref().is_some_and(|leaf| leaf.holds(pk)) {
            self.flush_leaf()?;
            ranges.push(up_to(LEAVES, &key));
            levels.push(LEAVES);
        }
        for l in 2..=MAX_LEVEL {
            if !self.cache[usize::from(l) - 2]
                .as_ref()
                .is_some_and(|c| c.holds(pk))
            {
                self.flush(l);
                ranges.push(up_to(l, &key));
                levels.push(l);
            }
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let table = self.table;
        let mut found: Vec<Option<Found>> = Vec::new();
        self.txn
            .first_each(table, ranges, Direction::Reverse, &mut |i, entry| {
                found.push(match entry {
                    None => None,
                    Some((k, v)) => {
                        let block = Block::from_bytes(table, k, v)?;
                        let (stamps, body) = if levels[i] == LEAVES {
                            let (stamps, body) = leaf_parts(v).ok_or_else(|| {
                                NetabaseError::decode(table, k, "not a sync leaf")
                            })?;
                            (stamps, body.to_vec())
                        } else {
                            (Vec::new(), Vec::new())
                        };
                        Some((k[1..].to_vec(), block, stamps, body))
                    }
                });
                Ok(())
            })?;
        for (l, found) in levels.iter().copied().zip(found) {
            let (start, block, stamps, body) = found.unwrap_or_else(|| {
                (
                    HEAD.to_vec(),
                    Block {
                        fp: Fingerprint::default(),
                        level: u8::MAX,
                    },
                    Vec::new(),
                    Vec::new(),
                )
            });
            if l == LEAVES {
                self.leaf = Some(Leaf {
                    start,
                    block,
                    stamps,
                    body,
                    pending: Vec::new(),
                    pending_bytes: Vec::new(),
                    dirty: false,
                });
            } else {
                let at = usize::from(l) - 2;
                let end = self.last_start[at]
                    .take()
                    .filter(|s| s.as_slice() > key.as_slice());
                self.last_start[at] = Some(start.clone());
                self.cache[at] = Some(Cached {
                    start,
                    block,
                    dirty: false,
                    end,
                });
            }
        }
        Ok(())
    }

    /// Applies the change of `pk` to its leaf (loaded); returns the old and new record
    /// hashes, or `None` when nothing changed (removing an absent entry).
    fn edit_leaf(&mut self, pk: &[u8], new: Option<&Entry>) -> Result<Option<HashChange>> {
        let table = self.table;
        let bad = || NetabaseError::decode(table, pk, "not a sync leaf");
        let leaf = self
            .leaf
            .as_mut()
            .ok_or_else(|| NetabaseError::decode(table, pk, "lost sync leaf"))?;
        if new.is_none() {
            // A removal moves the bytes after it: the pending entries' places with them.
            leaf.settle();
        }
        let slot = leaf.find(pk).ok_or_else(bad)?;
        let old_hash = |leaf: &Leaf, tail: usize| tail_at(&leaf.body, tail).map(|(_, h)| h);
        match (slot, new) {
            (Slot::Found { tail, .. }, Some(n)) => {
                let old = old_hash(leaf, tail).ok_or_else(bad)?;
                let field = leaf.stamp_field(&n.stamp, n.tombstone).ok_or_else(bad)?;
                put_tail(&mut leaf.body[tail..tail + ENTRY_TAIL], field, &n.hash);
                leaf.block.fp.sum = add256(&sub256(&leaf.block.fp.sum, &old), &n.hash);
                leaf.dirty = true;
                Ok(Some((Some(old), Some(n.hash))))
            }
            (Slot::Missing(at), Some(n)) => {
                let field = leaf.stamp_field(&n.stamp, n.tombstone).ok_or_else(bad)?;
                let from = leaf.pending_bytes.len();
                push_varint(&mut leaf.pending_bytes, pk.len());
                leaf.pending_bytes.extend_from_slice(pk);
                leaf.pending_bytes.extend_from_slice(&field.to_be_bytes());
                leaf.pending_bytes.extend_from_slice(&n.hash);
                leaf.pending.push((at, from..leaf.pending_bytes.len()));
                leaf.block.fp.add(&Fingerprint::one(&n.hash));
                leaf.dirty = true;
                if n.level >= LEAVES {
                    // A new boundary: the leaf splits at `pk`.
                    leaf.settle();
                    let Some(Slot::Found { at, .. }) = leaf.find(pk) else {
                        return Err(bad());
                    };
                    let body = leaf.body.split_off(at);
                    let fp = Leaf::hashes(&body).ok_or_else(bad)?;
                    leaf.block.fp.sub(&fp);
                    let mut split = Leaf {
                        start: block_key(pk),
                        block: Block { fp, level: n.level },
                        stamps: leaf.stamps.clone(),
                        body,
                        pending: Vec::new(),
                        pending_bytes: Vec::new(),
                        dirty: true,
                    };
                    let bytes = split.encode().ok_or_else(bad)?;
                    self.write(LEAVES, &split.start, fp.count, || bytes);
                }
                Ok(Some((None, Some(n.hash))))
            }
            (Slot::Found { at, tail }, None) => {
                let old = old_hash(leaf, tail).ok_or_else(bad)?;
                leaf.body.drain(at..tail + ENTRY_TAIL);
                leaf.block.fp.sub(&Fingerprint::one(&old));
                leaf.dirty = true;
                if at == 0 && leaf.start[0] != 0x00 {
                    // The leaf's first key, a boundary, is pruned: the rest of the leaf
                    // joins the one before.
                    let Some(gone) = self.leaf.take() else {
                        return Ok(None);
                    };
                    self.ops.push(WriteOp::Delete {
                        table,
                        key: level_key(LEAVES, &gone.start),
                    });
                    self.flush_ops()?;
                    self.load(pk)?;
                    let into = self
                        .leaf
                        .as_mut()
                        .ok_or_else(|| NetabaseError::decode(table, pk, "lost sync leaf"))?;
                    into.block.fp.add(&gone.block.fp);
                    // The moved entries point to stamps of the leaf they leave.
                    let mut body = gone.body;
                    let mut tails = Vec::new();
                    each_tail(&body, |tail| {
                        tails.push(tail);
                        Some(())
                    })
                    .ok_or_else(bad)?;
                    for tail in tails {
                        let (field, _) = tail_at(&body, tail).ok_or_else(bad)?;
                        let stamp = usize::try_from(field & !TOMB)
                            .ok()
                            .and_then(|i| gone.stamps.get(i))
                            .ok_or_else(bad)?;
                        let moved = into.stamp_field(stamp, field & TOMB != 0).ok_or_else(bad)?;
                        body[tail..tail + 4].copy_from_slice(&moved.to_be_bytes());
                    }
                    into.body.extend_from_slice(&body);
                    into.dirty = true;
                }
                Ok(Some((Some(old), None)))
            }
            (Slot::Missing(_), None) => Ok(None),
        }
    }

    /// The block of level `l ≥ 2` holding `pk` (loaded by [`Editor::load`], or after a
    /// merge read again).
    fn containing(&mut self, l: u8, pk: &[u8]) -> Result<&mut Cached> {
        let at = usize::from(l) - 2;
        if !self.cache[at].as_ref().is_some_and(|c| c.holds(pk)) {
            self.load(pk)?;
        }
        self.cache[at]
            .as_mut()
            .ok_or_else(|| NetabaseError::decode(self.table, pk, "lost block"))
    }

    /// The block of level `l ≥ 2` holding `pk`, known to be loaded: [`Editor::load`]
    /// ran for `pk`, and splits and merges at `pk` leave the block holding it cached.
    fn loaded(&mut self, l: u8, pk: &[u8]) -> Result<&mut Cached> {
        let at = usize::from(l) - 2;
        if self.cache[at].is_none() {
            return self.containing(l, pk);
        }
        debug_assert!(self.cache[at].as_ref().is_some_and(|c| c.holds(pk)));
        self.cache[at]
            .as_mut()
            .ok_or_else(|| NetabaseError::decode(self.table, pk, "lost block"))
    }

    /// A new key `pk` of level `level ≥ l` becomes a boundary of level `l ≥ 2`: the
    /// block holding it splits there.
    fn split(&mut self, l: u8, pk: &[u8], level: u8, hash: &[u8; 32]) -> Result<()> {
        let end = self.containing(l, pk)?.end.clone();
        // The new block: the blocks of level `l - 1` from `pk`'s own on, up to the next
        // boundary of level `l`. They all start above the cached blocks, and the
        // written ones reach the engine first.
        self.flush_ops()?;
        let mut fp = Fingerprint::default();
        let table = self.table;
        let own = block_key(pk);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.txn.for_each_in(
            table,
            prefixed(l - 1, Bound::Included(&own), upper),
            Direction::Forward,
            &mut |k, v| {
                let b = Block::from_bytes(table, k, v)?;
                if b.level >= l && &k[1..] != own.as_slice() {
                    return Ok(ControlFlow::Break(()));
                }
                fp.add(&b.fp);
                Ok(ControlFlow::Continue(()))
            },
        )?;
        let mut moved = fp;
        moved.sub(&Fingerprint::one(hash));
        let c = self.containing(l, pk)?;
        c.block.fp.sub(&moved);
        c.dirty = true;
        c.end = Some(own.clone());
        let block = Block { fp, level };
        self.write(l, &own, fp.count, || block.to_bytes());
        Ok(())
    }

    /// The key `pk`, a boundary of level `l ≥ 2`, is pruned: its block joins the one
    /// before.
    fn merge(&mut self, l: u8, pk: &[u8], hash: &[u8; 32]) -> Result<()> {
        let key = block_key(pk);
        let at = usize::from(l) - 2;
        let table = self.table;
        let stored = level_key(l, &key);
        let block = match self.cache[at].take() {
            Some(c) if c.start == key => c.block,
            other => {
                self.cache[at] = other;
                self.flush(l);
                self.flush_ops()?;
                match self.txn.get(table, &stored)? {
                    Some(bytes) => Block::from_bytes(table, &stored, &bytes)?,
                    None => {
                        return Err(NetabaseError::decode(table, &stored, "missing sync block"));
                    }
                }
            }
        };
        self.ops.push(WriteOp::Delete { table, key: stored });
        self.flush_ops()?;
        // The boundary is gone: what was known of block ends no longer holds.
        self.last_start[at] = None;
        let mut moved = block.fp;
        moved.sub(&Fingerprint::one(hash));
        let c = self.containing(l, pk)?;
        c.block.fp.add(&moved);
        c.dirty = true;
        c.end = None;
        Ok(())
    }
}

fn op_key<'k>(op: &'k WriteOp<'_>) -> &'k [u8] {
    match op {
        WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
    }
}

/// The leaf holding `pk` (its start and stored bytes), if any.
fn leaf_of<T: ReadTxn + ?Sized>(
    txn: &T,
    table: &str,
    pk: &[u8],
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut found = None;
    txn.first_each(
        table,
        vec![up_to(LEAVES, &block_key(pk))],
        Direction::Reverse,
        &mut |_, entry| {
            found = entry.map(|(k, v)| (k.to_vec(), v.to_vec()));
            Ok(())
        },
    )?;
    Ok(found)
}

/// The fingerprint of every record whose key is below `x` (`None`: every record).
pub(crate) fn sum_below<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    x: Option<&[u8]>,
) -> Result<Fingerprint> {
    let mut acc = Fingerprint::default();
    if x.is_some_and(<[u8]>::is_empty) {
        return Ok(acc);
    }
    let mut lo = HEAD.to_vec();
    let table = tables.table.as_str();
    let x_block = x.map(block_key);
    for l in (LEAVES..=MAX_LEVEL).rev() {
        let end = match &x_block {
            Some(x) => Bound::Included(x.as_slice()),
            None => Bound::Unbounded,
        };
        let mut last: Option<(Vec<u8>, Block)> = None;
        txn.for_each_in(
            table,
            prefixed(l, Bound::Included(&lo), end),
            Direction::Forward,
            &mut |k, v| {
                let b = Block::from_bytes(table, k, v)?;
                if let Some((_, prev)) = last.replace((k[1..].to_vec(), b)) {
                    acc.add(&prev.fp);
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        match last {
            Some((_, b)) if x.is_none() => {
                acc.add(&b.fp);
                return Ok(acc);
            }
            Some((k, _)) => lo = k,
            // The head block is empty and no block of this level starts below `x`.
            None => return Ok(acc),
        }
    }
    // The leaf holding `x`: its records below `x`.
    let Some(x) = x else { return Ok(acc) };
    let key = level_key(LEAVES, &lo);
    if let Some(bytes) = txn.get(table, &key)? {
        for e in leaf_entries(table, &key, &bytes)? {
            if e.pk.as_slice() >= x {
                break;
            }
            acc.add(&Fingerprint::one(&e.hash));
        }
    }
    Ok(acc)
}

/// The fingerprint of the records with keys in `[lower, upper)` (`upper` `None`: to the
/// end).
pub(crate) fn fingerprint<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    lower: &[u8],
    upper: Option<&[u8]>,
) -> Result<Fingerprint> {
    let mut fp = sum_below(txn, tables, upper)?;
    fp.sub(&sum_below(txn, tables, Some(lower))?);
    Ok(fp)
}

/// The key of the record at position `rank` (0-based, in key order), if any.
pub(crate) fn key_at_rank<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    rank: u64,
) -> Result<Option<Vec<u8>>> {
    let mut seen = 0u64;
    let mut lo = HEAD.to_vec();
    let table = tables.table.as_str();
    for l in (LEAVES..=MAX_LEVEL).rev() {
        let mut found = None;
        txn.for_each_in(
            table,
            prefixed(l, Bound::Included(&lo), Bound::Unbounded),
            Direction::Forward,
            &mut |k, v| {
                let b = Block::from_bytes(table, k, v)?;
                if seen + b.fp.count > rank {
                    found = Some(k[1..].to_vec());
                    return Ok(ControlFlow::Break(()));
                }
                seen += b.fp.count;
                Ok(ControlFlow::Continue(()))
            },
        )?;
        match found {
            Some(k) => lo = k,
            None => return Ok(None),
        }
    }
    let key = level_key(LEAVES, &lo);
    let Some(bytes) = txn.get(table, &key)? else {
        return Ok(None);
    };
    let at = usize::try_from(rank - seen).unwrap_or(usize::MAX);
    Ok(leaf_entries(table, &key, &bytes)?
        .into_iter()
        .nth(at)
        .map(|e| e.pk))
}

/// The entries with keys in `[lower, upper)`, in key order.
pub(crate) fn entries_in<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    lower: &[u8],
    upper: Option<&[u8]>,
) -> Result<Vec<(Vec<u8>, Entry)>> {
    let table = tables.table.as_str();
    let first = leaf_of(txn, table, lower)?.map_or_else(|| HEAD.to_vec(), |(k, _)| k[1..].to_vec());
    let upper_block = upper.map(block_key);
    let mut out = Vec::new();
    txn.for_each_in(
        table,
        prefixed(
            LEAVES,
            Bound::Included(&first),
            upper_block
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded),
        ),
        Direction::Forward,
        &mut |k, v| {
            for e in leaf_entries(table, k, v)? {
                if e.pk.as_slice() < lower {
                    continue;
                }
                if upper.is_some_and(|u| e.pk.as_slice() >= u) {
                    break;
                }
                let entry = e.entry();
                out.push((e.pk, entry));
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// The entry of `pk`, if any.
pub(crate) fn entry<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    pk: &[u8],
) -> Result<Option<Entry>> {
    let table = tables.table.as_str();
    let Some((key, bytes)) = leaf_of(txn, table, pk)? else {
        return Ok(None);
    };
    Ok(leaf_entries(table, &key, &bytes)?
        .into_iter()
        .find(|e| e.pk.as_slice() == pk)
        .map(|e| e.entry()))
}

/// Whether a leaf lists exactly the stamps its entries use, ascending.
fn canonical(bytes: &[u8]) -> bool {
    let Some((stamps, body)) = leaf_parts(bytes) else {
        return false;
    };
    let mut used = vec![false; stamps.len()];
    let walked = each_tail(body, |tail| {
        let (field, _) = tail_at(body, tail)?;
        *used.get_mut(usize::try_from(field & !TOMB).ok()?)? = true;
        Some(())
    });
    walked.is_some() && used.iter().all(|u| *u) && stamps.windows(2).all(|w| w[0] < w[1])
}

/// Compares the sync entries of a model with its stored records (primary table
/// `records`): every stored record has a live entry whose hash is that of the stored
/// value, and every live entry has its record. Returns each disagreement found, by
/// primary key, in key order: a write that bypassed the sync metadata shows here.
pub(crate) fn check_records<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    records: &str,
) -> Result<Vec<(Vec<u8>, &'static str)>> {
    const NOT_STORED: &str = "a live sync entry names a record that is not stored";
    let entries = entries_in(txn, tables, &[], None)?;
    let mut hasher = RecordHasher::default();
    let mut problems = Vec::new();
    let mut at = 0;
    txn.for_each_in(
        records,
        RawRange::all(),
        Direction::Forward,
        &mut |pk, value| {
            while let Some((key, entry)) = entries.get(at)
                && key.as_slice() < pk
            {
                if !entry.tombstone {
                    problems.push((key.clone(), NOT_STORED));
                }
                at += 1;
            }
            match entries.get(at) {
                Some((key, entry)) if key.as_slice() == pk => {
                    at += 1;
                    if entry.tombstone {
                        problems.push((
                            pk.to_vec(),
                            "the record is stored but its sync entry is a tombstone",
                        ));
                    } else if hasher.entry(pk, entry.stamp, Some(value)).hash != entry.hash {
                        problems.push((
                            pk.to_vec(),
                            "the stored value is not the version its sync entry fingerprints",
                        ));
                    }
                }
                _ => problems.push((
                    pk.to_vec(),
                    "the record has no sync entry (no version stamp)",
                )),
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for (key, entry) in entries.get(at..).unwrap_or_default() {
        if !entry.tombstone {
            problems.push((key.clone(), NOT_STORED));
        }
    }
    Ok(problems)
}

/// Recomputes every leaf header and block from the entries and compares with the
/// stored ones; checks that every leaf holds exactly the records from its boundary up
/// to the next; returns the first difference found.
pub(crate) fn check<T: ReadTxn + ?Sized>(txn: &T, tables: &Tables) -> Result<Option<String>> {
    let table = tables.table.as_str();
    let mut entries: Vec<(Vec<u8>, Entry)> = Vec::new();
    let mut problem = None;
    txn.for_each_in(
        table,
        prefixed(LEAVES, Bound::Unbounded, Bound::Unbounded),
        Direction::Forward,
        &mut |k, v| {
            let start = &k[1..];
            if !canonical(v) {
                problem = Some(format!(
                    "leaf {} of `{table}` lists stamps out of order or unused",
                    crate::error::hex(k)
                ));
                return Ok(ControlFlow::Break(()));
            }
            for (i, e) in leaf_entries(table, k, v)?.into_iter().enumerate() {
                let entry = e.entry();
                let at_start = i == 0 && start != HEAD && start == block_key(&e.pk).as_slice();
                let in_order = entries.last().is_none_or(|(last, _)| *last < e.pk);
                if (entry.level >= LEAVES) != at_start || !in_order {
                    problem = Some(format!(
                        "leaf {} of `{table}` holds entry {} out of place",
                        crate::error::hex(k),
                        crate::error::hex(&e.pk)
                    ));
                    return Ok(ControlFlow::Break(()));
                }
                entries.push((e.pk, entry));
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    if problem.is_some() {
        return Ok(problem);
    }
    for l in LEAVES..=MAX_LEVEL {
        let mut expected: BTreeMap<Vec<u8>, Block> = BTreeMap::new();
        let mut current = HEAD.to_vec();
        for (pk, e) in &entries {
            if e.level >= l {
                current = block_key(pk);
                expected.insert(
                    current.clone(),
                    Block {
                        fp: Fingerprint::default(),
                        level: e.level,
                    },
                );
            }
            let b = expected.entry(current.clone()).or_insert(Block {
                fp: Fingerprint::default(),
                level: u8::MAX,
            });
            b.fp.add(&Fingerprint::one(&e.hash));
        }
        let mut stored: BTreeMap<Vec<u8>, Block> = BTreeMap::new();
        txn.for_each_in(
            table,
            prefixed(l, Bound::Unbounded, Bound::Unbounded),
            Direction::Forward,
            &mut |k, v| {
                stored.insert(k[1..].to_vec(), Block::from_bytes(table, k, v)?);
                Ok(ControlFlow::Continue(()))
            },
        )?;
        if stored != expected {
            let first = expected
                .iter()
                .find(|(k, b)| stored.get(*k) != Some(b))
                .map(|(k, _)| crate::error::hex(k))
                .or_else(|| {
                    stored
                        .keys()
                        .find(|k| !expected.contains_key(*k))
                        .map(|k| crate::error::hex(k))
                })
                .unwrap_or_default();
            return Ok(Some(format!(
                "level {l} of `{table}` differs from its entries at block {first}"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::backend::memory::MemoryBackend;
    use crate::sync::stamp::{Hlc, WriterId};

    fn stamp(n: u64) -> VersionStamp {
        VersionStamp {
            hlc: Hlc {
                millis: n,
                counter: 0,
            },
            writer: WriterId([1; 32]),
        }
    }

    #[test]
    fn blocks_follow_random_changes_and_ranges_match_a_scan() -> Result<()> {
        let backend = MemoryBackend::new();
        let tables = Tables::of("D/M");
        let mut model: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40u64 {
            let mut changes = BTreeMap::new();
            for _ in 0..(next() % 300) {
                let pk = (next() % 3000).to_be_bytes().to_vec();
                let change = match next() % 4 {
                    0 if model.contains_key(&pk) => None,
                    1 => Some(Entry::new(&pk, stamp(round), None)),
                    _ => Some(Entry::new(&pk, stamp(round), Some(&round.to_le_bytes()))),
                };
                changes.insert(pk, change);
            }
            for (pk, c) in &changes {
                match c {
                    Some(e) => model.insert(pk.clone(), *e),
                    None => model.remove(pk),
                };
            }
            let txn = backend.begin_write()?;
            let changes: Vec<(&[u8], Option<Entry>)> =
                changes.iter().map(|(k, e)| (k.as_slice(), *e)).collect();
            apply(&txn, &tables, &changes)?;
            txn.commit()?;
            let txn = backend.begin_read()?;
            assert_eq!(check(&txn, &tables)?, None, "round {round}");
            for _ in 0..20 {
                let (a, b) = (next() % 3100, next() % 3100);
                let (a, b) = (a.min(b), a.max(b));
                let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
                let mut expected = Fingerprint::default();
                for (_, e) in model.range(a.to_vec()..b.to_vec()) {
                    expected.add(&Fingerprint::one(&e.hash));
                }
                assert_eq!(fingerprint(&txn, &tables, &a, Some(&b))?, expected);
            }
            let keys: Vec<&Vec<u8>> = model.keys().collect();
            for rank in [0, keys.len() / 3, keys.len().saturating_sub(1), keys.len()] {
                assert_eq!(
                    key_at_rank(&txn, &tables, rank as u64)?.as_ref(),
                    keys.get(rank).copied()
                );
            }
        }
        Ok(())
    }
}
