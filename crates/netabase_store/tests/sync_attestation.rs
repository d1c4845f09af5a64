//! Reconciliation with an attestation: every record sent carries a proof, every record
//! received is checked before anything of it is written; refused records are counted
//! and the exchange goes on.

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::prelude::*;
use netabase_store::sync::{
    self, Attestation, ReconcileStats, Reconciler, SyncedTree, Version, VersionStamp,
};
use netabase_store::{NetabaseStore, OpenOptions};

/// The schema of these tests.
#[netabase_definition_module(AttestDefinition, AttestKeys)]
pub mod models {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AttestDefinition)]
    /// A synced model with an index.
    pub struct Note {
        /// Primary key.
        #[primary_key]
        pub id: u32,
        /// Not indexed.
        pub text: String,
        /// Non-unique index.
        #[secondary_key]
        pub tag: u8,
    }
}

use models::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Store = NetabaseStore<AttestDefinition, MemoryBackend>;

fn open(options: OpenOptions) -> Result<Store, NetabaseError> {
    NetabaseStore::from_backend_with(MemoryBackend::new(), options.sync_all())
}

fn note(id: u32, text: &str) -> Note {
    Note {
        id,
        text: text.into(),
        tag: (id % 3) as u8,
    }
}

/// Runs a whole exchange between two reconcilers; returns both sides' statistics.
fn exchange(
    mut left: Reconciler<'_, AttestDefinition, MemoryBackend>,
    mut right: Reconciler<'_, AttestDefinition, MemoryBackend>,
) -> Result<(ReconcileStats, ReconcileStats), NetabaseError> {
    let mut message = Some(left.initiate()?);
    let mut to_right = true;
    let mut steps = 0;
    while let Some(bytes) = message {
        steps += 1;
        assert!(steps < 1000, "the exchange does not end");
        message = if to_right {
            right.respond(&bytes)?
        } else {
            left.respond(&bytes)?
        };
        to_right = !to_right;
    }
    Ok((left.stats().clone(), right.stats().clone()))
}

/// A keyed digest as the proof; refuses records whose text says "forged" even with a
/// good proof (a permission policy), and records whose proof is missing or wrong.
struct Mac {
    secret: &'static [u8],
}

impl Mac {
    fn proof(&self, v: &Version<'_>) -> Vec<u8> {
        let mut h = blake3::Hasher::new();
        h.update(self.secret);
        h.update(v.model.as_bytes());
        h.update(v.key);
        h.update(&v.stamp.to_bytes());
        h.update(v.value.unwrap_or(b"<tombstone>"));
        h.finalize().as_bytes().to_vec()
    }
}

impl Attestation for Mac {
    fn attach(&self, version: &Version<'_>) -> Option<Vec<u8>> {
        Some(self.proof(version))
    }

    fn check(&self, version: &Version<'_>, proof: Option<&[u8]>) -> Result<(), String> {
        if proof != Some(self.proof(version).as_slice()) {
            return Err("bad proof".into());
        }
        if version
            .value
            .is_some_and(|v| v.windows(6).any(|w| w == b"forged"))
        {
            return Err("policy: forged notes are not accepted".into());
        }
        Ok(())
    }
}

#[test]
fn refused_records_are_counted_and_not_written_and_the_rest_converges() -> TestResult {
    let (a, b) = (open(OpenOptions::default())?, open(OpenOptions::default())?);
    let (ta, tb) = (a.open_tree::<Note>(), b.open_tree::<Note>());
    for id in 0..40 {
        // Forged notes on keys that only a holds, so a always sends them.
        let text = if id % 10 == 3 && id < 30 {
            "forged"
        } else {
            "from a"
        };
        ta.put(note(id, text))?;
    }
    for id in 30..60 {
        tb.put(note(id, "from b"))?;
    }
    tb.remove(55)?;
    let mac = || Mac { secret: b"shared" };
    let (sa, sb) = exchange(
        Reconciler::new(&a)?.with_attestation(mac()),
        Reconciler::new(&b)?.with_attestation(mac()),
    )?;
    // a's records 3, 13 and 23 say "forged": b refuses them.
    assert_eq!(sb.records_refused, 3, "{:?}", sb.refusals);
    assert_eq!(sb.refusals.len(), 3);
    assert!(sb.refusals.iter().all(|r| r.model == "Note"));
    assert!(
        sb.refusals
            .iter()
            .all(|r| r.reason.contains("forged notes"))
    );
    assert_eq!(sa.records_refused, 0);
    for id in [3, 13, 23] {
        assert_eq!(tb.get(id)?, None, "refused record {id} was written");
    }
    // Everything else went both ways, tombstones included.
    for id in (0..60).filter(|id| ![3, 13, 23, 55].contains(id)) {
        assert_eq!(ta.get(id)?, tb.get(id)?, "record {id}");
        assert!(ta.get(id)?.is_some());
    }
    assert_eq!(ta.get(55)?, None);
    // b's index holds exactly b's records of the tag, those it received included.
    let mut tagged = Vec::new();
    for id in 0..60 {
        if tb.get(id)?.is_some_and(|n| n.tag == 1) {
            tagged.push(id);
        }
    }
    let mut indexed: Vec<u32> = tb
        .get_by_secondary_key(NoteSecondaryKeys::Tag(NoteTagSecondaryKey(1)))?
        .into_iter()
        .map(|n| n.id)
        .collect();
    indexed.sort_unstable();
    assert_eq!(indexed, tagged);
    assert!(tagged.contains(&31), "a received record is indexed");
    sync::check(&a)?;
    sync::check(&b)?;
    Ok(())
}

#[test]
fn a_receiver_with_a_check_refuses_records_sent_without_proof() -> TestResult {
    let (a, b) = (open(OpenOptions::default())?, open(OpenOptions::default())?);
    for id in 0..20 {
        a.open_tree::<Note>().put(note(id, "unproven"))?;
    }
    b.open_tree::<Note>().put(note(100, "from b"))?;
    let (sa, sb) = exchange(
        Reconciler::new(&a)?,
        Reconciler::new(&b)?.with_attestation(Mac { secret: b"shared" }),
    )?;
    assert_eq!(sb.records_refused, 20);
    assert_eq!(sb.records_applied, 0);
    assert_eq!(b.open_tree::<Note>().len()?, 1);
    // The side without an attestation takes b's record as is.
    assert_eq!(sa.records_applied, 1);
    assert_eq!(a.open_tree::<Note>().len()?, 21);
    Ok(())
}

#[test]
fn a_wrong_proof_is_refused_like_a_missing_one() -> TestResult {
    let (a, b) = (open(OpenOptions::default())?, open(OpenOptions::default())?);
    a.open_tree::<Note>().put(note(1, "x"))?;
    let (_, sb) = exchange(
        Reconciler::new(&a)?.with_attestation(Mac { secret: b"guess" }),
        Reconciler::new(&b)?.with_attestation(Mac { secret: b"shared" }),
    )?;
    assert_eq!(sb.records_refused, 1);
    assert_eq!(sb.refusals[0].reason, "bad proof");
    let stamp: Option<VersionStamp> = a.open_tree::<Note>().version(1u32)?.map(|v| v.stamp);
    assert_eq!(Some(sb.refusals[0].stamp), stamp);
    assert_eq!(b.open_tree::<Note>().len()?, 0);
    Ok(())
}

/// The node's attestation in miniature: versions signed with the author's ed25519 key
/// (the store's writer id), verified against the writer the stamp names.
#[cfg(feature = "libp2p")]
mod signed {
    use super::*;
    use libp2p::identity::Keypair;
    use netabase_store::kad::{RecordSigner, SignedRecord, record_key_for};
    use std::collections::HashSet;

    struct Signatures {
        signer: RecordSigner,
        /// Keys whose signature this side damages (a tampering sender).
        tamper: HashSet<Vec<u8>>,
    }

    impl Attestation for Signatures {
        fn attach(&self, v: &Version<'_>) -> Option<Vec<u8>> {
            let key = record_key_for::<AttestDefinition>(v.model, v.key)?;
            let mut signature = self.signer.sign_version(&key, v.stamp, v.value)?;
            if self.tamper.contains(v.key) {
                signature[0] ^= 1;
            }
            Some(signature)
        }

        fn check(&self, v: &Version<'_>, proof: Option<&[u8]>) -> Result<(), String> {
            let key = record_key_for::<AttestDefinition>(v.model, v.key)
                .ok_or_else(|| format!("no model {}", v.model))?;
            let proof = proof.ok_or("no signature")?;
            SignedRecord::from_version(key, v.stamp, v.value.map(<[u8]>::to_vec), proof)
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }

    fn node() -> Result<(Store, Signatures), Box<dyn std::error::Error>> {
        let signer = RecordSigner::new(&Keypair::generate_ed25519())?;
        let store = open(OpenOptions::default().writer_id(signer.author()))?;
        Ok((
            store,
            Signatures {
                signer,
                tamper: HashSet::new(),
            },
        ))
    }

    #[test]
    fn signed_versions_reconcile_and_a_tampered_signature_is_refused() -> TestResult {
        let (a, mut sig_a) = node()?;
        let (b, sig_b) = node()?;
        for id in 0..30 {
            a.open_tree::<Note>().put(note(id, "a"))?;
        }
        a.open_tree::<Note>().remove(29)?;
        for id in 20..40 {
            b.open_tree::<Note>().put(note(id, "b"))?;
        }
        // a damages the signature of record 7.
        sig_a.tamper.insert(7u32.to_key_bytes());
        // The greater stamp must win each key both stores hold.
        let mut expected = std::collections::BTreeMap::new();
        for id in 20..40 {
            let (va, vb) = (
                a.open_tree::<Note>().version(id)?,
                b.open_tree::<Note>().version(id)?,
            );
            let winner = match (va, vb) {
                (Some(va), Some(vb)) if va.stamp > vb.stamp => a.open_tree::<Note>().get(id)?,
                _ => b.open_tree::<Note>().get(id)?,
            };
            expected.insert(id, winner);
        }
        let (sa, sb) = exchange(
            Reconciler::new(&a)?.with_attestation(sig_a),
            Reconciler::new(&b)?.with_attestation(sig_b),
        )?;
        assert_eq!(sb.records_refused, 1, "{:?}", sb.refusals);
        assert!(sb.refusals[0].reason.contains("signature"));
        assert_eq!(sa.records_refused, 0);
        let (ta, tb) = (a.open_tree::<Note>(), b.open_tree::<Note>());
        assert_eq!(tb.get(7)?, None);
        for id in (0..40).filter(|id| *id != 7) {
            assert_eq!(ta.get(id)?, tb.get(id)?, "record {id}");
            assert_eq!(ta.version(id)?, tb.version(id)?, "stamp of {id}");
        }
        for (id, winner) in expected {
            assert_eq!(tb.get(id)?, winner, "winner of {id}");
        }
        assert!(ta.get(3)?.is_some());
        sync::check(&a)?;
        sync::check(&b)?;
        Ok(())
    }
}

#[test]
fn a_record_budget_splits_a_large_catch_up_into_bounded_messages() -> TestResult {
    use netabase_store::sync::ReconcileOptions;
    let (a, b) = (open(OpenOptions::default())?, open(OpenOptions::default())?);
    a.open_tree::<Note>()
        .put_many((0..2000).map(|id| note(id, "a note of some length")))?;
    b.open_tree::<Note>()
        .put_many((1500..2100).map(|id| note(id, "b")))?;
    let options = ReconcileOptions::default().max_record_bytes(4096);
    let mac = || Mac { secret: b"shared" };
    let mut left = Reconciler::new(&a)?
        .with_options(options)
        .with_attestation(mac());
    let mut right = Reconciler::new(&b)?
        .with_options(options)
        .with_attestation(mac());
    let mut message = Some(left.initiate()?);
    let (mut to_right, mut largest, mut messages) = (true, 0, 0);
    while let Some(bytes) = message {
        // The bytes of records in each message (the rest, fingerprints and lists, is
        // not budgeted).
        let records: usize = sync::Message::from_bytes(&bytes)?
            .models
            .iter()
            .flat_map(|m| &m.records)
            .map(|r| r.key.len() + r.value.as_ref().map_or(0, Vec::len) + 44)
            .sum();
        largest = largest.max(records);
        messages += 1;
        assert!(messages < 10_000, "the exchange does not end");
        message = if to_right {
            right.respond(&bytes)?
        } else {
            left.respond(&bytes)?
        };
        to_right = !to_right;
    }
    // Every record of a and every later version of b travelled, in many messages
    // none of which carried much more than the budget.
    assert!(messages > 20, "{messages} messages");
    assert!(
        largest <= 4096 + 128,
        "{largest} bytes of records in one message"
    );
    let (ta, tb) = (a.open_tree::<Note>(), b.open_tree::<Note>());
    assert_eq!(ta.len()?, 2100);
    assert_eq!(tb.len()?, 2100);
    assert_eq!(ta.fingerprint::<u32>(..)?, tb.fingerprint::<u32>(..)?);
    // b wrote last: its versions of 1500..2000 won on both sides.
    assert_eq!(ta.get(1600)?.map(|n| n.text), Some("b".into()));
    assert_eq!(
        tb.get(10)?.map(|n| n.text),
        Some("a note of some length".into())
    );
    sync::check(&a)?;
    sync::check(&b)?;
    Ok(())
}

#[test]
fn the_checks_of_a_large_message_keep_each_verdict_with_its_record() -> TestResult {
    // One message of 3,000 records: checked on several threads where there are cores.
    let (a, b) = (open(OpenOptions::default())?, open(OpenOptions::default())?);
    a.open_tree::<Note>().put_many((0..3000).map(|id| {
        let text = if id % 97 == 5 { "forged" } else { "fine" };
        note(id, text)
    }))?;
    let mac = || Mac { secret: b"shared" };
    let (_, sb) = exchange(
        Reconciler::new(&a)?.with_attestation(mac()),
        Reconciler::new(&b)?.with_attestation(mac()),
    )?;
    let forged: Vec<u32> = (0..3000).filter(|id| id % 97 == 5).collect();
    assert_eq!(sb.records_refused, forged.len() as u64);
    assert_eq!(sb.records_applied, 3000 - forged.len() as u64);
    let tb = b.open_tree::<Note>();
    for id in 0..3000 {
        assert_eq!(tb.get(id)?.is_none(), forged.contains(&id), "record {id}");
    }
    Ok(())
}
