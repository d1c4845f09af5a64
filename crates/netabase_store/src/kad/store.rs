//! [`KadStore`]: libp2p's `RecordStore` over the backend trait.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use thiserror::Error;

use super::encoding::{StoredProvider, StoredRecord, WallTime, decode, encode};
use super::expiry::{self, delete_indexed, put_indexed};
use super::signed::{
    Envelope, RecordSigner, SignedRecord, SignedRecordError, UnverifiedRecord, verify_batch,
    wall_millis,
};
use super::{EXPIRY_TABLE, PROVIDED_TABLE, PROVIDERS_TABLE, RECORDS_TABLE, REPLICAS_TABLE};
use crate::backend::{Backend, Direction, RawRange, ReadTxn, WriteTxn, collect_range};
use crate::error::NetabaseError;
use crate::schema::NetabaseDefinitionTrait;
use crate::sync::VersionStamp;
use crate::typed::txn::{ReadWrite, TxnGuard};

/// Limits of a [`KadStore`]; the defaults are those of libp2p's `MemoryStore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KadStoreConfig {
    /// The maximum number of value records held for the DHT (expired records count until
    /// they are swept; a put that hits the limit sweeps them first). A replica's copies
    /// ([`KadStore::put_replica_in`]) are kept apart and do not count.
    pub max_records: usize,
    /// The maximum size of a record's value (the encoded model inside its signed
    /// envelope), in bytes (inclusive).
    pub max_value_bytes: usize,
    /// The maximum number of providers kept per key; once reached, new providers of the
    /// key are ignored and the oldest are kept, which resists provider flooding.
    pub max_providers_per_key: usize,
    /// The maximum number of distinct keys with provider records (local or remote), as
    /// in libp2p's `MemoryStore`.
    pub max_provided_keys: usize,
    /// How long a tombstone (a signed removal) is kept after its stamp. Until then it
    /// wins over every older copy of the key; after it, it is swept, and an older copy
    /// that is still around may be accepted again. Keep it longer than the record TTL
    /// and the publication interval of the network.
    pub tombstone_ttl: Duration,
    /// How far ahead of this node's wall clock a record's stamp may be. A record
    /// stamped further in the future is refused: it would win its key for as long as
    /// its writer's clock runs ahead.
    pub max_clock_skew: Duration,
}

impl Default for KadStoreConfig {
    fn default() -> Self {
        KadStoreConfig {
            max_records: 1024,
            max_value_bytes: 65 * 1024,
            max_providers_per_key: libp2p::kad::K_VALUE.get(),
            max_provided_keys: 1024,
            tombstone_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            max_clock_skew: Duration::from_secs(10 * 60),
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
    /// The record is not validly signed, or loses to the version held (see
    /// [`super::signed`]); nothing was written.
    #[error("kad record refused: {0}")]
    Refused(#[from] SignedRecordError),
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
    /// Not validly signed, stamped too far ahead, an expired tombstone, or older than
    /// the version held (see [`super::signed`]); nothing written.
    Refused(SignedRecordError),
}

/// How a version that wins its key is held (see `KadStore::store_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    /// For the DHT, under its expiry and record limit (a key already held as a replica
    /// stays one).
    Dht,
    /// As a replica's copy.
    Replica,
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
/// Every record is signed (see [`super::signed`]): a put verifies the record and keeps,
/// per key, only the version the winner rule picks (the greatest stamp); reads return
/// only records whose envelope decodes (the signature was checked on the way in, and
/// the receiver checks it again). Tombstones are stored and served like records (so removals
/// replicate) and expire [`KadStoreConfig::tombstone_ttl`] after their stamp.
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
/// use libp2p::identity::Keypair;
/// use libp2p::kad::store::RecordStore;
/// use libp2p::kad::{Record, RecordKey};
/// use netabase_store::backend::memory::MemoryBackend;
/// use netabase_store::kad::{KadStore, KadStoreConfig, RecordSigner, SignedRecord};
///
/// let signer = RecordSigner::new(&Keypair::generate_ed25519())?;
/// let mut store = KadStore::new(MemoryBackend::new(), signer.peer_id(), KadStoreConfig::default());
/// let key = RecordKey::new(&b"greeting");
/// let signed = signer.seal(key.clone(), Some(b"hello".to_vec()), signer.next_stamp(None));
/// store.put(signed.to_record())?;
/// let held = store.get(&key).map(|r| SignedRecord::open(&r)).transpose()?;
/// assert_eq!(held.and_then(|r| r.value().map(<[u8]>::to_vec)), Some(b"hello".to_vec()));
///
/// // Unsigned records are refused.
/// assert!(store.put(Record::new(key, b"forged".to_vec())).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
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
    ///
    /// A store written before the expiry index existed gets it here, from one scan of
    /// its records (once: the index is marked built). Should that fail, the failure is
    /// counted ([`KadStore::backend_errors`]) and the next sweep builds it.
    pub fn new(backend: B, local_id: PeerId, config: KadStoreConfig) -> Self {
        let store = KadStore {
            backend,
            local_id,
            config,
            backend_errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        };
        if let Err(e) = store.build_expiry_index() {
            store.note(&e);
        }
        store
    }

    /// Builds the expiry index of a store written before it existed (one scan of the
    /// records, in one write transaction); whether it was built now. A store that has
    /// it is only read. [`KadStore::new`] calls it.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure; nothing is written then.
    pub fn build_expiry_index(&self) -> Result<bool, KadStoreError> {
        if expiry::is_built(&self.backend.begin_read()?)? {
            return Ok(false);
        }
        let txn = self.backend.begin_write()?;
        let built = expiry::ensure_built(&txn)?;
        txn.commit()?;
        Ok(built)
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
        let Some((table, bytes)) = held_bytes(&txn, key.as_ref())? else {
            return Ok(None);
        };
        Ok(self.live_record(table, key.clone(), &bytes, WallTime::now())?)
    }

    /// A stored record, decoded: `None` when it is expired (a tombstone older than the
    /// TTL included). Its envelope must decode, but its signature is not checked again:
    /// only verified records are ever written, and whoever receives the record (a peer,
    /// or the node before handing a model to the application) verifies it.
    fn live_record(
        &self,
        table: &str,
        key: RecordKey,
        bytes: &[u8],
        now: WallTime,
    ) -> Result<Option<Record>, NetabaseError> {
        let bad = |r: String| NetabaseError::decode(table, key.as_ref(), r);
        let stored: StoredRecord = decode(bytes).map_err(bad)?;
        if stored.is_expired(now) {
            return Ok(None);
        }
        let envelope = Envelope::decode(&stored.value).map_err(|e| bad(e.to_string()))?;
        if envelope.tombstone_expired(self.config.tombstone_ttl, wall_millis()) {
            return Ok(None);
        }
        Ok(Some(stored.into_record(key.clone()).map_err(bad)?))
    }

    /// Verifies `record` and stores it if it wins over the version held for its key
    /// (see [`super::signed`]); the same version again refreshes its expiry.
    ///
    /// # Errors
    /// [`KadStoreError::Refused`] if the record is not validly signed
    /// ([`SignedRecord::open`]), is stamped further in the future than
    /// [`KadStoreConfig::max_clock_skew`], is an expired tombstone, or loses to the version held
    /// ([`SignedRecordError::Superseded`]); [`KadStoreError::Limit`] with
    /// [`store::Error::ValueTooLarge`] if the value is larger than
    /// [`KadStoreConfig::max_value_bytes`], or [`store::Error::MaxRecords`] if the key
    /// is new and the store is full even after sweeping expired records;
    /// [`KadStoreError::Storage`] on backend failure. Nothing is written on error.
    pub fn try_put(&self, record: &Record) -> Result<(), KadStoreError> {
        let signed = SignedRecord::open(record)?;
        self.try_put_signed(&signed, record.expires)
    }

    /// [`KadStore::try_put`] of a record already verified (by [`SignedRecord::open`]),
    /// expiring at `expires` (a tombstone expires at the latest
    /// [`KadStoreConfig::tombstone_ttl`] after its stamp).
    ///
    /// # Errors
    /// As [`KadStore::try_put`].
    pub fn try_put_signed(
        &self,
        signed: &SignedRecord,
        expires: Option<Instant>,
    ) -> Result<(), KadStoreError> {
        let bytes = self.encode_checked(signed, expires)?;
        let txn = self.backend.begin_write()?;
        self.put_if_winner(&txn, signed, &bytes)??;
        txn.commit()?;
        Ok(())
    }

    /// [`KadStore::try_put_signed`] of a **replica** (see [`KadStore::put_replica_in`]),
    /// in a transaction of its own: kept in [`REPLICAS_TABLE`], without expiry and
    /// without counting toward [`KadStoreConfig::max_records`].
    ///
    /// # Errors
    /// As [`KadStore::try_put`], without [`store::Error::MaxRecords`].
    pub fn try_put_replica(&self, signed: &SignedRecord) -> Result<(), KadStoreError> {
        let bytes = self.encode_checked(signed, None)?;
        let txn = self.backend.begin_write()?;
        self.put_if_winner_as(&txn, signed, &bytes, Holding::Replica)??;
        txn.commit()?;
        Ok(())
    }

    /// Moves every record of [`RECORDS_TABLE`] whose key `select` picks into
    /// [`REPLICAS_TABLE`], unchanged (an expiry it has is kept), in one write
    /// transaction; returns how many moved. A store written before replicas were kept
    /// apart held them among the DHT's records: a node calls this at open with the keys
    /// of the models it replicates, so that they stop counting toward
    /// [`KadStoreConfig::max_records`]. Once moved, nothing is left to move.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure; nothing is moved then.
    pub fn adopt_replicas(
        &self,
        mut select: impl FnMut(&RecordKey) -> bool,
    ) -> Result<usize, KadStoreError> {
        let txn = self.backend.begin_write()?;
        let mut moved = 0;
        for (key, bytes) in collect_range(&txn, RECORDS_TABLE, RawRange::all(), Direction::Forward)?
        {
            if !select(&RecordKey::from(key.clone())) {
                continue;
            }
            // A key is held in one table only: should both hold it, the winner stays.
            let ttl = self.config.tombstone_ttl;
            let version = |bytes: &[u8]| held_envelope(bytes, ttl).map(|e| (e.stamp, e.digest));
            let replica_wins = txn
                .get(REPLICAS_TABLE, &key)?
                .is_some_and(|held| version(&held) >= version(&bytes));
            if !replica_wins {
                put_indexed(&txn, REPLICAS_TABLE, &key, &bytes)?;
            }
            delete_indexed(&txn, RECORDS_TABLE, &key)?;
            moved += 1;
        }
        if moved > 0 {
            txn.commit()?;
        }
        Ok(moved)
    }

    /// Stores `records` in one write transaction (one durable commit for all of them):
    /// the group commit of a node's inbound records. Each record is verified
    /// ([`SignedRecord::open`], the signatures in batches: [`verify_batch`]) and checked
    /// as [`KadStore::try_put`] checks it, and must
    /// win over the version held for its key; it is then shown to `accept` with the
    /// unexpired record it would replace, if any. A record that is refused, that
    /// `accept` declines, or that hits a limit is skipped and the others are still
    /// written. A record later in `records` replaces an earlier one with the same key if
    /// it wins over it.
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
        // Decode each envelope (cheap), then verify the signatures in batches: the same
        // outcome per record as `SignedRecord::open`.
        let mut verified: Vec<_> = records.iter().map(|_| None).collect();
        let mut decoded = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            match SignedRecord::decode_unverified(record) {
                Ok(unverified) => decoded.push((i, unverified)),
                Err(refused) => verified[i] = Some(Err(refused)),
            }
        }
        let (positions, decoded): (Vec<usize>, Vec<_>) = decoded
            .into_iter()
            .map(|(i, unverified)| (i, (unverified, None)))
            .unzip();
        for (i, result) in positions.into_iter().zip(verify_batch(decoded)) {
            verified[i] = Some(result.map(|signed| (signed, records[i].expires)));
        }
        let verified = verified
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(SignedRecordError::Unsigned {
                        reason: "not decoded".to_owned(),
                    })
                })
            })
            .collect();
        self.put_verified_batch(verified, |index, existing| {
            accept(&records[index], existing)
        })
    }

    /// [`KadStore::try_put_batch`] of records whose envelopes were already decoded
    /// (by [`SignedRecord::decode_unverified`], so that their models could be checked
    /// elsewhere), each with the peer it came from, if known: the signatures are verified
    /// here, once, in batches ([`verify_batch`]: each record is accepted or refused
    /// exactly as [`UnverifiedRecord::verify`] would, and a signature of the sender's
    /// under another author's name is [`SignedRecordError::StolenAuthorship`]), then
    /// every record is checked and written as [`KadStore::try_put_batch`] does, with
    /// `accept` always true. This is the group commit of a node's inbound records, run
    /// on the thread that owns the database.
    ///
    /// Returns one [`BatchPut`] per record, in order, once the transaction is committed.
    ///
    /// # Errors
    /// As [`KadStore::try_put_batch`].
    pub fn try_put_unverified_batch(
        &self,
        records: Vec<(UnverifiedRecord, Option<PeerId>)>,
    ) -> Result<Vec<BatchPut>, KadStoreError> {
        let expiries: Vec<Option<Instant>> =
            records.iter().map(|(record, _)| record.expires()).collect();
        let verified = verify_batch(records)
            .into_iter()
            .zip(expiries)
            .map(|(verified, expires)| verified.map(|signed| (signed, expires)))
            .collect();
        self.try_put_verified_batch(verified)
    }

    /// [`KadStore::try_put_unverified_batch`] of records whose signatures were verified
    /// elsewhere (by [`verify_batch`] on another thread, say, while this one commits
    /// the previous batch): `verified` holds, per record, the verified record and its
    /// expiry, or why its verification failed (that record is then reported as
    /// [`BatchPut::Refused`] with that reason). Only a [`SignedRecord`] can be passed,
    /// so nothing unverified is stored.
    ///
    /// Returns one [`BatchPut`] per record, in order, once the transaction is committed.
    ///
    /// # Errors
    /// As [`KadStore::try_put_batch`].
    pub fn try_put_verified_batch(
        &self,
        verified: Vec<Result<(SignedRecord, Option<Instant>), SignedRecordError>>,
    ) -> Result<Vec<BatchPut>, KadStoreError> {
        self.put_verified_batch(verified, |_, _| true)
    }

    /// The body of the batch puts: `verified` holds, per record, the verified record and
    /// its expiry, or why its verification failed; `accept` is shown the position of a
    /// record and the unexpired record it would replace.
    fn put_verified_batch(
        &self,
        verified: Vec<Result<(SignedRecord, Option<Instant>), SignedRecordError>>,
        mut accept: impl FnMut(usize, Option<&Record>) -> bool,
    ) -> Result<Vec<BatchPut>, KadStoreError> {
        let now = WallTime::now();
        let mut outcomes = vec![BatchPut::Stored; verified.len()];
        // Check and encode first: a record refused on its own is refused before
        // anything is written.
        let mut encoded = Vec::with_capacity(verified.len());
        for (i, verified) in verified.into_iter().enumerate() {
            let (signed, expires) = match verified {
                Ok(verified) => verified,
                Err(refused) => {
                    outcomes[i] = BatchPut::Refused(refused);
                    continue;
                }
            };
            match self.encode_checked(&signed, expires) {
                Ok(bytes) => encoded.push((i, signed, bytes)),
                Err(KadStoreError::Limit(limit)) => outcomes[i] = BatchPut::Limit(limit),
                Err(KadStoreError::Refused(refused)) => outcomes[i] = BatchPut::Refused(refused),
                Err(e) => return Err(e),
            }
        }
        let txn = self.backend.begin_write()?;
        // Keys held as replicas keep their copy there (see `KadStore::store_version`):
        // they take the one-at-a-time path and neither count toward nor meet the
        // record limit.
        let (replicas, encoded) = if !has_entries(&txn, REPLICAS_TABLE)? {
            (Vec::new(), encoded)
        } else {
            let keys: Vec<&[u8]> = encoded.iter().map(|(_, s, _)| s.key().as_ref()).collect();
            let mut held = vec![false; keys.len()];
            txn.get_each(REPLICAS_TABLE, &keys, &mut |position, old| {
                held[position] = old.is_some();
                Ok(())
            })?;
            let mut held = held.into_iter();
            encoded
                .into_iter()
                .partition(|_| held.next().unwrap_or(false))
        };
        for (index, signed, bytes) in &replicas {
            if let Some(outcome) = self.put_one(&txn, now, signed, bytes, &mut |existing| {
                accept(*index, existing)
            })? {
                outcomes[*index] = outcome;
            }
        }
        let stored = txn.len(RECORDS_TABLE)?;
        let room = u64::try_from(self.config.max_records).unwrap_or(u64::MAX);
        let distinct = {
            let mut keys = std::collections::HashSet::with_capacity(encoded.len());
            encoded
                .iter()
                .all(|(_, signed, _)| keys.insert(signed.key().as_ref()))
        };
        let fits = stored.saturating_add(encoded.len() as u64) <= room;
        let ttl = self.config.tombstone_ttl;
        if fits && distinct {
            // The common case: write every record in one pass (one table open, one
            // B-tree operation each) and put back the few that lose to the version held
            // or that `accept` declines, once the value they replaced is known.
            let entries: Vec<(&[u8], &[u8])> = encoded
                .iter()
                .map(|(_, signed, bytes)| (signed.key().as_ref(), bytes.as_slice()))
                .collect();
            let mut undo: Vec<(usize, Option<Vec<u8>>, BatchPut)> = Vec::new();
            // The expiry index entries the writes drop and add (most records have none).
            let (mut stale, mut fresh) = (Vec::new(), Vec::new());
            txn.put_each(RECORDS_TABLE, &entries, &mut |position, old| {
                let (index, signed, bytes) = &encoded[position];
                let key = signed.key().as_ref();
                let before =
                    old.map_or_else(Vec::new, |old| expiry::entries_of(RECORDS_TABLE, key, old));
                let after = expiry::entries_of(RECORDS_TABLE, key, bytes);
                if before != after {
                    stale.extend(before.iter().filter(|e| !after.contains(e)).cloned());
                    fresh.extend(after.into_iter().filter(|e| !before.contains(e)));
                }
                let verdict = match old.and_then(|bytes| held_envelope(bytes, ttl)) {
                    Some(held) if loses_to(signed, &held) => {
                        Some(BatchPut::Refused(superseded(&held, signed)))
                    }
                    _ => {
                        let existing = old
                            .and_then(|bytes| unexpired_record(signed.key().clone(), bytes, now));
                        (!accept(*index, existing.as_ref())).then_some(BatchPut::Declined)
                    }
                };
                if let Some(verdict) = verdict {
                    undo.push((position, old.map(<[u8]>::to_vec), verdict));
                }
                Ok(())
            })?;
            for entry in &stale {
                txn.delete(EXPIRY_TABLE, entry)?;
            }
            for entry in &fresh {
                txn.put(EXPIRY_TABLE, entry, &[])?;
            }
            for (position, old, verdict) in undo {
                let (index, signed, _) = &encoded[position];
                let key = signed.key().as_ref();
                match old {
                    Some(bytes) => put_indexed(&txn, RECORDS_TABLE, key, &bytes)?,
                    None => {
                        delete_indexed(&txn, RECORDS_TABLE, key)?;
                    }
                }
                outcomes[*index] = verdict;
            }
        } else {
            // Near the record limit, or a key twice in the batch: one record at a time.
            for (index, signed, bytes) in &encoded {
                if let Some(outcome) = self.put_one(&txn, now, signed, bytes, &mut |existing| {
                    accept(*index, existing)
                })? {
                    outcomes[*index] = outcome;
                }
            }
        }
        txn.commit()?;
        Ok(outcomes)
    }

    /// Checks the value size and the tombstone age; the stored bytes of `signed`.
    fn encode_checked(
        &self,
        signed: &SignedRecord,
        expires: Option<Instant>,
    ) -> Result<Vec<u8>, KadStoreError> {
        if signed
            .value()
            .is_some_and(|v| v.len() > self.config.max_value_bytes)
        {
            return Err(store::Error::ValueTooLarge.into());
        }
        let ttl = self.config.tombstone_ttl;
        signed.check_skew(self.config.max_clock_skew, wall_millis())?;
        if signed.tombstone_expired(ttl, wall_millis()) {
            return Err(SignedRecordError::ExpiredTombstone {
                stamp: signed.stamp(),
            }
            .into());
        }
        let mut stored = StoredRecord::from_record(&signed.to_record());
        stored.expires = expires.map(WallTime::from_instant);
        if signed.is_tombstone() {
            let end = WallTime::from_millis(signed.tombstone_expiry_millis(ttl));
            stored.expires = Some(stored.expires.map_or(end, |e| e.min(end)));
        }
        Ok(encode(&stored).map_err(encode_error)?)
    }

    /// One record of a batch, alone: refused if it loses to the version held, declined
    /// if `accept` declines it (shown the unexpired record it would replace), else
    /// stored ([`KadStore::store_version`]). `None` when stored.
    fn put_one(
        &self,
        txn: &impl WriteTxn,
        now: WallTime,
        signed: &SignedRecord,
        bytes: &[u8],
        accept: &mut dyn FnMut(Option<&Record>) -> bool,
    ) -> Result<Option<BatchPut>, KadStoreError> {
        let held = held_bytes(txn, signed.key().as_ref())?;
        if let Some(version) = held
            .as_ref()
            .and_then(|(_, old)| held_envelope(old, self.config.tombstone_ttl))
            && loses_to(signed, &version)
        {
            return Ok(Some(BatchPut::Refused(superseded(&version, signed))));
        }
        let existing = held
            .as_ref()
            .and_then(|(_, old)| unexpired_record(signed.key().clone(), old, now));
        if !accept(existing.as_ref()) {
            return Ok(Some(BatchPut::Declined));
        }
        Ok(
            match self.store_version(txn, signed, bytes, Holding::Dht, held)? {
                Ok(()) => None,
                Err(KadStoreError::Limit(limit)) => Some(BatchPut::Limit(limit)),
                Err(KadStoreError::Refused(refused)) => Some(BatchPut::Refused(refused)),
                Err(e) => return Err(e),
            },
        )
    }

    /// Writes `bytes` (the stored form of `signed`) unless the version held for the key
    /// wins over it; the inner error says why nothing was written (the outer one is a
    /// backend failure).
    fn put_if_winner(
        &self,
        txn: &impl WriteTxn,
        signed: &SignedRecord,
        bytes: &[u8],
    ) -> Result<Result<(), KadStoreError>, NetabaseError> {
        self.put_if_winner_as(txn, signed, bytes, Holding::Dht)
    }

    /// [`KadStore::put_if_winner`], held as `holding` says.
    fn put_if_winner_as(
        &self,
        txn: &impl WriteTxn,
        signed: &SignedRecord,
        bytes: &[u8],
        holding: Holding,
    ) -> Result<Result<(), KadStoreError>, NetabaseError> {
        let held = held_bytes(txn, signed.key().as_ref())?;
        if let Some(version) = held
            .as_ref()
            .and_then(|(_, old)| held_envelope(old, self.config.tombstone_ttl))
            && loses_to(signed, &version)
        {
            return Ok(Err(superseded(&version, signed).into()));
        }
        self.store_version(txn, signed, bytes, holding, held)
    }

    /// Writes a version that won its key. A replica's copy goes to [`REPLICAS_TABLE`]
    /// (and leaves [`RECORDS_TABLE`], where a store written before replicas were kept
    /// apart may hold it). A DHT record of a key held as a replica replaces the
    /// replica's copy, as a replica (without expiry): a key is held in one table only,
    /// so two copies of a key never disagree. Any other DHT record goes to
    /// [`RECORDS_TABLE`] under [`KadStoreConfig::max_records`].
    ///
    /// `held` is what [`held_bytes`] read for the key in this transaction, so that
    /// neither table is read again.
    fn store_version(
        &self,
        txn: &impl WriteTxn,
        signed: &SignedRecord,
        bytes: &[u8],
        holding: Holding,
        held: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Result<(), KadStoreError>, NetabaseError> {
        let key = signed.key().as_ref();
        match (holding, held) {
            (Holding::Replica, Some((RECORDS_TABLE, old))) => {
                // Held as a DHT record, so not as a replica (`held_bytes` looks there
                // first).
                expiry::delete_replacing(txn, RECORDS_TABLE, key, &old)?;
                expiry::put_replacing(txn, REPLICAS_TABLE, key, None, bytes)?;
            }
            (Holding::Replica, held) => {
                // A store written before replicas were kept apart may also hold the
                // key as a DHT record.
                if held.is_some() {
                    delete_indexed(txn, RECORDS_TABLE, key)?;
                }
                let old = held.map(|(_, old)| old);
                expiry::put_replacing(txn, REPLICAS_TABLE, key, old.as_deref(), bytes)?;
            }
            (Holding::Dht, Some((REPLICAS_TABLE, old))) => {
                let bytes = match self.encode_checked(signed, None) {
                    Ok(bytes) => bytes,
                    Err(KadStoreError::Storage(e)) => return Err(e),
                    Err(refused) => return Ok(Err(refused)),
                };
                expiry::put_replacing(txn, REPLICAS_TABLE, key, Some(&old), &bytes)?;
            }
            (Holding::Dht, held) => {
                let ttl = self.config.tombstone_ttl;
                let old = held.map(|(_, old)| old);
                return Ok(
                    put_encoded(txn, key, old, bytes, self.config.max_records, ttl)?
                        .map_err(KadStoreError::from),
                );
            }
        }
        Ok(Ok(()))
    }

    /// The stamp of the live version held for `key`, if any (expired versions and
    /// unreadable bytes do not count).
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn held_stamp(&self, key: &RecordKey) -> Result<Option<VersionStamp>, KadStoreError> {
        let txn = self.backend.begin_read()?;
        Ok(held_version(&txn, key.as_ref(), self.config.tombstone_ttl)?.map(|h| h.stamp))
    }

    /// The envelope of the live version held for `key`, if any (expired versions and
    /// unreadable bytes do not count): where the signature of a version that sync
    /// sends is found.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn held_envelope(&self, key: &RecordKey) -> Result<Option<Envelope>, KadStoreError> {
        let txn = self.backend.begin_read()?;
        Ok(held_version(&txn, key.as_ref(), self.config.tombstone_ttl)?)
    }

    /// [`KadStore::try_put_batch`] of records already verified (rebuilt by
    /// [`SignedRecord::from_version`] from what sync received, say), with no expiry,
    /// in one write transaction.
    ///
    /// # Errors
    /// As [`KadStore::try_put_batch`].
    pub fn put_signed_batch(
        &self,
        records: Vec<SignedRecord>,
    ) -> Result<Vec<BatchPut>, KadStoreError> {
        let verified = records
            .into_iter()
            .map(|signed| Ok((signed, None)))
            .collect();
        self.put_verified_batch(verified, |_, _| true)
    }

    /// Seals `value` (an encoded model; `None`: a tombstone) under `key` with a stamp of
    /// `signer` greater than any version held for the key, and stores it inside the
    /// typed write transaction `txn` (applied by its commit, with the models written in
    /// it, or not at all). Returns the signed record, to publish.
    ///
    /// # Errors
    /// As [`KadStore::put_in`].
    pub fn put_signed_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        signer: &RecordSigner,
        key: RecordKey,
        value: Option<Vec<u8>>,
    ) -> Result<SignedRecord, KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        self.put_signed_within(txn, signer, key, value, Holding::Dht)
    }

    /// [`KadStore::put_signed_in`] of a **replica** (see [`KadStore::put_replica_in`]):
    /// a record of a model the node replicates, kept in [`REPLICAS_TABLE`], never
    /// refused for [`KadStoreConfig::max_records`].
    ///
    /// # Errors
    /// As [`KadStore::put_signed_in`], without [`store::Error::MaxRecords`].
    pub fn put_signed_replica_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        signer: &RecordSigner,
        key: RecordKey,
        value: Option<Vec<u8>>,
    ) -> Result<SignedRecord, KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        self.put_signed_within(txn, signer, key, value, Holding::Replica)
    }

    fn put_signed_within<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        signer: &RecordSigner,
        key: RecordKey,
        value: Option<Vec<u8>>,
        holding: Holding,
    ) -> Result<SignedRecord, KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        txn.writer().with_raw(|raw| {
            let held = held_version(raw, key.as_ref(), self.config.tombstone_ttl)?.map(|h| h.stamp);
            let signed = signer.seal(key, value, signer.next_stamp(held));
            let bytes = match self.encode_checked(&signed, None) {
                Ok(bytes) => bytes,
                Err(refused) => return Ok(Err(refused)),
            };
            Ok(self
                .put_if_winner_as(raw, &signed, &bytes, holding)?
                .map(|()| signed))
        })?
    }

    /// [`KadStore::try_put`] inside the typed write transaction `txn` of a
    /// [`NetabaseStore`](crate::NetabaseStore) on the same database: the record is
    /// verified, checked against the version held, and applied by `txn`'s commit,
    /// together with the models written in it, or not at all.
    ///
    /// # Errors
    /// As [`KadStore::try_put`]. A refusal or a limit leaves `txn` usable; a backend
    /// failure poisons it.
    pub fn put_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        record: &Record,
    ) -> Result<(), KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        let signed = SignedRecord::open(record)?;
        let bytes = self.encode_checked(&signed, record.expires)?;
        txn.writer()
            .with_raw(|raw| self.put_if_winner(raw, &signed, &bytes))??;
        Ok(())
    }

    /// [`KadStore::put_in`] of a record already verified (by [`SignedRecord::open`] or
    /// [`UnverifiedRecord::verify`]), expiring at `expires`: the write of an inbound
    /// record inside the transaction that also applies it to the typed store.
    ///
    /// # Errors
    /// As [`KadStore::put_in`].
    pub fn put_verified_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        signed: &SignedRecord,
        expires: Option<Instant>,
    ) -> Result<(), KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        let bytes = self.encode_checked(signed, expires)?;
        txn.writer()
            .with_raw(|raw| self.put_if_winner(raw, signed, &bytes))??;
        Ok(())
    }

    /// [`KadStore::put_verified_in`] for a node that keeps `signed` as a **replica**: a
    /// record of a model it replicates (or a membership), whose signed copy it must keep
    /// as long as its typed store holds the version, to pass it on. The copy is kept in
    /// [`REPLICAS_TABLE`], apart from the records held for the DHT: it does not expire
    /// (a tombstone still does, after [`KadStoreConfig::tombstone_ttl`]), is not
    /// refused for [`KadStoreConfig::max_records`] (the typed store holds the same
    /// records anyway) and does not count toward it. Reads, iteration and the version
    /// rule see both tables; a later DHT put of the key replaces the replica's copy
    /// if it wins, and stays a replica.
    ///
    /// # Errors
    /// As [`KadStore::put_verified_in`], without [`store::Error::MaxRecords`].
    pub fn put_replica_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        signed: &SignedRecord,
    ) -> Result<(), KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        let bytes = self.encode_checked(signed, None)?;
        txn.writer()
            .with_raw(|raw| self.put_if_winner_as(raw, signed, &bytes, Holding::Replica))??;
        Ok(())
    }

    /// The envelope of the live version held for `key` (unexpired; a tombstone within
    /// [`KadStoreConfig::tombstone_ttl`]) as the typed write transaction `txn` sees it,
    /// its own writes included. It was verified when it was stored.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn held_in<D, TB>(
        &self,
        txn: &TxnGuard<'_, D, TB, ReadWrite>,
        key: &RecordKey,
    ) -> Result<Option<Envelope>, KadStoreError>
    where
        D: NetabaseDefinitionTrait,
        TB: Backend,
    {
        Ok(txn
            .writer()
            .with_raw(|raw| held_version(raw, key.as_ref(), self.config.tombstone_ttl))?)
    }

    /// [`KadStore::try_remove`] inside the typed write transaction `txn` (see
    /// [`KadStore::put_in`]): a local deletion, which peers do not hear of. To remove
    /// a record from the network, store a tombstone ([`KadStore::put_signed_in`] with
    /// no value) and publish it.
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
            .with_raw(|raw| remove_held(raw, key.as_ref()))?)
    }

    /// Removes the record at `key`; returns whether it was there.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn try_remove(&self, key: &RecordKey) -> Result<bool, KadStoreError> {
        let txn = self.backend.begin_write()?;
        let removed = remove_held(&txn, key.as_ref())?;
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

    /// Every unexpired record whose key starts with `prefix`, in key order (the
    /// records of one model, or a node's memberships, without a scan of the others).
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] if the backend fails or a stored record does not decode.
    pub fn try_records_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Record>, KadStoreError> {
        let now = WallTime::now();
        let entries = collect_held(&self.backend.begin_read()?, RawRange::prefix(prefix))?;
        let mut out = Vec::new();
        for (table, key, bytes) in entries {
            if let Some(record) = self.live_record(table, RecordKey::from(key), &bytes, now)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every record, each decoded on its own: `Ok(None)` for an expired one.
    fn scan_records(&self) -> Result<Vec<Result<Option<Record>, NetabaseError>>, NetabaseError> {
        let now = WallTime::now();
        let entries = collect_held(&self.backend.begin_read()?, RawRange::all())?;
        let mut out = Vec::new();
        for (table, key, bytes) in entries {
            out.push(self.live_record(table, RecordKey::from(key), &bytes, now));
        }
        Ok(out)
    }

    /// The number of stored value records, expired ones included until swept: the
    /// records held for the DHT and the replica's copies.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn record_count(&self) -> Result<u64, KadStoreError> {
        let txn = self.backend.begin_read()?;
        Ok(txn.len(RECORDS_TABLE)? + txn.len(REPLICAS_TABLE)?)
    }

    /// The number of the replica's copies ([`KadStore::put_replica_in`]), a part of
    /// [`KadStore::record_count`] that [`KadStoreConfig::max_records`] does not limit.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure.
    pub fn replica_count(&self) -> Result<u64, KadStoreError> {
        Ok(self.backend.begin_read()?.len(REPLICAS_TABLE)?)
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
        put_indexed(
            &txn,
            PROVIDERS_TABLE,
            key,
            &encode(&list).map_err(encode_error)?,
        )?;
        if record.provider == self.local_id {
            let local = encode(&stored).map_err(encode_error)?;
            put_indexed(&txn, PROVIDED_TABLE, key, &local)?;
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
                delete_indexed(&txn, PROVIDERS_TABLE, raw)?;
            } else {
                let bytes = encode(&list).map_err(encode_error)?;
                put_indexed(&txn, PROVIDERS_TABLE, raw, &bytes)?;
            }
        }
        if provider == &self.local_id {
            delete_indexed(&txn, PROVIDED_TABLE, raw)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes every expired value record and provider record, in one write transaction:
    /// the records held for the DHT, and the replica's tombstones older than
    /// [`KadStoreConfig::tombstone_ttl`]. Reads only what is due, from the expiry index
    /// ([`EXPIRY_TABLE`]): O(expired + log n), whatever the number of records held.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure; nothing is deleted then.
    pub fn sweep_expired(&self) -> Result<SweepStats, KadStoreError> {
        let now = WallTime::now();
        let txn = self.backend.begin_write()?;
        let ttl = self.config.tombstone_ttl;
        let records = sweep_records(&txn, RECORDS_TABLE, now, ttl)?
            + sweep_records(&txn, REPLICAS_TABLE, now, ttl)?;
        let providers = sweep_providers(&txn, now)?;
        txn.commit()?;
        Ok(SweepStats { records, providers })
    }

    /// [`KadStore::sweep_expired`] as it ran before the expiry index: every value
    /// record of both tables is decoded to find the expired ones (provider records are
    /// swept from the index as usual). Same outcome, O(records) instead of
    /// O(expired + log records): kept to measure the index against.
    ///
    /// # Errors
    /// [`KadStoreError::Storage`] on backend failure; nothing is deleted then.
    pub fn sweep_expired_by_scan(&self) -> Result<SweepStats, KadStoreError> {
        let now = WallTime::now();
        let txn = self.backend.begin_write()?;
        let ttl = self.config.tombstone_ttl;
        let records = sweep_records_by_scan(&txn, RECORDS_TABLE, now, ttl)?
            + sweep_records_by_scan(&txn, REPLICAS_TABLE, now, ttl)?;
        let providers = sweep_providers(&txn, now)?;
        txn.commit()?;
        Ok(SweepStats { records, providers })
    }
}

/// The stored record `bytes` at `key`, unless it has expired or does not decode (a
/// damaged record is replaced, as a put without a batch replaces it).
fn unexpired_record(key: RecordKey, bytes: &[u8], now: WallTime) -> Option<Record> {
    let stored: StoredRecord = decode(bytes).ok()?;
    if stored.is_expired(now) {
        return None;
    }
    stored.into_record(key).ok()
}

/// The envelope of the version held at `key`, if it is live (neither expired nor a
/// tombstone older than `tombstone_ttl`) and readable. It was verified when it was
/// written, so it is only decoded here. Bytes that do not decode do not block a new
/// version (they were not written by this store).
fn held_version(
    txn: &impl ReadTxn,
    key: &[u8],
    tombstone_ttl: Duration,
) -> Result<Option<Envelope>, NetabaseError> {
    Ok(held_bytes(txn, key)?.and_then(|(_, bytes)| held_envelope(&bytes, tombstone_ttl)))
}

/// The stored bytes at `key` and the table holding them: a replica's copy, else a
/// record held for the DHT (a key is held in one of them only).
fn held_bytes(
    txn: &impl ReadTxn,
    key: &[u8],
) -> Result<Option<(&'static str, Vec<u8>)>, NetabaseError> {
    if let Some(bytes) = txn.get(REPLICAS_TABLE, key)? {
        return Ok(Some((REPLICAS_TABLE, bytes)));
    }
    Ok(txn
        .get(RECORDS_TABLE, key)?
        .map(|bytes| (RECORDS_TABLE, bytes)))
}

/// Whether `table` holds an entry: one step of a scan, where counting may walk the
/// whole table on some engines.
fn has_entries(txn: &impl ReadTxn, table: &str) -> Result<bool, NetabaseError> {
    let mut found = false;
    txn.for_each_in(table, RawRange::all(), Direction::Forward, &mut |_, _| {
        found = true;
        Ok(std::ops::ControlFlow::Break(()))
    })?;
    Ok(found)
}

/// Removes `key` from both tables; whether either held it.
fn remove_held(txn: &impl WriteTxn, key: &[u8]) -> Result<bool, NetabaseError> {
    let replica = delete_indexed(txn, REPLICAS_TABLE, key)?;
    Ok(delete_indexed(txn, RECORDS_TABLE, key)? || replica)
}

/// A stored record with the table holding it: (table, key, stored bytes).
type HeldEntry = (&'static str, Vec<u8>, Vec<u8>);

/// The entries of both tables inside `range`, merged in key order, each with its table
/// (a key in both, which no write leaves, is listed once, as the replica's copy).
fn collect_held(txn: &impl ReadTxn, range: RawRange) -> Result<Vec<HeldEntry>, NetabaseError> {
    let replicas = collect_range(txn, REPLICAS_TABLE, range.clone(), Direction::Forward)?;
    let records = collect_range(txn, RECORDS_TABLE, range, Direction::Forward)?;
    let mut out = Vec::with_capacity(replicas.len() + records.len());
    let mut replicas = replicas.into_iter().peekable();
    for (key, bytes) in records {
        while let Some((replica, _)) = replicas.peek()
            && *replica <= key
        {
            if let Some((replica, copy)) = replicas.next() {
                out.push((REPLICAS_TABLE, replica, copy));
            }
        }
        if out.last().is_none_or(|(_, last, _)| *last != key) {
            out.push((RECORDS_TABLE, key, bytes));
        }
    }
    out.extend(replicas.map(|(key, copy)| (REPLICAS_TABLE, key, copy)));
    Ok(out)
}

/// [`held_version`] of stored bytes already read.
fn held_envelope(bytes: &[u8], tombstone_ttl: Duration) -> Option<Envelope> {
    let stored = decode::<StoredRecord>(bytes).ok()?;
    if stored.is_expired(WallTime::now()) {
        return None;
    }
    Envelope::decode(&stored.value)
        .ok()
        .filter(|e| !e.tombstone_expired(tombstone_ttl, wall_millis()))
}

/// Whether the version `held` wins over `offered` (the same version offered again does
/// not lose: it refreshes the expiry).
fn loses_to(offered: &SignedRecord, held: &Envelope) -> bool {
    (held.stamp, held.digest) > (offered.stamp(), offered.envelope().digest)
}

/// The refusal of `offered`, which loses to `held`.
fn superseded(held: &Envelope, offered: &SignedRecord) -> SignedRecordError {
    SignedRecordError::Superseded {
        held: held.stamp,
        offered: offered.stamp(),
    }
}

/// Writes an encoded record over `old` (what [`RECORDS_TABLE`] holds at `key`, read by
/// the caller), first sweeping expired records if the key is new and the table is full;
/// the inner error is a limit (nothing written).
fn put_encoded(
    txn: &impl WriteTxn,
    key: &[u8],
    old: Option<Vec<u8>>,
    bytes: &[u8],
    max_records: usize,
    tombstone_ttl: Duration,
) -> Result<Result<(), store::Error>, NetabaseError> {
    let exists = old.is_some();
    if !exists && table_full(txn, RECORDS_TABLE, max_records)? {
        sweep_records(txn, RECORDS_TABLE, WallTime::now(), tombstone_ttl)?;
        if table_full(txn, RECORDS_TABLE, max_records)? {
            return Ok(Err(store::Error::MaxRecords));
        }
    }
    // The sweep above ran only for a new key, so `old` is still what the table holds.
    expiry::put_replacing(txn, RECORDS_TABLE, key, old.as_deref(), bytes)?;
    Ok(Ok(()))
}

fn table_full(txn: &impl ReadTxn, table: &str, max: usize) -> Result<bool, NetabaseError> {
    Ok(txn.len(table)? >= u64::try_from(max).unwrap_or(u64::MAX))
}

/// Deletes the expired records of `table` and its tombstones older than `tombstone_ttl` (which
/// may be shorter than when they were stored), reading only the due prefix of the
/// expiry index (built first if the store has none). Each record is checked before it
/// is deleted: an index entry that does not match its record is dropped, never acted
/// on. Undecodable records have no entry and are left for an operator to inspect.
fn sweep_records(
    txn: &impl WriteTxn,
    table: &str,
    now: WallTime,
    tombstone_ttl: Duration,
) -> Result<usize, NetabaseError> {
    expiry::ensure_built(txn)?;
    let now_millis = wall_millis();
    let mut removed = 0;
    for due in expiry::due(txn, table, now, now_millis, tombstone_ttl)? {
        let removable = txn
            .get(table, &due.key)?
            .is_some_and(|bytes| record_removable(&bytes, now, now_millis, tombstone_ttl));
        if removable {
            delete_indexed(txn, table, &due.key)?;
            removed += 1;
        } else {
            expiry::drop_if_stale(txn, table, &due.entry, &due.key)?;
        }
    }
    Ok(removed)
}

/// Whether the stored record `bytes` has expired at `now`, or is a tombstone older than
/// `tombstone_ttl` at `now_millis`.
fn record_removable(bytes: &[u8], now: WallTime, now_millis: u64, tombstone_ttl: Duration) -> bool {
    let Ok(stored) = decode::<StoredRecord>(bytes) else {
        return false;
    };
    stored.is_expired(now)
        || Envelope::decode(&stored.value)
            .is_ok_and(|e| e.tombstone_expired(tombstone_ttl, now_millis))
}

/// [`sweep_records`] of every record of `table`, decoding each one: the sweep before
/// the expiry index, kept to compare against.
fn sweep_records_by_scan(
    txn: &impl WriteTxn,
    table: &str,
    now: WallTime,
    tombstone_ttl: Duration,
) -> Result<usize, NetabaseError> {
    let now_millis = wall_millis();
    let mut expired = Vec::new();
    for (key, bytes) in collect_range(txn, table, RawRange::all(), Direction::Forward)? {
        if record_removable(&bytes, now, now_millis, tombstone_ttl) {
            expired.push(key);
        }
    }
    for key in &expired {
        delete_indexed(txn, table, key)?;
    }
    Ok(expired.len())
}

/// Deletes the expired provider records, reading only the due prefix of the expiry
/// index; returns how many providers left [`PROVIDERS_TABLE`].
fn sweep_providers(txn: &impl WriteTxn, now: WallTime) -> Result<usize, NetabaseError> {
    expiry::ensure_built(txn)?;
    let now_millis = wall_millis();
    let mut removed = 0;
    for due in expiry::due(txn, PROVIDERS_TABLE, now, now_millis, Duration::MAX)? {
        let list = txn
            .get(PROVIDERS_TABLE, &due.key)?
            .and_then(|bytes| decode::<Vec<StoredProvider>>(&bytes).ok());
        if let Some(mut list) = list {
            let before = list.len();
            list.retain(|p| !p.is_expired(now));
            if list.len() != before {
                removed += before - list.len();
                if list.is_empty() {
                    delete_indexed(txn, PROVIDERS_TABLE, &due.key)?;
                } else {
                    let bytes = encode(&list).map_err(encode_error)?;
                    put_indexed(txn, PROVIDERS_TABLE, &due.key, &bytes)?;
                }
            }
        }
        expiry::drop_if_stale(txn, PROVIDERS_TABLE, &due.entry, &due.key)?;
    }
    for due in expiry::due(txn, PROVIDED_TABLE, now, now_millis, Duration::MAX)? {
        let expired = txn
            .get(PROVIDED_TABLE, &due.key)?
            .is_some_and(|bytes| decode::<StoredProvider>(&bytes).is_ok_and(|p| p.is_expired(now)));
        if expired {
            delete_indexed(txn, PROVIDED_TABLE, &due.key)?;
        } else {
            expiry::drop_if_stale(txn, PROVIDED_TABLE, &due.entry, &due.key)?;
        }
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

    /// A record refused by the signature checks or the winner rule gives
    /// `MaxRecords` (libp2p's store errors have no closer variant) and is not counted
    /// as a backend failure.
    fn put(&mut self, r: Record) -> store::Result<()> {
        self.try_put(&r).map_err(|e| match e {
            KadStoreError::Limit(limit) => limit,
            KadStoreError::Refused(_) => store::Error::MaxRecords,
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
