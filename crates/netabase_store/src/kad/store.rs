//! [`KadStore`]: libp2p's `RecordStore` over the backend trait.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use libp2p::PeerId;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use thiserror::Error;

use super::encoding::{StoredProvider, StoredRecord, WallTime, decode, encode};
use super::{PROVIDED_TABLE, PROVIDERS_TABLE, RECORDS_TABLE};
use crate::backend::{Backend, Direction, RawRange, ReadTxn, WriteTxn, collect_range};
use crate::error::NetabaseError;
use crate::schema::NetabaseDefinitionTrait;
use crate::typed::txn::{ReadWrite, TxnGuard};

/// Limits of a [`KadStore`]; the defaults are those of libp2p's `MemoryStore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KadStoreConfig {
    /// The maximum number of value records (expired records count until they are swept;
    /// a put that hits the limit sweeps them first).
    pub max_records: usize,
    /// The maximum size of a record's value, in bytes (inclusive).
    pub max_value_bytes: usize,
    /// The maximum number of providers kept per key; once reached, new providers of the
    /// key are ignored and the oldest are kept, which resists provider flooding.
    pub max_providers_per_key: usize,
    /// The maximum number of distinct keys with provider records (local or remote), as
    /// in libp2p's `MemoryStore`.
    pub max_provided_keys: usize,
}

impl Default for KadStoreConfig {
    fn default() -> Self {
        KadStoreConfig {
            max_records: 1024,
            max_value_bytes: 65 * 1024,
            max_providers_per_key: libp2p::kad::K_VALUE.get(),
            max_provided_keys: 1024,
        }
    }
}

/// Why a [`KadStore`] operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KadStoreError {
    /// A limit of [`KadStoreConfig`] was reached; nothing was written.
    #[error("kad record store limit: {0}")]
    Limit(#[from] store::Error),
    /// The backend failed, or stored bytes did not decode.
    #[error("kad record store: {0}")]
    Storage(#[from] NetabaseError),
}

/// What became of one record of [`KadStore::try_put_batch`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BatchPut {
    /// Written, and durable once the batch returned.
    Stored,
    /// Declined by the batch's `accept` check; nothing written.
    Declined,
    /// A limit of [`KadStoreConfig`] was reached; nothing written.
    Limit(store::Error),
}

/// What [`KadStore::sweep_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired value records removed.
    pub records: usize,
    /// Expired provider records removed (local ones included).
    pub providers: usize,
}

/// A persistent Kademlia record store in the tables `__netabase/kad/*` of a backend.
///
/// It keeps the rules of libp2p's `MemoryStore` (limits, providers per key, local
/// provided records) and adds persistence: records, their publishers and their expiry
/// (as wall-clock time) survive a restart. Expired records and provider records are never
/// returned; [`KadStore::sweep_expired`] deletes them.
///
/// The `try_*` methods report every failure. The [`RecordStore`] methods cannot report
/// a backend failure (the trait has no such error), so there a failure is counted (see
/// [`KadStore::backend_errors`]), reads return nothing, and writes return the
/// [`store::Error`] closest in meaning (`MaxRecords` for records, `MaxProvidedKeys` for
/// providers). None of them panics.
///
/// The store owns its backend. To share one database with a typed
/// [`NetabaseStore`](crate::NetabaseStore), give both a handle of a backend whose clones
/// share the database (for example [`MemoryBackend`](crate::backend::memory::MemoryBackend)).
///
/// # Examples
/// ```
/// use libp2p::kad::store::RecordStore;
/// use libp2p::kad::{Record, RecordKey};
/// use netabase_store::backend::memory::MemoryBackend;
/// use netabase_store::kad::{KadStore, KadStoreConfig};
///
/// let mut store = KadStore::new(MemoryBackend::new(), libp2p::PeerId::random(), KadStoreConfig::default());
/// let key = RecordKey::new(&b"greeting");
/// store.put(Record::new(key.clone(), b"hello".to_vec()))?;
/// assert_eq!(store.get(&key).map(|r| r.value.clone()), Some(b"hello".to_vec()));
/// # Ok::<(), libp2p::kad::store::Error>(())
/// ```
pub struct KadStore<B> {
    backend: B,
    local_id: PeerId,
    config: KadStoreConfig,
    backend_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for KadStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KadStore")
            .field("backend", &self.backend)
            .field("local_id", &self.local_id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn encode_error(source: postcard::Error) -> NetabaseError {
    NetabaseError::encode("kad record", source)
}

fn decode_list(key: &[u8], bytes: Option<Vec<u8>>) -> Result<Vec<StoredProvider>, NetabaseError> {
    match bytes {
        None => Ok(Vec::new()),
        Some(bytes) => decode(&bytes).map_err(|r| NetabaseError::decode(PROVIDERS_TABLE, key, r)),
    }
}

impl<B: Backend> KadStore<B> {
    /// A record store over `backend` for the node `local_id`.
    pub fn new(backend: B, local_id: PeerId, config: KadStoreConfig) -> Self {
        KadStore {
            backend,
            local_id,
            config,
            backend_errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The backend under the store.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The limits of the store.
    pub fn config(&self) -> &KadStoreConfig {
        &self.config
    }

    /// The peer whose provider records [`RecordStore::provided`] returns.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_id
    }

    /// How many backend failures the [`RecordStore`] methods have swallowed so far.
    pub fn backend_errors(&self) -> u64 {
        self.backend_errors.load(Ordering::Relaxed)
    }

    /// The message of the last failure swallowed by a [`RecordStore`] method, taken out.
    pub fn take_last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The records of a scan that decoded and are live, as owned `Cow`s for libp2p's
    /// iterators; a failed scan or entry is counted and reported, never unwound.
    fn owned_noting_errors<'a, T: Clone>(
        &self,
        scanned: Result<Vec<Result<Option<T>, NetabaseError>>, NetabaseError>,
    ) -> std::vec::IntoIter<Cow<'a, T>> {
        let scanned = scanned.unwrap_or_else(|e| {
            self.note(&e.into());
            Vec::new()
        });
        let mut out = Vec::with_capacity(scanned.len());
        for record in scanned {
            match record {
                Ok(Some(record)) => out.push(Cow::Owned(record)),
                Ok(None) => {}
                Err(e) => self.note(&e.into()),
            }
        }
        out.into_iter()
    }

    fn note(&self, error: &KadStoreError) {
        self.backend_errors.fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    /// The record at `key`, unless it is absent or expired.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] if the backend fails or the stored bytes do not decode.
    pub fn try_get(&self, key: &RecordKey) -> Result<Option<Record>, KadStoreError> {
        let txn = self.backend.begin_read()?;
        let Some(bytes) = txn.get(RECORDS_TABLE, key.as_ref())? else {
            return Ok(None);
        };
        let stored: StoredRecord =
            decode(&bytes).map_err(|r| NetabaseError::decode(RECORDS_TABLE, key.as_ref(), r))?;
        if stored.is_expired(WallTime::now()) {
            return Ok(None);
        }
        let record = stored
            .into_record(key.clone())
            .map_err(|r| NetabaseError::decode(RECORDS_TABLE, key.as_ref(), r))?;
        Ok(Some(record))
    }

    /// Stores `record`, replacing the record with the same key.
    ///
    /// # Errors
    /// [`KadStoreError::Limit`] with [`store::Error::ValueTooLarge`] if the value is
    /// larger than [`KadStoreConfig::max_value_bytes`], or [`store::Error::MaxRecords`]
    /// if the key is new and the store is full even after sweeping expired records;
    /// [`KadStoreError::Storage`] on backend failure. Nothing is written on error.
    pub fn try_put(&self, record: &Record) -> Result<(), KadStoreError> {
        let bytes = self.encode_checked(record)?;
        let txn = self.backend.begin_write()?;
        put_encoded(&txn, record.key.as_ref(), &bytes, self.config.max_records)??;
        txn.commit()?;
        Ok(())
    }

    /// Stores `records` in one write transaction (one durable commit for all of them):
    /// the group commit of a node's inbound records. Each record is first shown to
    /// `accept` with the unexpired record it would replace, if any; a record `accept`
    /// declines, or that hits a limit, is skipped and the others are still written. A
    /// record later in `records` replaces an earlier one with the same key.
    ///
    /// Returns one [`BatchPut`] per record, in order, once the transaction is committed.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] if the backend fails or the commit fails: then nothing
    /// of the batch is written.
    pub fn try_put_batch(
        &self,
        records: &[Record],
        mut accept: impl FnMut(&Record, Option<&Record>) -> bool,
    ) -> Result<Vec<BatchPut>, KadStoreError> {
        let now = WallTime::now();
        let mut outcomes = vec![BatchPut::Stored; records.len()];
        // Encode first: a value over the limit is refused before anything is written.
        let mut encoded = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            match self.encode_checked(record) {
                Ok(bytes) => encoded.push((i, bytes)),
                Err(KadStoreError::Limit(limit)) => outcomes[i] = BatchPut::Limit(limit),
                Err(e) => return Err(e),
            }
        }
        let txn = self.backend.begin_write()?;
        let stored = txn.len(RECORDS_TABLE)?;
        let room = u64::try_from(self.config.max_records).unwrap_or(u64::MAX);
        let distinct = {
            let mut keys = std::collections::HashSet::with_capacity(encoded.len());
            encoded
                .iter()
                .all(|(i, _)| keys.insert(records[*i].key.as_ref()))
        };
        let fits = stored.saturating_add(encoded.len() as u64) <= room;
        if fits && distinct {
            // The common case: write every record in one pass (one table open, one
            // B-tree operation each) and put back the few that `accept` declines once
            // the value they replaced is known.
            let entries: Vec<(&[u8], &[u8])> = encoded
                .iter()
                .map(|(i, bytes)| (records[*i].key.as_ref(), bytes.as_slice()))
                .collect();
            let mut undo: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
            txn.put_each(RECORDS_TABLE, &entries, &mut |position, old| {
                let index = encoded[position].0;
                let record = &records[index];
                let existing = old.and_then(|bytes| live_record(record.key.clone(), bytes, now));
                if !accept(record, existing.as_ref()) {
                    undo.push((index, old.map(<[u8]>::to_vec)));
                }
                Ok(())
            })?;
            for (index, old) in undo {
                let key = records[index].key.as_ref();
                match old {
                    Some(bytes) => txn.put(RECORDS_TABLE, key, &bytes)?,
                    None => {
                        txn.delete(RECORDS_TABLE, key)?;
                    }
                }
                outcomes[index] = BatchPut::Declined;
            }
        } else {
            // Near the record limit, or a key twice in the batch: one record at a time.
            for (index, bytes) in &encoded {
                let record = &records[*index];
                let key = record.key.as_ref();
                let existing = txn
                    .get(RECORDS_TABLE, key)?
                    .and_then(|old| live_record(record.key.clone(), &old, now));
                if !accept(record, existing.as_ref()) {
                    outcomes[*index] = BatchPut::Declined;
                    continue;
                }
                if let Err(limit) = put_encoded(&txn, key, bytes, self.config.max_records)? {
                    outcomes[*index] = BatchPut::Limit(limit);
                }
            }
        }
        txn.commit()?;
        Ok(outcomes)
    }

    fn encode_checked(&self, record: &Record) -> Result<Vec<u8>, KadStoreError> {
        if record.value.len() > self.config.max_value_bytes {
            return Err(store::Error::ValueTooLarge.into());
        }
        Ok(encode(&StoredRecord::from_record(record)).map_err(encode_error)?)
    }

    /// [`KadStore::try_put`] inside the typed write transaction `txn` of a
    /// [`NetabaseStore`](crate::NetabaseStore) on the same database: the record is
    /// applied by `txn`'s commit, together with the models written in it, or not at all.
    ///
    /// # Errors
    /// As [`KadStore::try_put`]. A limit leaves `txn` usable; a backend failure poisons
    /// it.
    pub fn put_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        record: &Record,
    ) -> Result<(), KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        let bytes = self.encode_checked(record)?;
        let max = self.config.max_records;
        txn.writer()
            .with_raw(|raw| put_encoded(raw, record.key.as_ref(), &bytes, max))??;
        Ok(())
    }

    /// [`KadStore::try_remove`] inside the typed write transaction `txn` (see
    /// [`KadStore::put_in`]).
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure (which poisons `txn`).
    pub fn remove_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        key: &RecordKey,
    ) -> Result<bool, KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        Ok(txn
            .writer()
            .with_raw(|raw| raw.delete(RECORDS_TABLE, key.as_ref()))?)
    }

    /// Removes the record at `key`; returns whether it was there.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn try_remove(&self, key: &RecordKey) -> Result<bool, KadStoreError> {
        let txn = self.backend.begin_write()?;
        let removed = txn.delete(RECORDS_TABLE, key.as_ref())?;
        txn.commit()?;
        Ok(removed)
    }

    /// Every unexpired record, in key order.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] if the backend fails or a stored record does not decode.
    pub fn try_records(&self) -> Result<Vec<Record>, KadStoreError> {
        self.scan_records()?
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()
            .map_err(KadStoreError::from)
    }

    /// Every record, each decoded on its own: `Ok(None)` for an expired one.
    fn scan_records(&self) -> Result<Vec<Result<Option<Record>, NetabaseError>>, NetabaseError> {
        let now = WallTime::now();
        let entries = collect_range(
            &self.backend.begin_read()?,
            RECORDS_TABLE,
            RawRange::all(),
            Direction::Forward,
        )?;
        let mut out = Vec::new();
        for (key, bytes) in entries {
            let decoded = decode::<StoredRecord>(&bytes).and_then(|stored| {
                if stored.is_expired(now) {
                    Ok(None)
                } else {
                    stored.into_record(RecordKey::from(key.clone())).map(Some)
                }
            });
            out.push(decoded.map_err(|r| NetabaseError::decode(RECORDS_TABLE, &key, r)));
        }
        Ok(out)
    }

    /// The number of stored value records, expired ones included until swept.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn record_count(&self) -> Result<u64, KadStoreError> {
        Ok(self.backend.begin_read()?.len(RECORDS_TABLE)?)
    }

    /// Adds a provider record. A provider already known for the key is updated in place;
    /// a new provider of a key that already has
    /// [`KadStoreConfig::max_providers_per_key`] unexpired providers is ignored (the
    /// oldest are kept).
    ///
    /// # Errors
    /// [`KadStoreError::Limit`] with [`store::Error::MaxProvidedKeys`] if the key is new
    /// and [`KadStoreConfig::max_provided_keys`] keys already have providers;
    /// [`KadStoreError::Storage`] on backend failure. Nothing is written on error.
    pub fn try_add_provider(&self, record: &ProviderRecord) -> Result<(), KadStoreError> {
        let key = record.key.as_ref();
        let now = WallTime::now();
        let txn = self.backend.begin_write()?;
        let mut list = decode_list(key, txn.get(PROVIDERS_TABLE, key)?)?;
        if list.is_empty() && table_full(&txn, PROVIDERS_TABLE, self.config.max_provided_keys)? {
            sweep_providers(&txn, now)?;
            if table_full(&txn, PROVIDERS_TABLE, self.config.max_provided_keys)? {
                return Err(store::Error::MaxProvidedKeys.into());
            }
        }
        // Expired providers free their slot before the cap is applied.
        list.retain(|p| !p.is_expired(now));
        let stored = StoredProvider::from_record(record);
        if let Some(existing) = list.iter_mut().find(|p| p.provider == stored.provider) {
            *existing = stored.clone();
        } else if list.len() >= self.config.max_providers_per_key {
            return Ok(());
        } else {
            list.push(stored.clone());
        }
        txn.put(PROVIDERS_TABLE, key, &encode(&list).map_err(encode_error)?)?;
        if record.provider == self.local_id {
            txn.put(PROVIDED_TABLE, key, &encode(&stored).map_err(encode_error)?)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The unexpired providers of `key`, oldest first.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] if the backend fails or the stored list does not decode.
    pub fn try_providers(&self, key: &RecordKey) -> Result<Vec<ProviderRecord>, KadStoreError> {
        let now = WallTime::now();
        let txn = self.backend.begin_read()?;
        let list = decode_list(key.as_ref(), txn.get(PROVIDERS_TABLE, key.as_ref())?)?;
        list.iter()
            .filter(|p| !p.is_expired(now))
            .map(|p| {
                p.to_record(key)
                    .map_err(|r| NetabaseError::decode(PROVIDERS_TABLE, key.as_ref(), r).into())
            })
            .collect()
    }

    /// The unexpired provider records whose provider is the local peer, in key order.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] if the backend fails or a stored record does not decode.
    pub fn try_provided(&self) -> Result<Vec<ProviderRecord>, KadStoreError> {
        self.scan_provided()?
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()
            .map_err(KadStoreError::from)
    }

    fn scan_provided(
        &self,
    ) -> Result<Vec<Result<Option<ProviderRecord>, NetabaseError>>, NetabaseError> {
        let now = WallTime::now();
        let entries = collect_range(
            &self.backend.begin_read()?,
            PROVIDED_TABLE,
            RawRange::all(),
            Direction::Forward,
        )?;
        let mut out = Vec::new();
        for (key, bytes) in entries {
            let decoded = decode::<StoredProvider>(&bytes).and_then(|stored| {
                if stored.is_expired(now) {
                    return Ok(None);
                }
                let record = stored.to_record(&RecordKey::from(key.clone()))?;
                // Written under another identity: not ours to announce.
                Ok((record.provider == self.local_id).then_some(record))
            });
            out.push(decoded.map_err(|r| NetabaseError::decode(PROVIDED_TABLE, &key, r)));
        }
        Ok(out)
    }

    /// Removes the provider record of `provider` for `key`, if any.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure or if the stored list does not decode.
    pub fn try_remove_provider(
        &self,
        key: &RecordKey,
        provider: &PeerId,
    ) -> Result<(), KadStoreError> {
        let raw = key.as_ref();
        let peer = provider.to_bytes();
        let txn = self.backend.begin_write()?;
        let mut list = decode_list(raw, txn.get(PROVIDERS_TABLE, raw)?)?;
        let before = list.len();
        list.retain(|p| p.provider != peer);
        if list.len() != before {
            if list.is_empty() {
                txn.delete(PROVIDERS_TABLE, raw)?;
            } else {
                txn.put(PROVIDERS_TABLE, raw, &encode(&list).map_err(encode_error)?)?;
            }
        }
        if provider == &self.local_id {
            txn.delete(PROVIDED_TABLE, raw)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes every expired value record and provider record, in one write transaction.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure; nothing is deleted then.
    pub fn sweep_expired(&self) -> Result<SweepStats, KadStoreError> {
        let now = WallTime::now();
        let txn = self.backend.begin_write()?;
        let records = sweep_records(&txn, now)?;
        let providers = sweep_providers(&txn, now)?;
        txn.commit()?;
        Ok(SweepStats { records, providers })
    }
}

/// The stored record `bytes` at `key`, unless it has expired or does not decode (a
/// damaged record is replaced, as a put without a batch replaces it).
fn live_record(key: RecordKey, bytes: &[u8], now: WallTime) -> Option<Record> {
    let stored: StoredRecord = decode(bytes).ok()?;
    if stored.is_expired(now) {
        return None;
    }
    stored.into_record(key).ok()
}

/// Writes an encoded record, first sweeping expired records if the key is new and the
/// table is full; the inner error is a limit (nothing written).
fn put_encoded(
    txn: &impl WriteTxn,
    key: &[u8],
    bytes: &[u8],
    max_records: usize,
) -> Result<Result<(), store::Error>, NetabaseError> {
    let exists = txn.get(RECORDS_TABLE, key)?.is_some();
    if !exists && table_full(txn, RECORDS_TABLE, max_records)? {
        sweep_records(txn, WallTime::now())?;
        if table_full(txn, RECORDS_TABLE, max_records)? {
            return Ok(Err(store::Error::MaxRecords));
        }
    }
    txn.put(RECORDS_TABLE, key, bytes)?;
    Ok(Ok(()))
}

fn table_full(txn: &impl ReadTxn, table: &str, max: usize) -> Result<bool, NetabaseError> {
    Ok(txn.len(table)? >= u64::try_from(max).unwrap_or(u64::MAX))
}

/// Deletes the expired records; undecodable ones are left for an operator to inspect.
fn sweep_records(txn: &impl WriteTxn, now: WallTime) -> Result<usize, NetabaseError> {
    let mut expired = Vec::new();
    for (key, bytes) in collect_range(txn, RECORDS_TABLE, RawRange::all(), Direction::Forward)? {
        if decode::<StoredRecord>(&bytes).is_ok_and(|r| r.is_expired(now)) {
            expired.push(key);
        }
    }
    for key in &expired {
        txn.delete(RECORDS_TABLE, key)?;
    }
    Ok(expired.len())
}

fn sweep_providers(txn: &impl WriteTxn, now: WallTime) -> Result<usize, NetabaseError> {
    let mut updates = Vec::new();
    for (key, bytes) in collect_range(txn, PROVIDERS_TABLE, RawRange::all(), Direction::Forward)? {
        let Ok(mut list) = decode::<Vec<StoredProvider>>(&bytes) else {
            continue;
        };
        let before = list.len();
        list.retain(|p| !p.is_expired(now));
        if list.len() != before {
            updates.push((key, before - list.len(), list));
        }
    }
    let mut removed = 0;
    for (key, count, list) in updates {
        removed += count;
        if list.is_empty() {
            txn.delete(PROVIDERS_TABLE, &key)?;
        } else {
            txn.put(PROVIDERS_TABLE, &key, &encode(&list).map_err(encode_error)?)?;
        }
    }
    let mut expired_local = Vec::new();
    for (key, bytes) in collect_range(txn, PROVIDED_TABLE, RawRange::all(), Direction::Forward)? {
        if decode::<StoredProvider>(&bytes).is_ok_and(|p| p.is_expired(now)) {
            expired_local.push(key);
        }
    }
    for key in &expired_local {
        txn.delete(PROVIDED_TABLE, key)?;
    }
    Ok(removed)
}

impl<B: Backend> RecordStore for KadStore<B> {
    type RecordsIter<'a>
        = std::vec::IntoIter<Cow<'a, Record>>
    where
        Self: 'a;
    type ProvidedIter<'a>
        = std::vec::IntoIter<Cow<'a, ProviderRecord>>
    where
        Self: 'a;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        match self.try_get(k) {
            Ok(record) => record.map(Cow::Owned),
            Err(e) => {
                self.note(&e);
                None
            }
        }
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.try_put(&r).map_err(|e| match e {
            KadStoreError::Limit(limit) => limit,
            other => {
                self.note(&other);
                store::Error::MaxRecords
            }
        })
    }

    fn remove(&mut self, k: &RecordKey) {
        if let Err(e) = self.try_remove(k) {
            self.note(&e);
        }
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.owned_noting_errors(self.scan_records())
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.try_add_provider(&record).map_err(|e| match e {
            KadStoreError::Limit(limit) => limit,
            other => {
                self.note(&other);
                store::Error::MaxProvidedKeys
            }
        })
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.try_providers(key).unwrap_or_else(|e| {
            self.note(&e);
            Vec::new()
        })
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.owned_noting_errors(self.scan_provided())
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if let Err(e) = self.try_remove_provider(k, p) {
            self.note(&e);
        }
    }
}
