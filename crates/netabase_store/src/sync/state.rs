//! A store's sync state: which models are synced, the writer id, the clock; and the
//! commit hook that keeps every synced model's fingerprint tree in step with its
//! records inside the write transaction that changes them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::{Backend, Direction, RawRange, ReadTxn, WriteTxn, collect_range};
use crate::error::{NetabaseError, Result, SyncProblem};
use crate::schema::{ModelInfo, NetabaseDefinitionTrait};
use crate::typed::changes::{Change, ChangeSet};
use crate::typed::meta::META_TABLE;

use super::stamp::{Clock, Hlc, VersionStamp, WriterId};
use super::tree::{self, Entry, RecordHasher, Tables};

/// What [`crate::OpenOptions`] asks of sync.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOptions {
    pub(crate) all: bool,
    pub(crate) models: Vec<String>,
    pub(crate) writer: Option<WriterId>,
}

/// A synced model and its tables.
#[derive(Debug)]
pub(crate) struct SyncedModel {
    /// Its position in the definition.
    pub(crate) index: u16,
    pub(crate) info: ModelInfo,
    pub(crate) tables: Tables,
}

/// The sync state of an open store.
#[derive(Debug)]
pub(crate) struct SyncState {
    pub(crate) definition: &'static str,
    pub(crate) models: Vec<SyncedModel>,
    pub(crate) writer: WriterId,
    pub(crate) clock: Clock,
    /// The clock reading recorded in the meta table (milliseconds): every stamp handed
    /// out is below it, so a store reopened with its wall clock set back still stamps
    /// above everything it wrote. Raised a second ahead when the clock reaches it, so
    /// that the meta table is written about once a second, not at every commit.
    ceiling: AtomicU64,
}

/// How far ahead of the clock the recorded ceiling is set.
const CEILING_AHEAD_MS: u64 = 1_000;

impl SyncState {
    /// The synced model whose primary table is `table`.
    pub(crate) fn model(&self, table: &str) -> Option<&SyncedModel> {
        self.models.iter().find(|m| m.info.table == table)
    }

    /// The synced model at position `index` of the definition.
    pub(crate) fn by_index(&self, index: u16) -> Option<&SyncedModel> {
        self.models.iter().find(|m| m.index == index)
    }

    /// The state of `definition`'s synced `models`, stamping as `writer`, its clock
    /// starting from the reading recorded in the meta table (`stored_clock`), if any.
    fn new(
        definition: &'static str,
        models: Vec<SyncedModel>,
        writer: WriterId,
        stored_clock: Option<&[u8]>,
    ) -> Self {
        let clock = Clock::new(stored_clock.and_then(decode_hlc).unwrap_or_default());
        let ceiling = AtomicU64::new(clock.last().millis);
        SyncState {
            definition,
            models,
            writer,
            clock,
            ceiling,
        }
    }

    fn clock_key(&self) -> Vec<u8> {
        clock_key(self.definition)
    }

    /// Records in `txn` a clock ceiling [`CEILING_AHEAD_MS`] past the clock's last
    /// reading (every later stamp stays above what was handed out, across restarts),
    /// and remembers it.
    fn raise_ceiling<T: WriteTxn + ?Sized>(&self, txn: &T) -> Result<()> {
        let ceiling = self.clock.last().millis.saturating_add(CEILING_AHEAD_MS);
        txn.put(
            META_TABLE,
            &self.clock_key(),
            &encode_hlc(Hlc {
                millis: ceiling,
                counter: 0,
            }),
        )?;
        self.ceiling.store(ceiling, Ordering::Relaxed);
        Ok(())
    }
}

fn encode_hlc(hlc: Hlc) -> Vec<u8> {
    let mut out = hlc.millis.to_be_bytes().to_vec();
    out.extend_from_slice(&hlc.counter.to_be_bytes());
    out
}

fn decode_hlc(bytes: &[u8]) -> Option<Hlc> {
    Some(Hlc {
        millis: u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?),
        counter: u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
    })
}

/// The meta key listing the synced models of `definition`: present once sync was turned
/// on for a model of it (every write path that cannot keep sync metadata checks it).
pub(crate) fn models_key(definition: &str) -> Vec<u8> {
    format!("sync/{definition}/models").into_bytes()
}

/// The meta key of `definition`'s writer id.
fn writer_key(definition: &str) -> Vec<u8> {
    format!("sync/{definition}/writer").into_bytes()
}

/// The meta key of `definition`'s recorded clock ceiling.
fn clock_key(definition: &str) -> Vec<u8> {
    format!("sync/{definition}/clock").into_bytes()
}

/// Reads the sync state recorded in the database, turns sync on for the models
/// `options` adds (building their fingerprint trees from the stored records), and
/// returns the state, or `None` when no model is synced.
///
/// Sync is sticky: a model recorded as synced stays synced when the store is opened
/// without asking for it, so that no write can leave its fingerprints behind.
pub(crate) fn open<D: NetabaseDefinitionTrait, B: Backend>(
    backend: &B,
    write: bool,
    options: SyncOptions,
) -> Result<Option<Arc<SyncState>>> {
    let models_key = models_key(D::NAME);
    let writer_key = writer_key(D::NAME);
    let clock_key = clock_key(D::NAME);
    let (recorded, stored_writer, stored_clock) = {
        let txn = backend.begin_read()?;
        (
            txn.get(META_TABLE, &models_key)?,
            txn.get(META_TABLE, &writer_key)?,
            txn.get(META_TABLE, &clock_key)?,
        )
    };
    let recorded: Vec<String> = recorded
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for name in &options.models {
        if !D::MODELS.iter().any(|m| m.name == name) {
            return Err(NetabaseError::sync(
                D::NAME,
                Some(name),
                SyncProblem::UnknownModel,
                "no model of this name in the definition",
            ));
        }
    }
    let wanted = |m: &ModelInfo| {
        options.all
            || options.models.iter().any(|n| n == m.name)
            || recorded.iter().any(|n| n == m.name)
    };
    let mut models = Vec::new();
    let mut new = Vec::new();
    for (index, info) in D::MODELS.iter().enumerate() {
        if !wanted(info) {
            continue;
        }
        if !recorded.iter().any(|n| n == info.name) {
            new.push(models.len());
        }
        models.push(SyncedModel {
            index: u16::try_from(index).unwrap_or(u16::MAX),
            info: *info,
            tables: Tables::of(info.table),
        });
    }
    if models.is_empty() {
        return Ok(None);
    }
    let stored_writer = stored_writer.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
    let writer = options
        .writer
        .or(stored_writer.map(WriterId))
        .unwrap_or_else(WriterId::random);
    let state = SyncState::new(D::NAME, models, writer, stored_clock.as_deref());
    if new.is_empty() && stored_writer == Some(writer.0) {
        return Ok(Some(Arc::new(state)));
    }
    if !write {
        return Err(NetabaseError::sync(
            D::NAME,
            None,
            SyncProblem::ReadOnly,
            "turning sync on (or setting the writer id) writes to the store, which a read-only \
             store cannot do: open the database writable once",
        ));
    }
    let txn = backend.begin_write()?;
    for &at in &new {
        let model = &state.models[at];
        txn.clear(&model.tables.table)?;
        let stamp = VersionStamp {
            hlc: state.clock.now(),
            writer,
        };
        let records = collect_range(&txn, model.info.table, RawRange::all(), Direction::Forward)?;
        let mut hasher = RecordHasher::default();
        let changes: Vec<(&[u8], Option<Entry>)> = records
            .iter()
            .map(|(pk, value)| (pk.as_slice(), Some(hasher.entry(pk, stamp, Some(value)))))
            .collect();
        tree::apply(&txn, &model.tables, &changes)?;
    }
    let names: Vec<&str> = state.models.iter().map(|m| m.info.name).collect();
    txn.put(META_TABLE, &models_key, names.join("\n").as_bytes())?;
    txn.put(META_TABLE, &writer_key, &writer.0)?;
    state.raise_ceiling(&txn)?;
    txn.commit()?;
    Ok(Some(Arc::new(state)))
}

/// The sync state recorded in the database for `definition`, for a writer that knows
/// the models only by their [`ModelInfo`] (an import without the Rust types): the
/// synced models among `models`, the stored writer id and clock. Nothing is written;
/// `None` when no model of the definition is synced.
///
/// The models' positions (used only by the reconciliation protocol, which such a
/// writer does not run) are their positions in `models`.
///
/// # Errors
/// [`NetabaseError::Sync`] ([`SyncProblem::Damaged`]) when models are recorded as
/// synced but the writer id is missing; [`NetabaseError::Backend`] on engine failure.
pub(crate) fn recorded<B: Backend>(
    backend: &B,
    definition: &'static str,
    models: &[&'static ModelInfo],
) -> Result<Option<Arc<SyncState>>> {
    let (names, writer, clock) = {
        let txn = backend.begin_read()?;
        (
            txn.get(META_TABLE, &models_key(definition))?,
            txn.get(META_TABLE, &writer_key(definition))?,
            txn.get(META_TABLE, &clock_key(definition))?,
        )
    };
    let Some(names) = names else {
        return Ok(None);
    };
    let names = String::from_utf8_lossy(&names).into_owned();
    let Some(writer) = writer.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()) else {
        return Err(NetabaseError::sync(
            definition,
            None,
            SyncProblem::Damaged,
            "models are recorded as synced but the writer id is missing",
        ));
    };
    let synced = models
        .iter()
        .enumerate()
        .filter(|(_, info)| names.lines().any(|n| n == info.name))
        .map(|(index, info)| SyncedModel {
            index: u16::try_from(index).unwrap_or(u16::MAX),
            info: **info,
            tables: Tables::of(info.table),
        })
        .collect();
    Ok(Some(Arc::new(SyncState::new(
        definition,
        synced,
        WriterId(writer),
        clock.as_deref(),
    ))))
}

/// Stamps of received records, by (primary table, key): (stamp, tombstone).
type ReceivedStamps = HashMap<(&'static str, Vec<u8>), (VersionStamp, bool)>;

/// The sync side of one write transaction: stamps to give the records it writes on
/// behalf of another replica, and the hook run at its commit.
pub(crate) struct SyncWrite {
    pub(crate) state: Arc<SyncState>,
    /// Stamps given to the next write of a key (table, key) → (stamp, tombstone).
    stamps: RefCell<ReceivedStamps>,
}

impl SyncWrite {
    pub(crate) fn new(state: Arc<SyncState>) -> Self {
        SyncWrite {
            state,
            stamps: RefCell::new(HashMap::new()),
        }
    }

    /// The record at `key` of `table` is written next with `stamp` (a record received
    /// from another replica), not with a new stamp of this store's clock. A tombstone
    /// is kept even when there is nothing to remove.
    pub(crate) fn stamp(&self, table: &'static str, key: Vec<u8>, stamp: VersionStamp, tomb: bool) {
        self.stamps.borrow_mut().insert((table, key), (stamp, tomb));
    }

    /// The stamp given to the next write of `key` of `table` in this transaction, if
    /// any: the version a stamped write made earlier in the transaction.
    pub(crate) fn pending(&self, table: &'static str, key: &[u8]) -> Option<VersionStamp> {
        self.stamps
            .borrow()
            .get(&(table, key.to_vec()))
            .map(|(stamp, _)| *stamp)
    }

    /// Forgets [`SyncWrite::stamp`] for a write that was refused.
    pub(crate) fn forget(&self, table: &'static str, key: &[u8]) {
        self.stamps.borrow_mut().remove(&(table, key.to_vec()));
    }

    /// The commit hook: brings the sync entries and fingerprint blocks of every synced
    /// model in step with what the transaction changed, in the same transaction.
    pub(crate) fn before_commit<T: WriteTxn + ?Sized>(
        &self,
        txn: &T,
        set: &ChangeSet,
    ) -> Result<()> {
        let mut stamps = self.stamps.take();
        if set.is_empty() && stamps.is_empty() {
            return Ok(());
        }
        let state = &self.state;
        // Every local write of one transaction shares one stamp.
        let mut fresh: Option<VersionStamp> = None;
        let mut stamp_for =
            |stamps: &mut ReceivedStamps, table: &'static str, key: &[u8]| -> VersionStamp {
                // Looked up, not taken: a key changed twice in the transaction keeps
                // the stamp given last, for its last change (the one that counts).
                let received = if stamps.is_empty() {
                    None
                } else {
                    stamps.get(&(table, key.to_vec())).copied()
                };
                match received {
                    Some((stamp, _)) => stamp,
                    None => *fresh.get_or_insert_with(|| VersionStamp {
                        hlc: state.clock.now(),
                        writer: state.writer,
                    }),
                }
            };
        let mut hasher = RecordHasher::default();
        let mut changed = false;
        for model in &state.models {
            let table = model.info.table;
            // In the order made: a later change of a key replaces an earlier one.
            let mut changes: Vec<(Cow<'_, [u8]>, Entry)> = Vec::new();
            for change in set.changes().iter().filter(|c| c.table() == table) {
                match change {
                    Change::Cleared { .. } => {
                        for (pk, e) in tree::entries_in(txn, &model.tables, &[], None)? {
                            if !e.tombstone {
                                let stamp = stamp_for(&mut stamps, table, &pk);
                                let entry = hasher.entry(&pk, stamp, None);
                                changes.push((Cow::Owned(pk), entry));
                            }
                        }
                    }
                    Change::Put { key, new, .. } => {
                        let stamp = stamp_for(&mut stamps, table, key);
                        let entry = hasher.entry(key, stamp, Some(new));
                        changes.push((Cow::Borrowed(key.as_slice()), entry));
                    }
                    Change::Removed { key, .. } => {
                        let stamp = stamp_for(&mut stamps, table, key);
                        let entry = hasher.entry(key, stamp, None);
                        changes.push((Cow::Borrowed(key.as_slice()), entry));
                    }
                }
            }
            // Tombstones received for keys that held nothing here still count.
            if !stamps.is_empty() {
                let pending: Vec<Vec<u8>> = stamps
                    .iter()
                    .filter(|((t, _), (_, tomb))| *t == table && *tomb)
                    .map(|((_, k), _)| k.clone())
                    .collect();
                for key in pending {
                    if let Some((stamp, _)) = stamps.remove(&(table, key.clone())) {
                        let entry = hasher.entry(&key, stamp, None);
                        changes.push((Cow::Owned(key), entry));
                    }
                }
            }
            changed |= !changes.is_empty();
            let sorted = in_key_order(&changes);
            tree::apply(txn, &model.tables, &sorted)?;
        }
        if changed && state.clock.last().millis >= state.ceiling.load(Ordering::Relaxed) {
            // Raised before the commit is known to succeed; a failed commit resets it
            // (`commit_failed`), so that the next commit records it again.
            state.raise_ceiling(txn)?;
        }
        Ok(())
    }
}

/// The first eight bytes of a key, big-endian (zero-padded): sorts like the key
/// wherever two keys differ within them.
fn prefix_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// Sorts `(prefix, position)` pairs made in ascending position order by prefix, then
/// position: a least-significant-byte-first radix sort (stable, so positions stay in
/// order), skipping the bytes that every prefix shares.
fn radix_sort(items: &mut Vec<(u64, usize)>) {
    if items.len() < 64 {
        items.sort_unstable();
        return;
    }
    // Every byte's counts in one pass.
    let mut counts = vec![[0usize; 256]; 8];
    for (p, _) in items.iter() {
        for (byte, c) in counts.iter_mut().enumerate() {
            c[((p >> (8 * byte)) & 0xff) as usize] += 1;
        }
    }
    let mut spare = vec![(0u64, 0usize); items.len()];
    for (byte, c) in counts.iter_mut().enumerate() {
        if c.contains(&items.len()) {
            continue;
        }
        let mut at = 0;
        for slot in c.iter_mut() {
            let n = *slot;
            *slot = at;
            at += n;
        }
        for item in items.iter() {
            let digit = ((item.0 >> (8 * byte)) & 0xff) as usize;
            spare[c[digit]] = *item;
            c[digit] += 1;
        }
        std::mem::swap(items, &mut spare);
    }
}

/// `changes` (in the order made) by ascending key, the last change of each key only.
fn in_key_order<'a>(changes: &'a [(Cow<'_, [u8]>, Entry)]) -> Vec<(&'a [u8], Option<Entry>)> {
    let sorted = changes.windows(2).all(|w| w[0].0 < w[1].0);
    if sorted {
        return changes.iter().map(|(k, e)| (&**k, Some(*e))).collect();
    }
    // Sorted by the keys' first eight bytes as integers and by when the change was made
    // (plain integer pairs: cheap to compare), then runs of equal first bytes by key:
    // for integer keys there are none.
    let mut order: Vec<(u64, usize)> = changes
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (prefix_of(k), i))
        .collect();
    radix_sort(&mut order);
    let mut from = 0;
    while from < order.len() {
        let mut to = from + 1;
        while to < order.len() && order[to].0 == order[from].0 {
            to += 1;
        }
        if to - from > 1 {
            order[from..to]
                .sort_unstable_by(|a, b| changes[a.1].0.cmp(&changes[b.1].0).then(a.1.cmp(&b.1)));
        }
        from = to;
    }
    let mut out: Vec<(&[u8], Option<Entry>)> = Vec::with_capacity(order.len());
    for (_, i) in order {
        let (key, entry) = (&*changes[i].0, changes[i].1);
        match out.last_mut() {
            Some(last) if last.0 == key => last.1 = Some(entry),
            _ => out.push((key, Some(entry))),
        }
    }
    out
}

impl SyncWrite {
    /// The backend commit failed: the ceiling raised by [`SyncWrite::before_commit`]
    /// may not be recorded, so the next commit records one again.
    pub(crate) fn commit_failed(&self) {
        self.state.ceiling.store(0, Ordering::Relaxed);
    }
}

/// Brings the sync metadata of every synced model back in step with its records, in
/// one write transaction, as if the writes that bypassed it had gone through the write
/// pipeline: a record without its entry, or whose stored value is not the version its
/// entry fingerprints, gets a new version stamped now by this store; a live entry whose
/// record is gone becomes a tombstone stamped now. A tree whose blocks disagree with
/// its entries is rebuilt from the entries. Returns how many entries were written.
///
/// # Errors
/// [`NetabaseError::Decode`] when a sync table does not decode (nothing is written);
/// [`NetabaseError::Backend`] on engine failure.
pub(crate) fn repair<B: Backend>(backend: &B, state: &SyncState) -> Result<u64> {
    let txn = backend.begin_write()?;
    let stamp = VersionStamp {
        hlc: state.clock.now(),
        writer: state.writer,
    };
    let mut hasher = RecordHasher::default();
    let mut written = 0u64;
    for model in &state.models {
        if tree::check(&txn, &model.tables)?.is_some() {
            // The entries are kept; every block is recomputed from them.
            let entries = tree::entries_in(&txn, &model.tables, &[], None)?;
            txn.clear(&model.tables.table)?;
            let all: Vec<(&[u8], Option<Entry>)> = entries
                .iter()
                .map(|(pk, e)| (pk.as_slice(), Some(*e)))
                .collect();
            tree::apply(&txn, &model.tables, &all)?;
            written += all.len() as u64;
        }
        let mut problems: Vec<Vec<u8>> =
            tree::check_records(&txn, &model.tables, model.info.table)?
                .into_iter()
                .map(|(pk, _)| pk)
                .collect();
        problems.sort_unstable();
        problems.dedup();
        let mut entries = Vec::with_capacity(problems.len());
        for pk in &problems {
            let value = txn.get(model.info.table, pk)?;
            entries.push(hasher.entry(pk, stamp, value.as_deref()));
        }
        let changes: Vec<(&[u8], Option<Entry>)> = problems
            .iter()
            .zip(entries)
            .map(|(pk, e)| (pk.as_slice(), Some(e)))
            .collect();
        tree::apply(&txn, &model.tables, &changes)?;
        written += changes.len() as u64;
    }
    if written > 0 {
        state.raise_ceiling(&txn)?;
    }
    txn.commit()?;
    Ok(written)
}

/// Removes the tombstones of every synced model older than `cutoff` (milliseconds since
/// the Unix epoch); returns how many.
pub(crate) fn prune<B: Backend>(backend: &B, state: &SyncState, cutoff: u64) -> Result<u64> {
    let txn = backend.begin_write()?;
    let mut pruned = 0;
    for model in &state.models {
        let entries = tree::entries_in(&txn, &model.tables, &[], None)?;
        let changes: Vec<(&[u8], Option<Entry>)> = entries
            .iter()
            .filter(|(_, e)| e.tombstone && e.stamp.hlc.millis < cutoff)
            .map(|(pk, _)| (pk.as_slice(), None))
            .collect();
        pruned += changes.len() as u64;
        tree::apply(&txn, &model.tables, &changes)?;
    }
    txn.commit()?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::stamp::{Hlc, VersionStamp, WriterId};
    use crate::sync::tree::RecordHasher;

    #[test]
    fn changes_come_out_in_key_order_with_the_last_change_of_each_key() {
        let mut hasher = RecordHasher::default();
        let mut x: u64 = 3;
        for n in [0usize, 1, 5, 63, 64, 500, 3000] {
            let mut changes: Vec<(Cow<'_, [u8]>, Entry)> = Vec::new();
            let mut expected: std::collections::BTreeMap<Vec<u8>, Entry> = Default::default();
            for i in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Keys of 0 to 11 bytes, many sharing their first eight bytes, some
                // changed twice.
                let len = (x % 12) as usize;
                let mut key = (x % 97).to_be_bytes().to_vec();
                key.extend_from_slice(&x.to_le_bytes()[..4]);
                key.truncate(len);
                let stamp = VersionStamp {
                    hlc: Hlc {
                        millis: i as u64,
                        counter: 0,
                    },
                    writer: WriterId([0; 32]),
                };
                let entry = hasher.entry(&key, stamp, Some(b"v"));
                expected.insert(key.clone(), entry);
                changes.push((Cow::Owned(key), entry));
            }
            let sorted = in_key_order(&changes);
            let got: Vec<(Vec<u8>, Entry)> = sorted
                .iter()
                .map(|(k, e)| (k.to_vec(), e.unwrap_or_else(|| unreachable!())))
                .collect();
            let want: Vec<(Vec<u8>, Entry)> = expected.into_iter().collect();
            assert_eq!(got, want, "{n} changes");
        }
    }
}
