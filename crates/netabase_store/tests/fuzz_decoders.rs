//! Every decoder that reads bytes from disk or the network, fed arbitrary and mutated
//! bytes: none may panic (DESIGN.md invariant 6). Plus a structured property test: random
//! put / remove / clear sequences on the in-memory backend, checked after every step
//! against a `BTreeMap` model and the raw index tables.
//!
//! Each proptest has a fixed case budget so the file runs in seconds in CI; raise it with
//! `PROPTEST_CASES=100000 cargo test -p netabase_store --features libp2p --test fuzz_decoders`.

mod reliability;

use std::collections::BTreeMap;
use std::fmt::Debug;

use netabase_store::codec::key::KeyCodec;
use netabase_store::codec::value::{decode_model, split_header};
use proptest::prelude::*;
use reliability::*;

/// The case budget of every proptest here unless `PROPTEST_CASES` says otherwise.
fn budget(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // A failure here is a decoder bug; shrinking it is worth the time.
        ..ProptestConfig::default()
    }
}

/// Random bytes, or the encoding of a real key with one byte changed, truncated or
/// extended: arbitrary bytes rarely get past the first byte of a decoder, mutations of
/// valid input reach its inner branches.
fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let random = proptest::collection::vec(any::<u8>(), 0..48);
    let mutation =
        (valid, any::<usize>(), any::<u8>(), 0u8..4).prop_map(|(mut b, at, byte, how)| {
            match how {
                0 if !b.is_empty() => {
                    let i = at % b.len();
                    b[i] = byte;
                }
                1 => b.truncate(at % (b.len() + 1)),
                2 => b.push(byte),
                _ => b.insert(at % (b.len() + 1), byte),
            }
            b
        });
    prop_oneof![random, mutation]
}

/// Decoding never panics; a key that decodes re-encodes to a key that decodes to the
/// same value (checked through `same`, so floats compare by bits).
fn check_key<T: KeyCodec + Debug>(
    bytes: &[u8],
    same: impl Fn(&T, &T) -> bool,
) -> Result<(), TestCaseError> {
    if let Ok(value) = T::from_key_bytes(bytes) {
        let again = T::from_key_bytes(&value.to_key_bytes())
            .map_err(|e| TestCaseError::fail(format!("{value:?} does not round-trip: {e}")))?;
        prop_assert!(same(&value, &again), "{:?} became {:?}", value, again);
    }
    Ok(())
}

macro_rules! key_decoder_fuzz {
    ($($name:ident: $t:ty => $valid:expr;)*) => {$(
        proptest! {
            #![proptest_config(budget(2000))]
            #[test]
            fn $name(bytes in mutated($valid.prop_map(|v: $t| v.to_key_bytes()))) {
                check_key::<$t>(&bytes, |a, b| a == b)?;
            }
        }
    )*};
}

key_decoder_fuzz! {
    key_u64: u64 => any::<u64>();
    key_i64: i64 => any::<i64>();
    key_string: String => ".{0,12}";
    key_bytes: Vec<u8> => proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFF), any::<u8>()], 0..12);
    key_option_string: Option<String> => proptest::option::of(".{0,8}");
    key_tuple: (u32, String) => (any::<u32>(), ".{0,8}");
}

proptest! {
    #![proptest_config(budget(2000))]

    #[test]
    fn key_f64(bytes in mutated(any::<f64>().prop_map(|v| v.to_key_bytes()))) {
        check_key::<f64>(&bytes, |a, b| a.to_bits() == b.to_bits())?;
    }

    /// The value header and the postcard body behind it: an error or a value, never a
    /// panic, for random bytes and for mutations of a real stored user.
    #[test]
    fn value_header_and_body(bytes in mutated(any::<(u64, u32)>().prop_map(|(id, age)| {
        netabase_store::codec::value::encode_value(
            "User",
            1,
            &user_record(id, age),
        )
        .unwrap_or_default()
    }))) {
        let _ = split_header("CrashDefinition/User", b"k", &bytes);
        let decoded = decode_model::<CrashDefinition, User>(b"k", &bytes);
        if let Err(e) = decoded {
            // The error names the table it came from.
            prop_assert!(e.to_string().contains("CrashDefinition/User"), "{}", e);
        }
    }
}

fn user_record(id: u64, age: u32) -> User {
    User {
        id,
        name: format!("user {id}"),
        email: format!("{id}@x"),
        age,
    }
}

/// One step of the structured property test.
#[derive(Debug, Clone)]
enum Op {
    /// Put user `id` with the email `e{email}@x` and age `age` (emails collide on
    /// purpose: a put that takes another user's email must be refused).
    Put {
        id: u64,
        email: u8,
        age: u32,
    },
    Remove {
        id: u64,
    },
    /// Put several users in one write transaction (all or nothing).
    PutMany(Vec<(u64, u8, u32)>),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..12, 0u8..10, 0u32..4).prop_map(|(id, email, age)| Op::Put { id, email, age }),
        3 => (0u64..12).prop_map(|id| Op::Remove { id }),
        2 => proptest::collection::vec((0u64..12, 0u8..10, 0u32..4), 1..4).prop_map(Op::PutMany),
        1 => Just(Op::Clear),
    ]
}

fn model_user(id: u64, email: u8, age: u32) -> User {
    User {
        id,
        name: format!("user {id} {email} {age}"),
        email: format!("e{email}@x"),
        age,
    }
}

/// Whether putting `users` in order onto `model` keeps every email unique; applies them
/// when it does.
fn model_put(model: &mut BTreeMap<u64, User>, users: &[User]) -> bool {
    let mut next = model.clone();
    for u in users {
        next.insert(u.id, u.clone());
        let holders = next.values().filter(|o| o.email == u.email).count();
        if holders > 1 {
            return false;
        }
    }
    *model = next;
    true
}

proptest! {
    #![proptest_config(budget(200))]

    /// After every committed step, the store holds exactly the model's users, every
    /// secondary lookup answers as the model does, and the raw index tables are exact.
    /// A refused step (a taken email) changes nothing.
    #[test]
    fn operation_sequences_match_a_btreemap(ops in proptest::collection::vec(op(), 1..40)) {
        let store = Store::<netabase_store::backend::memory::MemoryBackend>::memory()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let users = store.open_tree::<User>();
        let mut model: BTreeMap<u64, User> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put { id, email, age } => {
                    let u = model_user(id, email, age);
                    let accepted = model_put(&mut model, std::slice::from_ref(&u));
                    prop_assert_eq!(users.put(u).is_ok(), accepted);
                }
                Op::Remove { id } => {
                    let removed = users.remove(UserPrimaryKey(id)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(removed, model.remove(&id));
                }
                Op::PutMany(batch) => {
                    let batch: Vec<User> = batch.into_iter().map(|(i, e, a)| model_user(i, e, a)).collect();
                    let accepted = model_put(&mut model, &batch);
                    let txn = store.write().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let tree = txn.open_tree::<User>();
                    let mut ok = true;
                    for u in batch {
                        if tree.put(u).is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        txn.commit().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                    // Dropped without commit on refusal: nothing of the batch is applied.
                    prop_assert_eq!(ok, accepted);
                }
                Op::Clear => {
                    users.clear().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    model.clear();
                }
            }
            let stored: BTreeMap<u64, User> = users
                .iter()
                .map(|r| r.map(|(_, u)| (u.id, u)))
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&stored, &model);
            for age in 0..4 {
                let mut found = users
                    .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(age)))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                found.sort_by_key(|u| u.id);
                let expected: Vec<User> = model.values().filter(|u| u.age == age).cloned().collect();
                prop_assert_eq!(found, expected);
            }
            for email in 0..10u8 {
                let email = format!("e{email}@x");
                let found = users
                    .get_by_secondary_key(UserSecondaryKeys::Email(UserEmailSecondaryKey(email.clone())))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expected: Vec<User> = model.values().filter(|u| u.email == email).cloned().collect();
                prop_assert_eq!(found, expected);
            }
            let all: Vec<User> = model.values().cloned().collect();
            let violations = index_violations(&store, &all, &[])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(violations.is_empty(), "{:?}", violations);
        }
    }
}

/// The DHT record store's decoders, reached through its public API with raw bytes
/// written into its tables.
#[cfg(feature = "libp2p")]
mod kad {
    use std::time::{Duration, Instant};

    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use libp2p::kad::store::RecordStore;
    use libp2p::kad::{ProviderRecord, Record, RecordKey};
    use netabase_store::backend::memory::MemoryBackend;
    use netabase_store::backend::{Backend, WriteTxn};
    use netabase_store::kad::{
        KadStore, KadStoreConfig, PROVIDED_TABLE, PROVIDERS_TABLE, RECORDS_TABLE, RecordSigner,
        SignedRecord,
    };
    use proptest::prelude::*;

    use super::{TestResult, budget, mutated};

    /// The kad value format byte (`kad/encoding.rs`).
    const FORMAT: u8 = 1;

    fn store_with_raw(
        table: &str,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<(KadStore<MemoryBackend>, PeerId), Box<dyn std::error::Error>> {
        let local = PeerId::random();
        let store = KadStore::new(MemoryBackend::new(), local, KadStoreConfig::default());
        let txn = store.backend().begin_write()?;
        txn.put(table, key, bytes)?;
        txn.commit()?;
        Ok((store, local))
    }

    /// Stored wall-clock time: seconds and nanoseconds since the Unix epoch.
    type RawTime = Option<(u64, u32)>;
    /// `StoredRecord`: value, publisher, expiry.
    type RawRecord = (Vec<u8>, Option<Vec<u8>>, RawTime);
    /// `StoredProvider`: provider peer id, expiry, addresses.
    type RawProvider = (Vec<u8>, RawTime, Vec<Vec<u8>>);

    /// `value` under `key`, signed by a fresh author: a record the store accepts.
    fn signed(key: &RecordKey, value: &[u8]) -> Record {
        match RecordSigner::new(&Keypair::generate_ed25519()) {
            Ok(signer) => signer
                .seal(key.clone(), Some(value.to_vec()), signer.next_stamp(None))
                .to_record(),
            Err(_) => Record::new(key.clone(), value.to_vec()),
        }
    }

    /// A stored value record of `value` (signed) under `key`, as `kad/encoding.rs` lays
    /// it out, with any expiry.
    fn raw_record(key: &RecordKey, value: &[u8], expires: Option<(u64, u32)>) -> Vec<u8> {
        let mut out = vec![FORMAT];
        let body: RawRecord = (signed(key, value).value, None, expires);
        out.extend(postcard::to_stdvec(&body).unwrap_or_default());
        out
    }

    /// A stored provider list of one provider, with any expiry.
    fn raw_providers(provider: PeerId, expires: Option<(u64, u32)>) -> Vec<u8> {
        let mut out = vec![FORMAT];
        let body: Vec<RawProvider> = vec![(provider.to_bytes(), expires, Vec::new())];
        out.extend(postcard::to_stdvec(&body).unwrap_or_default());
        out
    }

    /// A stored local provider record, with any expiry.
    fn raw_provided(provider: PeerId, expires: Option<(u64, u32)>) -> Vec<u8> {
        let mut out = vec![FORMAT];
        let body: RawProvider = (provider.to_bytes(), expires, Vec::new());
        out.extend(postcard::to_stdvec(&body).unwrap_or_default());
        out
    }

    /// Every read path of the store over whatever is stored: no panic.
    fn read_everything(store: &mut KadStore<MemoryBackend>, key: &RecordKey) {
        let _ = store.try_get(key);
        let _ = store.get(key);
        let _ = store.try_records();
        let _ = store.records().count();
        let _ = store.try_providers(key);
        let _ = store.providers(key);
        let _ = store.try_provided();
        let _ = store.provided().count();
        let _ = store.sweep_expired();
        // A write over the damaged entry must work or fail cleanly too.
        let _ = store.put(signed(key, b"fresh"));
        let _ = store.add_provider(ProviderRecord::new(
            key.clone(),
            store.local_peer_id(),
            Vec::new(),
        ));
    }

    /// Issue #10 item 3: `u64::MAX` seconds and `u32::MAX` nanoseconds made
    /// `Duration::new` overflow on `try_get`. Now it is a decode error naming the table.
    #[test]
    fn overflowing_expiry_is_a_decode_error_not_a_panic() -> TestResult {
        let key = RecordKey::new(&b"absurd");
        let (store, local) = store_with_raw(
            RECORDS_TABLE,
            key.as_ref(),
            &raw_record(&key, b"v", Some((u64::MAX, u32::MAX))),
        )?;
        let got = store.try_get(&key);
        assert!(
            got.as_ref()
                .is_err_and(|e| e.to_string().contains(RECORDS_TABLE)),
            "{got:?}"
        );
        assert!(store.get(&key).is_none());

        let (store, _) = store_with_raw(
            PROVIDERS_TABLE,
            key.as_ref(),
            &raw_providers(local, Some((u64::MAX, u32::MAX))),
        )?;
        assert!(store.try_providers(&key).is_err());
        assert!(store.providers(&key).is_empty());

        let (store, local) = store_with_raw(PROVIDED_TABLE, key.as_ref(), &[FORMAT])?;
        let txn = store.backend().begin_write()?;
        txn.put(
            PROVIDED_TABLE,
            key.as_ref(),
            &raw_provided(local, Some((u64::MAX, u32::MAX))),
        )?;
        txn.commit()?;
        assert!(store.try_provided().is_err());
        assert_eq!(store.provided().count(), 0);
        Ok(())
    }

    /// The latest valid expiry (`u64::MAX` seconds, 999,999,999 ns) lies beyond every
    /// clock: the record never expires, so it is served with no expiry.
    #[test]
    fn far_future_expiry_never_expires() -> TestResult {
        let key = RecordKey::new(&b"forever");
        let far = Some((u64::MAX, 999_999_999));
        let (store, local) =
            store_with_raw(RECORDS_TABLE, key.as_ref(), &raw_record(&key, b"v", far))?;
        let record = store
            .try_get(&key)?
            .ok_or("a never-expiring record was hidden")?;
        let value = SignedRecord::open(&record)?.value().map(<[u8]>::to_vec);
        assert_eq!((value, record.expires), (Some(b"v".to_vec()), None));
        assert_eq!(store.sweep_expired()?.records, 0);

        let txn = store.backend().begin_write()?;
        txn.put(PROVIDERS_TABLE, key.as_ref(), &raw_providers(local, far))?;
        txn.commit()?;
        let providers = store.try_providers(&key)?;
        assert_eq!(providers.len(), 1);
        assert_eq!(providers[0].expires, None);

        // An ordinary expiry still round-trips.
        let soon = Instant::now() + Duration::from_secs(60);
        let mut r = signed(&RecordKey::new(&b"soon"), b"v");
        r.expires = Some(soon);
        store.try_put(&r)?;
        assert!(store.try_get(&r.key)?.and_then(|r| r.expires).is_some());
        Ok(())
    }

    /// Expiries, dense at the edges where arithmetic overflows (seconds near `u64::MAX`,
    /// nanoseconds near and past one second).
    fn expiry() -> impl Strategy<Value = Option<(u64, u32)>> {
        let secs = prop_oneof![
            any::<u64>(),
            Just(u64::MAX),
            u64::MAX - 4..=u64::MAX,
            0u64..4_000_000_000,
        ];
        let nanos = prop_oneof![
            any::<u32>(),
            Just(u32::MAX),
            999_999_990u32..1_000_000_010,
            0u32..1_000_000_000,
        ];
        proptest::option::of((secs, nanos))
    }

    proptest! {
        #![proptest_config(budget(1000))]

        /// Arbitrary bytes and mutated valid records in every kad table.
        #[test]
        fn kad_tables_never_panic(
            record in mutated((any::<Vec<u8>>(), expiry()).prop_map(|(v, e)| raw_record(&RecordKey::new(&b"k"), &v, e))),
            providers in mutated(expiry().prop_map(|e| raw_providers(PeerId::random(), e))),
            provided in mutated(expiry().prop_map(|e| raw_provided(PeerId::random(), e))),
        ) {
            let key = RecordKey::new(&b"k");
            for (table, bytes) in [(RECORDS_TABLE, &record), (PROVIDERS_TABLE, &providers), (PROVIDED_TABLE, &provided)] {
                let (mut store, _) = store_with_raw(table, key.as_ref(), bytes)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                read_everything(&mut store, &key);
            }
        }

        /// Any well-formed expiry: the read succeeds and agrees with the sweep.
        #[test]
        fn any_valid_expiry_reads_cleanly(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let key = RecordKey::new(&b"k");
            let (store, _) = store_with_raw(RECORDS_TABLE, key.as_ref(), &raw_record(&key, b"v", Some((secs, nanos))))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = store.try_get(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let swept = store.sweep_expired().map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Served now exactly when the sweep keeps it (barring the second boundary).
            prop_assert!(got.is_some() != (swept.records == 1) || secs.abs_diff(now_secs()) < 2);
        }
    }

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
