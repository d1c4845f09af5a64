//! The rules of the persistent Kademlia record store, on every backend.
#![cfg(feature = "libp2p")]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::kad::store::{Error as StoreError, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};
use netabase_store::NetabaseError;
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::{Backend, Capabilities, ReadTxn, WriteTxn};
use netabase_store::kad::{
    BatchPut, EXPIRY_TABLE, Envelope, KadStore, KadStoreConfig, KadStoreError, RECORDS_TABLE,
    REPLICAS_TABLE, RecordSigner, SignedRecord, SignedRecordError, VERIFY_CHUNK,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn key(name: &str) -> RecordKey {
    RecordKey::new(&name.as_bytes())
}

/// The author of the records of these tests.
fn signer() -> &'static RecordSigner {
    static SIGNER: OnceLock<RecordSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        RecordSigner::new(&Keypair::generate_ed25519())
            .unwrap_or_else(|e| panic!("an ed25519 key signs: {e}"))
    })
}

/// A record signed by [`signer`], with a stamp newer than every earlier one.
fn record(name: &str, value: &[u8]) -> Record {
    let signer = signer();
    signer
        .seal(key(name), Some(value.to_vec()), signer.next_stamp(None))
        .to_record()
}

/// The model bytes of a stored record.
fn value_of(record: &Record) -> Option<Vec<u8>> {
    SignedRecord::open(record).ok()?.value().map(<[u8]>::to_vec)
}

fn past() -> Option<Instant> {
    Instant::now().checked_sub(Duration::from_secs(5))
}

fn small_config() -> KadStoreConfig {
    KadStoreConfig {
        max_records: 3,
        max_value_bytes: 16,
        max_providers_per_key: 2,
        max_provided_keys: 2,
        ..KadStoreConfig::default()
    }
}

/// What a record of [`mixed_batch`] must become.
#[derive(Debug)]
enum Expected {
    Stored,
    /// Refused as signed by this peer under another author's name.
    Stolen(PeerId),
    /// Refused: the signature does not verify.
    BadSignature,
}

impl Expected {
    fn check(&self, outcome: &BatchPut, i: usize) -> Result<(), String> {
        let fine = match (self, outcome) {
            (Expected::Stored, BatchPut::Stored) => true,
            (
                Expected::Stolen(thief),
                BatchPut::Refused(SignedRecordError::StolenAuthorship { signer, claimed }),
            ) => signer == thief && *claimed == signer_id(),
            (Expected::BadSignature, BatchPut::Refused(SignedRecordError::BadSignature { .. })) => {
                true
            }
            _ => false,
        };
        fine.then_some(())
            .ok_or_else(|| format!("record {i}: expected {self:?}, got {outcome:?}"))
    }
}

fn signer_id() -> netabase_store::sync::WriterId {
    signer().author()
}

/// A decoded record and the peer it came from.
type Received = (netabase_store::kad::UnverifiedRecord, Option<PeerId>);

/// `n` records, each with the peer it came from, as a node receives a burst: mostly
/// valid ones from two authors, and bad ones at the edges of and inside the
/// verification chunks: signed by a thief under [`signer`]'s name (named by the sender
/// or by the record's publisher field), re-stamped or moved to another key after
/// signing, or carrying a flipped signature bit.
fn mixed_batch(n: usize) -> Result<(Vec<Received>, Vec<Expected>), Box<dyn std::error::Error>> {
    let other = RecordSigner::new(&Keypair::generate_ed25519())?;
    let thief = Keypair::generate_ed25519();
    let thief_id = thief.public().to_peer_id();
    let mut batch = Vec::with_capacity(n);
    let mut expected = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("mixed-{i}");
        let edge = i % VERIFY_CHUNK == 0 || i % VERIFY_CHUNK == VERIFY_CHUNK - 1 || i == n - 1;
        let kind = if edge || i % 11 == 5 { i % 5 } else { 5 };
        let mut sender = Some(PeerId::random());
        let (record, expect) = match kind {
            0 => {
                let mut envelope = Envelope::decode(&record(&name, b"v").value)?;
                envelope.signature = thief.sign(&envelope.signing_bytes(&key(&name)))?;
                sender = Some(thief_id);
                (
                    Record::new(key(&name), envelope.encode()),
                    Expected::Stolen(thief_id),
                )
            }
            1 => {
                let mut envelope = Envelope::decode(&record(&name, b"v").value)?;
                envelope.signature = thief.sign(&envelope.signing_bytes(&key(&name)))?;
                let mut stolen = Record::new(key(&name), envelope.encode());
                stolen.publisher = Some(thief_id);
                sender = None;
                (stolen, Expected::Stolen(thief_id))
            }
            2 => {
                let mut envelope = Envelope::decode(&record(&name, b"v").value)?;
                envelope.stamp.hlc.counter += 1;
                (
                    Record::new(key(&name), envelope.encode()),
                    Expected::BadSignature,
                )
            }
            3 => {
                let mut moved = record(&format!("{name}-elsewhere"), b"v");
                moved.key = key(&name);
                (moved, Expected::BadSignature)
            }
            4 => {
                let mut envelope = Envelope::decode(&record(&name, b"v").value)?;
                envelope.signature[40] ^= 0x10;
                (
                    Record::new(key(&name), envelope.encode()),
                    Expected::BadSignature,
                )
            }
            _ if i % 2 == 0 => (record(&name, b"valid"), Expected::Stored),
            _ => {
                let stamp = other.next_stamp(None);
                let sealed = other.seal(key(&name), Some(b"valid".to_vec()), stamp);
                (sealed.to_record(), Expected::Stored)
            }
        };
        batch.push((SignedRecord::decode_unverified(&record)?, sender));
        expected.push(expect);
    }
    Ok((batch, expected))
}

/// The rules, written once against a function that opens a store over a fresh backend.
macro_rules! record_store_rules {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            fn open(
                local: PeerId,
                config: KadStoreConfig,
            ) -> Result<KadStore<impl Backend + std::fmt::Debug>, NetabaseError> {
                Ok(KadStore::new($open?, local, config))
            }

            #[test]
            fn a_batch_is_one_commit_with_an_outcome_per_record() -> TestResult {
                let local = PeerId::random();
                let config = KadStoreConfig {
                    max_records: 100,
                    ..small_config()
                };
                let mut store = open(local, config)?;
                store.put(record("mine", b"local"))?;
                let older = record("old", b"1");
                store.put(record("old", b"2"))?;
                let unsigned = Record::new(key("raw"), b"x".to_vec());
                let batch = [
                    record("a", b"1"),
                    record("big", &[0; 17]),
                    record("mine", b"remote"),
                    older,
                    unsigned,
                    record("b", b"2"),
                ];
                let keep_local = |_: &Record, old: Option<&Record>| {
                    old.is_none_or(|o| value_of(o).as_deref() != Some(b"local".as_slice()))
                };
                let outcomes = store.try_put_batch(&batch, keep_local)?;
                assert!(
                    matches!(
                        outcomes.as_slice(),
                        [
                            BatchPut::Stored,
                            BatchPut::Limit(StoreError::ValueTooLarge),
                            BatchPut::Declined,
                            BatchPut::Refused(SignedRecordError::Superseded { .. }),
                            BatchPut::Refused(_),
                            BatchPut::Stored
                        ]
                    ),
                    "{outcomes:?}"
                );
                let value = |name: &str| store.get(&key(name)).and_then(|r| value_of(&r));
                assert_eq!(value("mine"), Some(b"local".to_vec()));
                assert_eq!(value("old"), Some(b"2".to_vec()));
                assert_eq!(value("b"), Some(b"2".to_vec()));
                assert!(store.get(&key("big")).is_none());
                assert!(store.get(&key("raw")).is_none());
                assert_eq!(store.record_count()?, 4);

                // A key twice in a batch: the later record wins.
                let twice = [record("x", b"1"), record("x", b"2")];
                let outcomes = store.try_put_batch(&twice, |_, _| true)?;
                assert!(matches!(
                    outcomes.as_slice(),
                    [BatchPut::Stored, BatchPut::Stored]
                ));
                assert_eq!(
                    store.get(&key("x")).and_then(|r| value_of(&r)),
                    Some(b"2".to_vec())
                );
                Ok(())
            }

            #[test]
            fn an_unverified_batch_verifies_each_signature_with_its_sender() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                let older = record("held", b"1");
                store.try_put(&record("held", b"2"))?;
                // Signed by `thief` under the author of `signer()`: a stolen claim.
                let thief = Keypair::generate_ed25519();
                let mut envelope = Envelope::decode(&record("stolen", b"v").value)?;
                envelope.signature = thief.sign(&envelope.signing_bytes(&key("stolen")))?;
                let stolen = Record::new(key("stolen"), envelope.encode());
                let mut envelope = Envelope::decode(&record("bad", b"v").value)?;
                envelope.signature[0] ^= 1;
                let bad = Record::new(key("bad"), envelope.encode());
                let good = record("good", b"v");
                let thief_id = thief.public().to_peer_id();
                let batch = vec![
                    (SignedRecord::decode_unverified(&good)?, None),
                    (SignedRecord::decode_unverified(&stolen)?, Some(thief_id)),
                    (SignedRecord::decode_unverified(&bad)?, Some(PeerId::random())),
                    (SignedRecord::decode_unverified(&older)?, None),
                ];
                let outcomes = store.try_put_unverified_batch(batch)?;
                assert!(
                    matches!(
                        outcomes.as_slice(),
                        [
                            BatchPut::Stored,
                            BatchPut::Refused(SignedRecordError::StolenAuthorship { signer, .. }),
                            BatchPut::Refused(SignedRecordError::BadSignature { .. }),
                            BatchPut::Refused(SignedRecordError::Superseded { .. }),
                        ] if *signer == thief_id
                    ),
                    "{outcomes:?}"
                );
                let value = |name: &str| {
                    store
                        .try_get(&key(name))
                        .ok()
                        .flatten()
                        .and_then(|r| value_of(&r))
                };
                assert_eq!(value("good"), Some(b"v".to_vec()));
                assert_eq!(value("held"), Some(b"2".to_vec()));
                assert_eq!(value("stolen"), None);
                assert_eq!(value("bad"), None);
                Ok(())
            }

            #[test]
            fn a_mixed_batch_over_many_chunks_stores_exactly_the_valid_records() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                let (batch, expected) = mixed_batch(3 * VERIFY_CHUNK + 7)?;
                let keys: Vec<RecordKey> = batch.iter().map(|(r, _)| r.key().clone()).collect();
                let outcomes = store.try_put_unverified_batch(batch)?;
                assert_eq!(outcomes.len(), expected.len());
                for (i, (outcome, expected)) in outcomes.iter().zip(&expected).enumerate() {
                    expected.check(outcome, i)?;
                    let held = store.try_get(&keys[i])?;
                    assert_eq!(
                        held.is_some(),
                        matches!(expected, Expected::Stored),
                        "record {i}: held {held:?}, expected {expected:?}"
                    );
                }
                Ok(())
            }

            #[test]
            fn a_batch_stops_storing_new_keys_at_the_record_limit() -> TestResult {
                let store = open(PeerId::random(), small_config())?;
                let batch = [
                    record("c", b"1"),
                    record("d", b"2"),
                    record("e", b"3"),
                    record("f", b"4"),
                ];
                let outcomes = store.try_put_batch(&batch, |_, _| true)?;
                assert!(matches!(
                    outcomes.as_slice(),
                    [
                        BatchPut::Stored,
                        BatchPut::Stored,
                        BatchPut::Stored,
                        BatchPut::Limit(StoreError::MaxRecords)
                    ]
                ));
                assert_eq!(store.record_count()?, 3);
                Ok(())
            }

            #[test]
            fn put_get_remove() -> TestResult {
                let mut store = open(PeerId::random(), KadStoreConfig::default())?;
                let r = record("a", b"one");
                store.put(r.clone())?;
                assert_eq!(store.get(&r.key).map(|c| c.into_owned()), Some(r.clone()));
                store.remove(&r.key);
                assert!(store.get(&r.key).is_none());
                assert_eq!(store.record_count()?, 0);
                Ok(())
            }

            #[test]
            fn the_publisher_is_the_author_whatever_the_sender_claims() -> TestResult {
                let mut store = open(PeerId::random(), KadStoreConfig::default())?;
                let mut with = record("with", b"v");
                with.publisher = Some(PeerId::random());
                let mut without = record("without", b"v");
                without.publisher = None;
                store.put(with.clone())?;
                store.put(without.clone())?;
                let author = Some(signer().peer_id());
                assert_eq!(store.get(&with.key).and_then(|r| r.publisher), author);
                assert_eq!(store.get(&without.key).and_then(|r| r.publisher), author);
                Ok(())
            }

            #[test]
            fn unsigned_and_altered_records_are_refused() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                let plain = Record::new(key("a"), b"v".to_vec());
                assert!(matches!(
                    store.try_put(&plain),
                    Err(KadStoreError::Refused(SignedRecordError::Unsigned { .. }))
                ));
                let mut altered = record("a", b"v");
                if let Some(last) = altered.value.last_mut() {
                    *last ^= 1;
                }
                assert!(matches!(
                    store.try_put(&altered),
                    Err(KadStoreError::Refused(SignedRecordError::TamperedValue))
                ));
                assert_eq!(store.record_count()?, 0);
                // Refusals are not backend failures.
                let mut store = store;
                assert!(store.put(plain).is_err());
                assert_eq!(store.backend_errors(), 0);
                Ok(())
            }

            #[test]
            fn a_stamp_too_far_in_the_future_is_refused() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                let signer = signer();
                let mut stamp = signer.next_stamp(None);
                stamp.hlc.millis = u64::MAX;
                let future = signer.seal(key("k"), Some(b"v".to_vec()), stamp);
                assert!(matches!(
                    store.try_put(&future.to_record()),
                    Err(KadStoreError::Refused(
                        SignedRecordError::FutureStamp { .. }
                    ))
                ));
                assert!(store.try_get(&key("k"))?.is_none());
                Ok(())
            }

            #[test]
            fn the_greatest_stamp_wins_whatever_the_arrival_order() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                let older = record("k", b"older");
                let newer = record("k", b"newer");
                store.try_put(&newer)?;
                assert!(matches!(
                    store.try_put(&older),
                    Err(KadStoreError::Refused(SignedRecordError::Superseded { .. }))
                ));
                // The same version again is accepted (replication refreshes it).
                store.try_put(&newer)?;
                let held = store.try_get(&key("k"))?.ok_or("record lost")?;
                assert_eq!(value_of(&held), Some(b"newer".to_vec()));
                let stamp = SignedRecord::open(&newer)?.stamp();
                assert_eq!(store.held_stamp(&key("k"))?, Some(stamp));
                Ok(())
            }

            #[test]
            fn a_tombstone_wins_over_older_copies_until_it_expires() -> TestResult {
                let ttl = Duration::from_secs(3600);
                let config = KadStoreConfig {
                    tombstone_ttl: ttl,
                    ..KadStoreConfig::default()
                };
                let store = open(PeerId::random(), config)?;
                let older = record("k", b"v");
                let signer = signer();
                let tombstone = signer.seal(key("k"), None, signer.next_stamp(None));
                store.try_put(&older)?;
                store.try_put(&tombstone.to_record())?;
                assert!(matches!(
                    store.try_put(&older),
                    Err(KadStoreError::Refused(SignedRecordError::Superseded { .. }))
                ));
                // The tombstone is served (so it replicates) and expires with its TTL.
                let held = store.try_get(&key("k"))?.ok_or("tombstone lost")?;
                assert!(SignedRecord::open(&held)?.is_tombstone());
                assert!(held.expires.is_some_and(|e| e <= Instant::now() + ttl));

                // A tombstone older than the TTL is refused, and does not block a put.
                let born = tombstone.stamp().hlc.millis.saturating_sub(7_200_000);
                let mut stamp = tombstone.stamp();
                stamp.hlc.millis = born;
                let stale = signer.seal(key("j"), None, stamp);
                assert!(matches!(
                    store.try_put(&stale.to_record()),
                    Err(KadStoreError::Refused(
                        SignedRecordError::ExpiredTombstone { .. }
                    ))
                ));
                assert!(store.try_get(&key("j"))?.is_none());
                Ok(())
            }

            #[test]
            fn expired_records_are_never_returned_and_are_swept() -> TestResult {
                let mut store = open(PeerId::random(), KadStoreConfig::default())?;
                let Some(past) = past() else { return Ok(()) };
                let mut old = record("old", b"v");
                old.expires = Some(past);
                let mut fresh = record("fresh", b"v");
                fresh.expires = Some(Instant::now() + Duration::from_secs(3600));
                store.put(old.clone())?;
                store.put(fresh.clone())?;
                assert!(store.get(&old.key).is_none());
                let listed: Vec<_> = store.records().map(|r| r.key.clone()).collect();
                assert_eq!(listed, vec![fresh.key.clone()]);
                assert_eq!(store.record_count()?, 2);
                let swept = store.sweep_expired()?;
                assert_eq!(swept.records, 1);
                assert_eq!(store.record_count()?, 1);
                Ok(())
            }

            #[test]
            fn expiry_round_trips_as_wall_clock_time() -> TestResult {
                let mut store = open(PeerId::random(), KadStoreConfig::default())?;
                let expires = Instant::now() + Duration::from_secs(3600);
                let mut r = record("a", b"v");
                r.expires = Some(expires);
                store.put(r.clone())?;
                let back = store
                    .get(&r.key)
                    .and_then(|r| r.expires)
                    .ok_or("no expiry")?;
                let drift = if back > expires {
                    back - expires
                } else {
                    expires - back
                };
                assert!(drift < Duration::from_millis(100), "drift {drift:?}");
                Ok(())
            }

            #[test]
            fn value_size_limit_is_inclusive() -> TestResult {
                let mut store = open(PeerId::random(), small_config())?;
                store.put(record("max", &[7; 16]))?;
                assert!(matches!(
                    store.put(record("big", &[7; 17])),
                    Err(StoreError::ValueTooLarge)
                ));
                assert!(store.get(&key("big")).is_none());
                Ok(())
            }

            #[test]
            fn record_count_limit_refuses_new_keys_only() -> TestResult {
                let mut store = open(PeerId::random(), small_config())?;
                for name in ["a", "b", "c"] {
                    store.put(record(name, b"v"))?;
                }
                assert!(matches!(
                    store.put(record("d", b"v")),
                    Err(StoreError::MaxRecords)
                ));
                // Replacing an existing key is not a new record.
                store.put(record("a", b"w"))?;
                assert_eq!(
                    store.get(&key("a")).and_then(|r| value_of(&r)),
                    Some(b"w".to_vec())
                );
                assert!(store.get(&key("d")).is_none());
                Ok(())
            }

            #[test]
            fn replica_copies_neither_count_toward_nor_meet_the_record_limit() -> TestResult {
                let store = open(PeerId::random(), small_config())?;
                let signer = signer();
                for i in 0..5 {
                    let copy = signer.seal(
                        key(&format!("replica{i}")),
                        Some(b"kept".to_vec()),
                        signer.next_stamp(None),
                    );
                    store.try_put_replica(&copy)?;
                }
                assert_eq!(store.replica_count()?, 5);
                // The DHT's records still have their whole limit, then meet it.
                for i in 0..3 {
                    store.try_put(&record(&format!("dht{i}"), b"v"))?;
                }
                assert!(matches!(
                    store.try_put(&record("dht3", b"v")),
                    Err(KadStoreError::Limit(StoreError::MaxRecords))
                ));
                // A batch too: a newer version of a replica's key is stored (it stays
                // a replica), a new DHT key is refused.
                let outcomes =
                    store.try_put_batch(&[record("replica0", b"newer"), record("dht4", b"v")], |_, _| true)?;
                assert!(matches!(outcomes[0], BatchPut::Stored), "{outcomes:?}");
                assert!(
                    matches!(outcomes[1], BatchPut::Limit(StoreError::MaxRecords)),
                    "{outcomes:?}"
                );
                assert_eq!(store.replica_count()?, 5);
                assert_eq!(store.record_count()?, 8);
                // Every copy is read, listed in key order, and counted.
                let listed: Vec<_> = store.records().map(|r| r.key.clone()).collect();
                let mut expected: Vec<_> = (0..3)
                    .map(|i| key(&format!("dht{i}")))
                    .chain((0..5).map(|i| key(&format!("replica{i}"))))
                    .collect();
                expected.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
                assert_eq!(listed, expected);
                let held = store.try_get(&key("replica0"))?.ok_or("replica0 is served")?;
                assert_eq!(value_of(&held), Some(b"newer".to_vec()));
                assert!(store.held_stamp(&key("replica4"))?.is_some());
                // A sweep leaves the replica's copies (they do not expire).
                store.sweep_expired()?;
                assert_eq!(store.replica_count()?, 5);
                Ok(())
            }

            #[test]
            fn a_dht_put_of_a_replica_key_meets_the_replica_copy() -> TestResult {
                let store = open(PeerId::random(), small_config())?;
                let signer = signer();
                let older = record("k", b"older");
                let copy = signer.seal(key("k"), Some(b"copy".to_vec()), signer.next_stamp(None));
                store.try_put_replica(&copy)?;
                // An older version is refused by the replica's copy.
                assert!(matches!(
                    store.try_put(&older),
                    Err(KadStoreError::Refused(SignedRecordError::Superseded { .. }))
                ));
                // A newer one, with a TTL already over, replaces the copy and stays a
                // replica: no second copy, no expiry.
                let mut newer = record("k", b"newer");
                newer.expires = past();
                store.try_put(&newer)?;
                assert_eq!((store.replica_count()?, store.record_count()?), (1, 1));
                let held = store.try_get(&key("k"))?.ok_or("the copy is served")?;
                assert_eq!(value_of(&held), Some(b"newer".to_vec()));
                // A replica's copy of a key held for the DHT moves it: one copy still.
                store.try_put(&record("d", b"dht"))?;
                let replica = signer.seal(key("d"), Some(b"replica".to_vec()), signer.next_stamp(None));
                store.try_put_replica(&replica)?;
                assert_eq!((store.replica_count()?, store.record_count()?), (2, 2));
                let held = store.try_get(&key("d"))?.ok_or("d is served")?;
                assert_eq!(value_of(&held), Some(b"replica".to_vec()));
                // Removing a key removes the replica's copy.
                assert!(store.try_remove(&key("d"))?);
                assert!(store.try_get(&key("d"))?.is_none());
                assert_eq!(store.record_count()?, 1);
                Ok(())
            }

            #[test]
            fn a_full_store_sweeps_expired_records_to_make_room() -> TestResult {
                let mut store = open(PeerId::random(), small_config())?;
                let Some(past) = past() else { return Ok(()) };
                let mut old = record("old", b"v");
                old.expires = Some(past);
                store.put(old)?;
                store.put(record("b", b"v"))?;
                store.put(record("c", b"v"))?;
                store.put(record("d", b"v"))?;
                assert_eq!(store.record_count()?, 3);
                Ok(())
            }

            #[test]
            fn the_sweep_removes_exactly_the_records_that_are_due() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                let (Some(five), Some(one)) = (past(), Instant::now().checked_sub(Duration::from_secs(1)))
                else {
                    return Ok(());
                };
                let later = Instant::now() + Duration::from_secs(3600);
                let put = |name: &str, expires: Option<Instant>| {
                    let mut r = record(name, b"v");
                    r.expires = expires;
                    store.try_put(&r)
                };
                put("due/5s", Some(five))?;
                put("due/1s", Some(one))?;
                put("later", Some(later))?;
                put("never", None)?;
                // Replaced by a version with another expiry, either way.
                put("was-due", Some(five))?;
                put("was-due", Some(later))?;
                put("now-due", Some(later))?;
                put("now-due", Some(one))?;
                // Replaced within a batch (the one-pass path).
                put("batch", Some(five))?;
                let mut newer = record("batch", b"w");
                newer.expires = Some(later);
                let outcomes = store.try_put_batch(&[newer], |_, _| true)?;
                assert!(matches!(outcomes.as_slice(), [BatchPut::Stored]));
                // Removed, and moved to the replica's copies (which have no expiry).
                put("removed", Some(five))?;
                assert!(store.try_remove(&key("removed"))?);
                put("replica", Some(five))?;
                let signer = signer();
                store.try_put_replica(&signer.seal(
                    key("replica"),
                    Some(b"copy".to_vec()),
                    signer.next_stamp(None),
                ))?;

                assert_eq!(store.sweep_expired()?.records, 3);
                let mut left: Vec<_> = store.try_records()?.into_iter().map(|r| r.key).collect();
                left.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
                let want: Vec<_> = ["batch", "later", "never", "replica", "was-due"]
                    .into_iter()
                    .map(key)
                    .collect();
                assert_eq!(left, want);
                assert_eq!(store.record_count()?, 5);
                // The index is exact: the three unexpired expiries and its marker.
                assert_eq!(store.backend().begin_read()?.len(EXPIRY_TABLE)?, 4);
                assert_eq!(store.sweep_expired()?.records, 0);
                // Once removed, nothing is indexed but the marker.
                for name in ["batch", "later", "never", "replica", "was-due"] {
                    assert!(store.try_remove(&key(name))?);
                }
                assert_eq!(store.backend().begin_read()?.len(EXPIRY_TABLE)?, 1);
                Ok(())
            }

            #[test]
            fn a_full_store_frees_only_expired_records_before_refusing() -> TestResult {
                let store = open(PeerId::random(), small_config())?;
                let Some(past) = past() else { return Ok(()) };
                let later = Instant::now() + Duration::from_secs(3600);
                for (name, expires) in [("old", past), ("b", later), ("c", later)] {
                    let mut r = record(name, b"v");
                    r.expires = Some(expires);
                    store.try_put(&r)?;
                }
                store.try_put(&record("d", b"v"))?;
                assert!(store.try_get(&key("old"))?.is_none());
                assert_eq!(store.record_count()?, 3);
                assert!(matches!(
                    store.try_put(&record("e", b"v")),
                    Err(KadStoreError::Limit(StoreError::MaxRecords))
                ));
                for name in ["b", "c", "d"] {
                    assert!(store.try_get(&key(name))?.is_some(), "{name}");
                }
                Ok(())
            }

            #[test]
            fn an_index_entry_that_does_not_match_its_record_deletes_nothing() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                store.try_put(&record("live", b"v"))?;
                // An expiry entry of the Unix epoch naming the live record (kind 0,
                // time 0, the records table's tag), as a foreign writer could leave.
                let mut entry = vec![0; 13];
                entry.push(b'r');
                entry.extend_from_slice(b"live");
                let txn = store.backend().begin_write()?;
                txn.put(EXPIRY_TABLE, &entry, &[])?;
                txn.commit()?;
                assert_eq!(store.sweep_expired()?.records, 0);
                assert!(store.try_get(&key("live"))?.is_some());
                assert_eq!(store.backend().begin_read()?.get(EXPIRY_TABLE, &entry)?, None);
                Ok(())
            }

            #[test]
            fn provided_yields_local_provider_records_only() -> TestResult {
                let local = PeerId::random();
                let mut store = open(local, KadStoreConfig::default())?;
                let mine = ProviderRecord::new(key("k"), local, Vec::new());
                let theirs = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                let other_key = ProviderRecord::new(key("j"), PeerId::random(), Vec::new());
                store.add_provider(mine.clone())?;
                store.add_provider(theirs.clone())?;
                store.add_provider(other_key)?;
                let provided: Vec<_> = store.provided().map(|p| p.into_owned()).collect();
                assert_eq!(provided, vec![mine.clone()]);
                assert_eq!(store.providers(&key("k")), vec![mine.clone(), theirs]);
                store.remove_provider(&mine.key, &local);
                assert_eq!(store.provided().count(), 0);
                assert_eq!(store.providers(&key("k")).len(), 1);
                Ok(())
            }

            #[test]
            fn providers_per_key_are_capped_keeping_the_oldest() -> TestResult {
                let mut store = open(PeerId::random(), small_config())?;
                let first = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                let second = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                let third = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                store.add_provider(first.clone())?;
                store.add_provider(second.clone())?;
                store.add_provider(third.clone())?;
                assert_eq!(
                    store.providers(&key("k")),
                    vec![first.clone(), second.clone()]
                );
                // A known provider is updated in place, keeping its position.
                let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse()?;
                let mut updated = first.clone();
                updated.addresses = vec![addr];
                store.add_provider(updated.clone())?;
                assert_eq!(store.providers(&key("k")), vec![updated, second]);
                Ok(())
            }

            #[test]
            fn expired_providers_are_hidden_and_free_their_slot() -> TestResult {
                let mut store = open(PeerId::random(), small_config())?;
                let Some(past) = past() else { return Ok(()) };
                let mut old = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                old.expires = Some(past);
                let a = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                let b = ProviderRecord::new(key("k"), PeerId::random(), Vec::new());
                store.add_provider(old)?;
                store.add_provider(a.clone())?;
                assert_eq!(store.providers(&key("k")), vec![a.clone()]);
                store.add_provider(b.clone())?;
                assert_eq!(store.providers(&key("k")), vec![a, b]);
                Ok(())
            }

            #[test]
            fn provided_keys_limit_gives_max_provided_keys() -> TestResult {
                let mut store = open(PeerId::random(), small_config())?;
                for name in ["a", "b"] {
                    store.add_provider(ProviderRecord::new(
                        key(name),
                        PeerId::random(),
                        Vec::new(),
                    ))?;
                }
                let refused =
                    store.add_provider(ProviderRecord::new(key("c"), PeerId::random(), Vec::new()));
                assert!(matches!(refused, Err(StoreError::MaxProvidedKeys)));
                // Another provider of a known key is still accepted.
                store.add_provider(ProviderRecord::new(key("a"), PeerId::random(), Vec::new()))?;
                assert_eq!(store.providers(&key("a")).len(), 2);
                Ok(())
            }

            #[test]
            fn sweep_removes_expired_local_provider_records() -> TestResult {
                let local = PeerId::random();
                let mut store = open(local, KadStoreConfig::default())?;
                let Some(past) = past() else { return Ok(()) };
                let mut mine = ProviderRecord::new(key("k"), local, Vec::new());
                mine.expires = Some(past);
                store.add_provider(mine)?;
                assert_eq!(store.provided().count(), 0);
                assert_eq!(store.sweep_expired()?.providers, 1);
                assert!(store.providers(&key("k")).is_empty());
                Ok(())
            }

            #[test]
            fn the_sweep_removes_exactly_the_providers_that_are_due() -> TestResult {
                let local = PeerId::random();
                let mut store = open(local, KadStoreConfig::default())?;
                let Some(past) = past() else { return Ok(()) };
                let later = Instant::now() + Duration::from_secs(3600);
                let provider = |key_name: &str, peer: PeerId, expires: Instant| {
                    let mut p = ProviderRecord::new(key(key_name), peer, Vec::new());
                    p.expires = Some(expires);
                    p
                };
                let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
                // One list with a live and an expired provider (an add drops the
                // expired providers already listed, so the expired one comes last).
                store.add_provider(provider("k", b, later))?;
                store.add_provider(provider("k", a, past))?;
                // A provider renewed with a later expiry, and a live one removed.
                store.add_provider(provider("renewed", c, past))?;
                store.add_provider(provider("renewed", c, later))?;
                store.add_provider(provider("gone", a, past))?;
                store.remove_provider(&key("gone"), &a);
                // The local provider record, expired.
                store.add_provider(provider("mine", local, past))?;
                assert_eq!(store.sweep_expired()?.providers, 2);
                let held: Vec<_> = store.providers(&key("k")).iter().map(|p| p.provider).collect();
                assert_eq!(held, vec![b]);
                assert_eq!(store.providers(&key("renewed")).len(), 1);
                assert!(store.providers(&key("mine")).is_empty());
                assert_eq!(store.try_provided()?.len(), 0);
                // Exact: the two live expiries and the marker.
                assert_eq!(store.backend().begin_read()?.len(EXPIRY_TABLE)?, 3);
                assert_eq!(store.sweep_expired()?.providers, 0);
                Ok(())
            }

            #[test]
            fn corrupt_bytes_are_an_error_not_a_panic() -> TestResult {
                let mut store = open(PeerId::random(), KadStoreConfig::default())?;
                store.put(record("good", b"v"))?;
                {
                    let txn = store.backend().begin_write()?;
                    txn.put(RECORDS_TABLE, b"bad", &[9, 9, 9])?;
                    txn.commit()?;
                }
                assert!(store.get(&key("bad")).is_none());
                assert_eq!(store.backend_errors(), 1);
                assert!(matches!(
                    store.try_get(&key("bad")),
                    Err(KadStoreError::Storage(NetabaseError::Decode(_)))
                ));
                // The good record is still listed; the bad one is skipped and counted.
                assert_eq!(store.records().count(), 1);
                assert!(
                    store
                        .take_last_error()
                        .is_some_and(|e| e.contains(RECORDS_TABLE))
                );
                Ok(())
            }

            #[test]
            fn a_corrupt_replica_copy_is_an_error_naming_its_table() -> TestResult {
                let store = open(PeerId::random(), KadStoreConfig::default())?;
                store.try_put(&record("good", b"v"))?;
                {
                    let txn = store.backend().begin_write()?;
                    txn.put(REPLICAS_TABLE, b"bad", &[9, 9, 9])?;
                    txn.commit()?;
                }
                let error = store.try_get(&key("bad")).err().ok_or("bad bytes decode")?;
                assert!(error.to_string().contains(REPLICAS_TABLE), "{error}");
                assert_eq!(store.records().count(), 1);
                // Undecodable bytes do not block a new version.
                store.try_put(&record("bad", b"new"))?;
                let held = store.try_get(&key("bad"))?.ok_or("the new version is held")?;
                assert_eq!(value_of(&held), Some(b"new".to_vec()));
                Ok(())
            }
        }
    };
}

record_store_rules!(memory, Ok::<_, NetabaseError>(MemoryBackend::new()));
record_store_rules!(redb, netabase_store::backend::redb::RedbBackend::temp());
#[cfg(feature = "sled")]
record_store_rules!(sled, netabase_store::backend::sled::SledBackend::temp());

#[test]
fn a_shorter_tombstone_ttl_applies_to_tombstones_already_stored() -> TestResult {
    let backend = MemoryBackend::new();
    let store = KadStore::new(backend.clone(), PeerId::random(), KadStoreConfig::default());
    let signer = signer();
    let tombstone = signer.seal(key("k"), None, signer.next_stamp(None));
    store.try_put(&tombstone.to_record())?;
    store.try_put(&record("r", b"v"))?;
    assert!(store.try_get(&key("k"))?.is_some());
    let config = KadStoreConfig {
        tombstone_ttl: Duration::ZERO,
        ..KadStoreConfig::default()
    };
    let shorter = KadStore::new(backend, PeerId::random(), config);
    assert!(shorter.try_get(&key("k"))?.is_none());
    assert_eq!(shorter.held_stamp(&key("k"))?, None);
    assert_eq!(shorter.sweep_expired()?.records, 1);
    // Records are not tombstones: they stay.
    assert!(shorter.try_get(&key("r"))?.is_some());
    Ok(())
}

#[test]
fn replica_tombstones_expire_with_the_tombstone_ttl() -> TestResult {
    let backend = MemoryBackend::new();
    let store = KadStore::new(backend.clone(), PeerId::random(), KadStoreConfig::default());
    let signer = signer();
    store.try_put_replica(&signer.seal(key("gone"), None, signer.next_stamp(None)))?;
    store.try_put_replica(&signer.seal(
        key("kept"),
        Some(b"v".to_vec()),
        signer.next_stamp(None),
    ))?;
    assert!(store.try_get(&key("gone"))?.is_some());
    let config = KadStoreConfig {
        tombstone_ttl: Duration::ZERO,
        ..KadStoreConfig::default()
    };
    let shorter = KadStore::new(backend, PeerId::random(), config);
    assert!(shorter.try_get(&key("gone"))?.is_none());
    assert_eq!(shorter.sweep_expired()?.records, 1);
    assert_eq!(shorter.replica_count()?, 1);
    assert!(shorter.try_get(&key("kept"))?.is_some());
    Ok(())
}

/// A store written before replicas were kept apart held a replica's copies among the
/// DHT's records (without expiry): reopened, it serves them, and `adopt_replicas` moves
/// them out of the record limit's way.
#[test]
fn a_store_written_the_old_way_serves_and_adopts_its_replica_copies() -> TestResult {
    use netabase_store::backend::redb::RedbBackend;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kad.redb");
    let signer = signer();
    let config = KadStoreConfig {
        max_records: 6,
        ..KadStoreConfig::default()
    };
    {
        let old = KadStore::new(
            RedbBackend::create(&path)?,
            PeerId::random(),
            config.clone(),
        );
        for i in 0..5 {
            let copy = signer.seal(
                key(&format!("rep/{i}")),
                Some(format!("copy {i}").into_bytes()),
                signer.next_stamp(None),
            );
            // The old way: the copy among the DHT's records, without expiry.
            old.try_put_signed(&copy, None)?;
        }
        old.try_put(&record("dht/0", b"v"))?;
        assert_eq!(old.replica_count()?, 0);
    }
    let store = KadStore::new(RedbBackend::create(&path)?, PeerId::random(), config);
    for i in 0..5 {
        let held = store
            .try_get(&key(&format!("rep/{i}")))?
            .ok_or("an old copy is served")?;
        assert_eq!(value_of(&held), Some(format!("copy {i}").into_bytes()));
    }
    assert_eq!(store.records().count(), 6);
    // Before they move, the old copies fill the DHT's limit.
    assert!(matches!(
        store.try_put(&record("dht/1", b"v")),
        Err(KadStoreError::Limit(StoreError::MaxRecords))
    ));
    let moved = store.adopt_replicas(|key| key.as_ref().starts_with(b"rep/"))?;
    assert_eq!(moved, 5);
    assert_eq!(
        store.adopt_replicas(|key| key.as_ref().starts_with(b"rep/"))?,
        0
    );
    assert_eq!((store.replica_count()?, store.record_count()?), (5, 6));
    for i in 0..5 {
        assert!(store.try_get(&key(&format!("rep/{i}")))?.is_some());
    }
    // The DHT's records have their limit back.
    for i in 1..6 {
        store.try_put(&record(&format!("dht/{i}"), b"v"))?;
    }
    assert!(matches!(
        store.try_put(&record("dht/6", b"v")),
        Err(KadStoreError::Limit(StoreError::MaxRecords))
    ));
    assert_eq!(store.records().count(), 11);
    Ok(())
}

#[test]
fn records_providers_and_expiry_survive_a_reopen() -> TestResult {
    use netabase_store::backend::redb::RedbBackend;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kad.redb");
    let local = PeerId::random();
    let expires = Instant::now() + Duration::from_secs(600);
    let mut r = record("a", b"persisted");
    r.expires = Some(expires);
    {
        let mut store = KadStore::new(
            RedbBackend::create(&path)?,
            local,
            KadStoreConfig::default(),
        );
        store.put(r.clone())?;
        store.add_provider(ProviderRecord::new(key("p"), local, Vec::new()))?;
    }
    let store = KadStore::new(
        RedbBackend::create(&path)?,
        local,
        KadStoreConfig::default(),
    );
    let back = store.get(&r.key).ok_or("record lost")?.into_owned();
    assert_eq!((back.value, back.publisher), (r.value, r.publisher));
    let drift = back.expires.map(|b| {
        if b > expires {
            b - expires
        } else {
            expires - b
        }
    });
    assert!(drift.is_some_and(|d| d < Duration::from_millis(100)));
    assert_eq!(store.provided().count(), 1);
    // Another identity on the same database provides nothing.
    let stranger = KadStore::new(
        RedbBackend::create(dir.path().join("other.redb"))?,
        PeerId::random(),
        KadStoreConfig::default(),
    );
    assert_eq!(stranger.provided().count(), 0);
    Ok(())
}

/// A backend whose transactions never start.
#[derive(Debug)]
struct FailingBackend;

impl Backend for FailingBackend {
    type Read = <MemoryBackend as Backend>::Read;
    type Write<'a> = <MemoryBackend as Backend>::Write<'a>;

    fn name(&self) -> &'static str {
        "failing"
    }
    fn capabilities(&self) -> Capabilities {
        MemoryBackend::new().capabilities()
    }
    fn begin_read(&self) -> netabase_store::Result<Self::Read> {
        Err(NetabaseError::backend(
            "failing",
            "begin a read transaction",
            "injected failure",
        ))
    }
    fn begin_write(&self) -> netabase_store::Result<Self::Write<'_>> {
        Err(NetabaseError::backend(
            "failing",
            "begin a write transaction",
            "injected failure",
        ))
    }
}

#[test]
fn backend_failures_never_panic() {
    let local = PeerId::random();
    let mut store = KadStore::new(FailingBackend, local, KadStoreConfig::default());
    assert!(store.get(&key("a")).is_none());
    assert!(matches!(
        store.put(record("a", b"v")),
        Err(StoreError::MaxRecords)
    ));
    store.remove(&key("a"));
    assert_eq!(store.records().count(), 0);
    let p = ProviderRecord::new(key("a"), local, Vec::new());
    assert!(matches!(
        store.add_provider(p),
        Err(StoreError::MaxProvidedKeys)
    ));
    assert!(store.providers(&key("a")).is_empty());
    assert_eq!(store.provided().count(), 0);
    store.remove_provider(&key("a"), &local);
    // Eight calls, and the expiry index check of `KadStore::new`.
    assert_eq!(store.backend_errors(), 9);
    assert!(
        store
            .take_last_error()
            .is_some_and(|e| e.contains("injected failure"))
    );
    assert!(matches!(
        store.try_get(&key("a")),
        Err(KadStoreError::Storage(_))
    ));
}

/// A tombstone stamped `age` ago by [`signer`].
fn aged_tombstone(name: &str, age: Duration) -> SignedRecord {
    let signer = signer();
    let mut stamp = signer.next_stamp(None);
    let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    stamp.hlc.millis = stamp.hlc.millis.saturating_sub(age);
    signer.seal(key(name), None, stamp)
}

fn with_ttl(tombstone_ttl: Duration) -> KadStoreConfig {
    KadStoreConfig {
        tombstone_ttl,
        ..KadStoreConfig::default()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Tombstones of several ages, stored under a long TTL, are swept as each reopen's
/// TTL makes them due; a tombstone replaced by a newer record is not.
fn tombstones_are_swept_under_each_opens_ttl<B: Backend>(
    reopen: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    {
        let store = KadStore::new(reopen()?, PeerId::random(), with_ttl(24 * HOUR));
        for (name, hours) in [("t/1h", 1), ("t/2h", 2), ("t/3h", 3), ("revived", 3)] {
            store.try_put(&aged_tombstone(name, hours * HOUR).to_record())?;
        }
        store.try_put_replica(&aged_tombstone("replica/2h", 2 * HOUR))?;
        store.try_put(&record("revived", b"back"))?;
        store.try_put(&record("live", b"v"))?;
        assert_eq!(store.sweep_expired()?.records, 0);
    }
    {
        let store = KadStore::new(
            reopen()?,
            PeerId::random(),
            with_ttl(90 * 60 * Duration::from_secs(1)),
        );
        assert_eq!(store.sweep_expired()?.records, 3);
        assert!(store.try_get(&key("t/1h"))?.is_some());
        assert_eq!(store.replica_count()?, 0);
    }
    {
        let store = KadStore::new(
            reopen()?,
            PeerId::random(),
            with_ttl(30 * 60 * Duration::from_secs(1)),
        );
        assert_eq!(store.sweep_expired()?.records, 1);
        assert!(store.try_get(&key("t/1h"))?.is_none());
    }
    let store = KadStore::new(reopen()?, PeerId::random(), with_ttl(24 * HOUR));
    assert_eq!(store.sweep_expired()?.records, 0);
    let mut left: Vec<_> = store.try_records()?.into_iter().map(|r| r.key).collect();
    left.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    assert_eq!(left, vec![key("live"), key("revived")]);
    Ok(())
}

/// A store written before the expiry index existed (its records, no index) gets the
/// index when it is opened and sweeps what is due.
fn a_store_without_the_index_gets_it_at_open<B: Backend>(
    reopen: impl Fn() -> Result<B, NetabaseError>,
) -> TestResult {
    let Some(past) = past() else { return Ok(()) };
    {
        let store = KadStore::new(reopen()?, PeerId::random(), with_ttl(24 * HOUR));
        for (name, expires) in [
            ("old/a", Some(past)),
            ("old/b", Some(past)),
            ("fresh", Some(Instant::now() + HOUR)),
            ("plain", None),
        ] {
            let mut r = record(name, b"v");
            r.expires = expires;
            store.try_put(&r)?;
        }
        store.try_put(&aged_tombstone("gone", 2 * HOUR).to_record())?;
        store.try_put_replica(&aged_tombstone("replica/gone", 2 * HOUR))?;
        // What an older build leaves: the records and no index.
        let txn = store.backend().begin_write()?;
        txn.clear(EXPIRY_TABLE)?;
        txn.commit()?;
        assert_eq!(store.backend().begin_read()?.len(EXPIRY_TABLE)?, 0);
    }
    let store = KadStore::new(reopen()?, PeerId::random(), with_ttl(HOUR));
    // Built at open: the marker, the three expiries of records, and per tombstone its
    // stamp and its expiry (its stamp plus the TTL of the put that stored it).
    assert_eq!(
        store.backend().begin_read()?.len(EXPIRY_TABLE)?,
        1 + 3 + 2 * 2
    );
    assert!(!store.build_expiry_index()?);
    assert_eq!(store.sweep_expired()?.records, 4);
    let mut left: Vec<_> = store.try_records()?.into_iter().map(|r| r.key).collect();
    left.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    assert_eq!(left, vec![key("fresh"), key("plain")]);
    assert_eq!(store.backend().begin_read()?.len(EXPIRY_TABLE)?, 2);
    Ok(())
}

#[test]
fn tombstone_ttl_changes_between_opens_memory() -> TestResult {
    let backend = MemoryBackend::new();
    tombstones_are_swept_under_each_opens_ttl(|| Ok(backend.clone()))
}

#[test]
fn tombstone_ttl_changes_between_opens_redb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kad.redb");
    tombstones_are_swept_under_each_opens_ttl(|| {
        netabase_store::backend::redb::RedbBackend::create(&path)
    })
}

#[cfg(feature = "sled")]
#[test]
fn tombstone_ttl_changes_between_opens_sled() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kad.sled");
    tombstones_are_swept_under_each_opens_ttl(|| {
        netabase_store::backend::sled::SledBackend::open(&path)
    })
}

#[test]
fn expiry_index_is_built_at_open_memory() -> TestResult {
    let backend = MemoryBackend::new();
    a_store_without_the_index_gets_it_at_open(|| Ok(backend.clone()))
}

#[test]
fn expiry_index_is_built_at_open_redb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kad.redb");
    a_store_without_the_index_gets_it_at_open(|| {
        netabase_store::backend::redb::RedbBackend::create(&path)
    })
}

#[cfg(feature = "sled")]
#[test]
fn expiry_index_is_built_at_open_sled() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kad.sled");
    a_store_without_the_index_gets_it_at_open(|| {
        netabase_store::backend::sled::SledBackend::open(&path)
    })
}
