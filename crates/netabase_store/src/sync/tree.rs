//! The fingerprint tree of one synced model: per-record entries plus a hierarchy of
//! block sums, kept in the store's own tables and updated inside the write transaction
//! that changes the records.
//!
//! One table per model, `__netabase/sync/<Definition>/<Model>`:
//! - entries, `0x00 ‖ enc(pk)` → stamp (44 bytes) ‖ tombstone flag ‖ level ‖ record
//!   hash (32 bytes). Tombstones stay here, so a removal is part of the reconciled set.
//! - blocks of level `l` (1 … 4), `l ‖ 0x00` (the head block) or `l ‖ 0x01 ‖ enc(pk)`
//!   (a block starting at a level-`l` boundary) → the [`Fingerprint`] of every record
//!   from that key up to the next level-`l` boundary, and the level of its first key.
//!
//! A key's level is the number of leading zero 5-bit groups of a keyed BLAKE3 hash of
//! the key alone (capped at [`MAX_LEVEL`]): it never changes when the record is updated, and
//! a level-`l` boundary is also a boundary of every lower level, so each block of level
//! `l` is a run of about 32 blocks of level `l - 1`. A write changes one block per level
//! (a new key that is a boundary splits one block per level it reaches; a pruned one
//! merges two). The fingerprint of the keys below `x` adds the whole blocks before `x`
//! level by level from the top, descending into the block that holds `x`: about 32
//! entries read per level, so a range fingerprint costs `O(log n)` reads and never scans
//! the range.
//!
//! Fingerprints add record hashes modulo 2^256 (with a count), so the fingerprint of a
//! range is the difference of two prefix sums and a write updates a block by a delta.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::backend::{Direction, RawRange, ReadTxn, WriteTxn};
use crate::error::{NetabaseError, Result};

use super::stamp::VersionStamp;

/// The highest level of the block hierarchy: a top block holds about 32^4 (a million)
/// records, so the top level stays short up to stores of tens of millions of records.
/// Every level costs a block update per write, so there are no more than needed.
pub(crate) const MAX_LEVEL: u8 = 4;

/// Bits of the key hash per level: a fan-out of 32.
const BITS_PER_LEVEL: u32 = 5;

/// The table key of the head block of a level (the records before its first boundary).
const HEAD: &[u8] = &[0x00];

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

/// The sync table of one model: its entries and every level of blocks, apart by the
/// first byte of the key (one table, so that a write transaction opens one more table,
/// not seven).
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

/// The key of `pk`'s entry.
fn item_key(pk: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(pk.len() + 1);
    key.push(ITEMS);
    key.extend_from_slice(pk);
    key
}

/// The key of the block of level `l` starting at `block` (a [`block_key`] or [`HEAD`]).
fn level_key(l: u8, block: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(block.len() + 1);
    key.push(l);
    key.extend_from_slice(block);
    key
}

/// The first byte of the entries' keys; levels use their number.
const ITEMS: u8 = 0;

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

/// The sync entry of one record: its stamp, whether it is a tombstone, the level of its
/// key, and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stamp: VersionStamp,
    pub(crate) tombstone: bool,
    pub(crate) level: u8,
    pub(crate) hash: [u8; 32],
}

const ENTRY_LEN: usize = VersionStamp::LEN + 2 + 32;

impl Entry {
    /// The entry of the record at `pk` written at `stamp` with `value` (`None`: removed).
    pub(crate) fn new(pk: &[u8], stamp: VersionStamp, value: Option<&[u8]>) -> Self {
        Entry {
            stamp,
            tombstone: value.is_none(),
            level: key_level(pk),
            hash: record_hash(pk, &stamp, value),
        }
    }

    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_LEN);
        out.extend_from_slice(&self.stamp.to_bytes());
        out.push(u8::from(self.tombstone));
        out.push(self.level);
        out.extend_from_slice(&self.hash);
        out
    }

    pub(crate) fn from_bytes(table: &str, key: &[u8], bytes: &[u8]) -> Result<Self> {
        let bad = || NetabaseError::decode(table, key, "not a sync entry");
        if bytes.len() != ENTRY_LEN {
            return Err(bad());
        }
        let stamp = VersionStamp::from_bytes(bytes).ok_or_else(bad)?;
        let at = VersionStamp::LEN;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[at + 2..]);
        Ok(Entry {
            stamp,
            tombstone: bytes[at] != 0,
            level: bytes[at + 1],
            hash,
        })
    }
}

fn keys() -> &'static ([u8; 32], [u8; 32]) {
    static KEYS: OnceLock<([u8; 32], [u8; 32])> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            blake3::derive_key("netabase sync record hash v1", b""),
            blake3::derive_key("netabase sync key level v1", b""),
        )
    })
}

/// The hash of one record version: its primary key, its stamp, and its stored value
/// (header included) or the tombstone mark. Lengths are framed, so no two different
/// records hash the same input.
pub(crate) fn record_hash(pk: &[u8], stamp: &VersionStamp, value: Option<&[u8]>) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&keys().0);
    h.update(&(pk.len() as u64).to_le_bytes());
    h.update(pk);
    h.update(&stamp.to_bytes());
    match value {
        Some(v) => {
            h.update(&[1]);
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v);
        }
        None => {
            h.update(&[0]);
        }
    }
    *h.finalize().as_bytes()
}

/// The level of a primary key in the block hierarchy.
pub(crate) fn key_level(pk: &[u8]) -> u8 {
    let h = blake3::keyed_hash(&keys().1, pk);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    let zeros = u64::from_be_bytes(first).leading_zeros() / BITS_PER_LEVEL;
    u8::try_from(zeros).unwrap_or(MAX_LEVEL).min(MAX_LEVEL)
}

/// A block: the fingerprint of its records and the level of its first key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Block {
    fp: Fingerprint,
    level: u8,
}

impl Block {
    fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        out.extend_from_slice(&self.fp.sum);
        out.extend_from_slice(&self.fp.count.to_be_bytes());
        out.push(self.level);
        out
    }

    fn from_bytes(table: &str, key: &[u8], bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 41 {
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

/// The block of one level that the last key touched, with its pending changes.
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

/// Applies record changes to the fingerprint tree of one model: `changes` maps each
/// primary key to its new entry (`None` removes the entry: tombstone pruning).
pub(crate) fn apply<T: WriteTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    changes: BTreeMap<Vec<u8>, Option<Entry>>,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    // The entries first, learning what each replaced.
    let mut puts: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let mut deletes: Vec<&[u8]> = Vec::new();
    for (pk, entry) in &changes {
        match entry {
            Some(e) => puts.push((pk, e.to_bytes())),
            None => deletes.push(pk),
        }
    }
    let mut olds: BTreeMap<&[u8], Entry> = BTreeMap::new();
    let table = tables.table.as_str();
    let put_keys: Vec<Vec<u8>> = puts.iter().map(|(k, _)| item_key(k)).collect();
    let put_refs: Vec<(&[u8], &[u8])> = put_keys
        .iter()
        .zip(&puts)
        .map(|(k, (_, v))| (k.as_slice(), v.as_slice()))
        .collect();
    txn.put_each(table, &put_refs, &mut |i, old| {
        if let Some(old) = old {
            olds.insert(puts[i].0, Entry::from_bytes(table, puts[i].0, old)?);
        }
        Ok(())
    })?;
    let delete_keys: Vec<Vec<u8>> = deletes.iter().map(|k| item_key(k)).collect();
    let delete_refs: Vec<&[u8]> = delete_keys.iter().map(Vec::as_slice).collect();
    txn.delete_each(table, &delete_refs, &mut |i, old| {
        if let Some(old) = old {
            olds.insert(deletes[i], Entry::from_bytes(table, deletes[i], old)?);
        }
        Ok(())
    })?;
    // Then the blocks, from the greatest key down: a block split or merged at a key
    // only involves keys above it, which are final by then.
    let mut levels = Levels {
        txn,
        tables,
        cache: (0..MAX_LEVEL).map(|_| None).collect(),
        last_start: (0..MAX_LEVEL).map(|_| None).collect(),
    };
    for (pk, new) in changes.iter().rev() {
        let old = olds.get(pk.as_slice()).copied();
        let level = match (&old, new) {
            (Some(e), _) | (None, Some(e)) => e.level,
            (None, None) => continue,
        };
        for l in 1..=MAX_LEVEL {
            match (&old, new) {
                (Some(o), Some(n)) => {
                    let c = levels.containing(l, pk)?;
                    c.block.fp.sum = add256(&sub256(&c.block.fp.sum, &o.hash), &n.hash);
                    c.dirty = true;
                }
                (None, Some(n)) if l <= level => levels.split(l, pk, level, &n.hash)?,
                (None, Some(n)) => {
                    let c = levels.containing(l, pk)?;
                    c.block.fp.add(&Fingerprint::one(&n.hash));
                    c.dirty = true;
                }
                (Some(o), None) if l <= level => levels.merge(l, pk, &o.hash)?,
                (Some(o), None) => {
                    let c = levels.containing(l, pk)?;
                    c.block.fp.sub(&Fingerprint::one(&o.hash));
                    c.dirty = true;
                }
                (None, None) => {}
            }
        }
    }
    for l in 1..=MAX_LEVEL {
        levels.flush(l)?;
    }
    Ok(())
}

struct Levels<'a, T: ?Sized> {
    txn: &'a T,
    tables: &'a Tables,
    cache: Vec<Option<Cached>>,
    /// Per level, the start of the block loaded last: a boundary, so an upper bound on
    /// the end of any block below it (forgotten when a merge removes a boundary).
    last_start: Vec<Option<Vec<u8>>>,
}

impl<T: WriteTxn + ?Sized> Levels<'_, T> {
    fn flush(&mut self, l: u8) -> Result<()> {
        if let Some(c) = self.cache[usize::from(l) - 1].take()
            && c.dirty
        {
            self.write(l, &c.start, c.block)?;
        }
        Ok(())
    }

    fn write(&self, l: u8, key: &[u8], block: Block) -> Result<()> {
        let table = self.tables.table.as_str();
        if block.fp.count == 0 {
            // Only the head block can empty; it is left out, so that the tables are a
            // function of the records alone.
            self.txn.delete(table, &level_key(l, key)).map(drop)
        } else {
            self.txn.put(table, &level_key(l, key), &block.to_bytes())
        }
    }

    /// The block of level `l` holding `pk`. Keys come from the greatest down, so the
    /// cached block holds `pk` whenever it starts at or below it.
    fn containing(&mut self, l: u8, pk: &[u8]) -> Result<&mut Cached> {
        let at = usize::from(l) - 1;
        // `start <= 0x01 ‖ pk`, without building the key.
        let hit = matches!(&self.cache[at], Some(c) if c.start[0] == 0x00 || &c.start[1..] <= pk);
        if !hit {
            self.flush(l)?;
            let table = self.tables.table.as_str();
            let key = block_key(pk);
            let mut found = None;
            self.txn.for_each_in(
                table,
                prefixed(l, Bound::Unbounded, Bound::Included(&key)),
                Direction::Reverse,
                &mut |k, v| {
                    found = Some((k[1..].to_vec(), Block::from_bytes(table, k, v)?));
                    Ok(ControlFlow::Break(()))
                },
            )?;
            let (start, block) = found.unwrap_or_else(|| {
                (
                    HEAD.to_vec(),
                    Block {
                        fp: Fingerprint::default(),
                        level: u8::MAX,
                    },
                )
            });
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
        self.cache[at]
            .as_mut()
            .ok_or_else(|| NetabaseError::decode(&self.tables.table, pk, "lost block"))
    }

    /// A new key `pk` of level `level ≥ l` becomes a boundary of level `l`: the block
    /// holding it splits there.
    fn split(&mut self, l: u8, pk: &[u8], level: u8, hash: &[u8; 32]) -> Result<()> {
        let end = self.containing(l, pk)?.end.clone();
        // The new block: `pk` and what follows it up to the next boundary of level `l`
        // (the records after it, or the blocks of level `l - 1` from its own on).
        let mut fp = Fingerprint::default();
        let table = self.tables.table.as_str();
        if l == 1 {
            fp.add(&Fingerprint::one(hash));
            let upper = end
                .as_deref()
                .map_or(Bound::Unbounded, |e| Bound::Excluded(&e[1..]));
            self.txn.for_each_in(
                table,
                prefixed(ITEMS, Bound::Excluded(pk), upper),
                Direction::Forward,
                &mut |k, v| {
                    let e = Entry::from_bytes(table, k, v)?;
                    if e.level >= 1 {
                        return Ok(ControlFlow::Break(()));
                    }
                    fp.add(&Fingerprint::one(&e.hash));
                    Ok(ControlFlow::Continue(()))
                },
            )?;
        } else {
            self.flush(l - 1)?;
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
        }
        let mut moved = fp;
        moved.sub(&Fingerprint::one(hash));
        let c = self.containing(l, pk)?;
        c.block.fp.sub(&moved);
        c.dirty = true;
        c.end = Some(block_key(pk));
        self.write(l, &block_key(pk), Block { fp, level })
    }

    /// The key `pk`, a boundary of level `l`, is pruned: its block joins the one before.
    fn merge(&mut self, l: u8, pk: &[u8], hash: &[u8; 32]) -> Result<()> {
        let key = block_key(pk);
        let at = usize::from(l) - 1;
        let table = self.tables.table.as_str();
        let stored = level_key(l, &key);
        let block = match self.cache[at].take() {
            Some(c) if c.start == key => c.block,
            other => {
                self.cache[at] = other;
                self.flush(l)?;
                match self.txn.get(table, &stored)? {
                    Some(bytes) => Block::from_bytes(table, &stored, &bytes)?,
                    None => {
                        return Err(NetabaseError::decode(table, &stored, "missing sync block"));
                    }
                }
            }
        };
        self.txn.delete(table, &stored)?;
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
    for l in (1..=MAX_LEVEL).rev() {
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
            None if x.is_none() => return Ok(acc),
            // The head block is empty and no block of this level starts below `x`.
            None => return Ok(acc),
        }
    }
    let start = if lo.as_slice() == HEAD {
        Bound::Unbounded
    } else {
        Bound::Included(&lo[1..])
    };
    let end = match x {
        Some(x) => Bound::Excluded(x),
        None => Bound::Unbounded,
    };
    txn.for_each_in(
        table,
        prefixed(ITEMS, start, end),
        Direction::Forward,
        &mut |k, v| {
            acc.add(&Fingerprint::one(&Entry::from_bytes(table, k, v)?.hash));
            Ok(ControlFlow::Continue(()))
        },
    )?;
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
    for l in (1..=MAX_LEVEL).rev() {
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
    let start = if lo.as_slice() == HEAD {
        Bound::Unbounded
    } else {
        Bound::Included(&lo[1..])
    };
    let mut found = None;
    txn.for_each_in(
        table,
        prefixed(ITEMS, start, Bound::Unbounded),
        Direction::Forward,
        &mut |k, _| {
            if seen == rank {
                found = Some(k[1..].to_vec());
                return Ok(ControlFlow::Break(()));
            }
            seen += 1;
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(found)
}

/// The entries with keys in `[lower, upper)`, in key order.
pub(crate) fn entries_in<T: ReadTxn + ?Sized>(
    txn: &T,
    tables: &Tables,
    lower: &[u8],
    upper: Option<&[u8]>,
) -> Result<Vec<(Vec<u8>, Entry)>> {
    let table = tables.table.as_str();
    let mut out = Vec::new();
    txn.for_each_in(
        table,
        prefixed(
            ITEMS,
            Bound::Included(lower),
            upper.map_or(Bound::Unbounded, Bound::Excluded),
        ),
        Direction::Forward,
        &mut |k, v| {
            out.push((k[1..].to_vec(), Entry::from_bytes(table, k, v)?));
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
    txn.get(&tables.table, &item_key(pk))?
        .map(|bytes| Entry::from_bytes(&tables.table, pk, &bytes))
        .transpose()
}

/// Recomputes every block from the entries and compares with the stored blocks;
/// returns the first difference found.
pub(crate) fn check<T: ReadTxn + ?Sized>(txn: &T, tables: &Tables) -> Result<Option<String>> {
    let entries = entries_in(txn, tables, &[], None)?;
    for l in 1..=MAX_LEVEL {
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
        let table = tables.table.as_str();
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
                "level {l} of `{}` differs from its entries at block {first}",
                tables.table
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
            apply(&txn, &tables, changes)?;
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
