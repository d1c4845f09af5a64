//! Verifying many record signatures at once.
//!
//! A node receives records in bursts and commits them in groups, so it can check their
//! signatures in groups too. ed25519 batch verification (`ed25519_dalek::verify_batch`)
//! checks one random linear combination of the verification equations of a whole batch
//! with a single multi-scalar multiplication, which costs a fraction of checking each
//! equation on its own. Its coefficients are derived from every input of the batch
//! (keys, messages, signatures), so no one can choose records that make it pass without
//! valid signatures; a batch with an invalid signature fails except with probability
//! about 2⁻¹²⁸.
//!
//! A batch that fails says only that *some* signature in it is bad. Then every record of
//! that chunk is verified on its own with [`UnverifiedRecord::verify`], which decides —
//! and names the reason for — each refusal exactly as a record verified alone: a bad
//! record never makes a good one refused, and a bad one is refused with the same
//! [`SignedRecordError`] as without batching. Chunks of [`VERIFY_CHUNK`] records bound
//! what one bad record costs its neighbours.
//!
//! Records the batch equation could judge differently from a verification on its own
//! never enter a batch: an author key that does not decode or is of small order, and a
//! signature whose `R` is not canonically encoded (or is one of the two points with
//! `x = 0` written with the sign bit set). Those are verified on their own. What
//! remains different is a signature its author forged *against itself* with a
//! small-order component in its `R` or its key: the single check (cofactorless, as
//! libp2p runs it) refuses it, the batch may accept it. Only the holder of the author's
//! secret key can make such a signature, so it says nothing false about who wrote the
//! record.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};
use libp2p::PeerId;

use super::{SignedRecord, SignedRecordError, UnverifiedRecord};

/// The most records checked by one batch equation. When a batch fails, each of its
/// records is verified on its own, so a bad record costs up to this many single
/// verifications; the batch gains little per record beyond a few dozen.
pub const VERIFY_CHUNK: usize = 64;

/// Verifies the signature of every record, as [`UnverifiedRecord::verify`] would one by
/// one (each record with the peer it came from, if known), but in batches: see the
/// [module docs](self). Returns one result per record, in order.
///
/// # Examples
/// ```
/// use libp2p::identity::Keypair;
/// use libp2p::kad::RecordKey;
/// use netabase_store::kad::{RecordSigner, SignedRecord, SignedRecordError, verify_batch};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let author = RecordSigner::new(&Keypair::generate_ed25519())?;
/// let record = |name: &str| {
///     let stamp = author.next_stamp(None);
///     author.seal(RecordKey::new(&name), Some(b"v".to_vec()), stamp).to_record()
/// };
/// let good = record("a");
/// let mut forged = record("b");
/// forged.key = RecordKey::new(&"c"); // signed for another key
/// let unverified = [good, forged]
///     .iter()
///     .map(|r| SignedRecord::decode_unverified(r).map(|r| (r, None)))
///     .collect::<Result<Vec<_>, _>>()?;
/// let verified = verify_batch(unverified);
/// assert!(verified[0].is_ok());
/// assert!(matches!(verified[1], Err(SignedRecordError::BadSignature { .. })));
/// # Ok(()) }
/// ```
pub fn verify_batch(
    records: Vec<(UnverifiedRecord, Option<PeerId>)>,
) -> Vec<Result<SignedRecord, SignedRecordError>> {
    let total = records.len();
    let mut verified: Vec<(usize, Result<SignedRecord, SignedRecordError>)> =
        Vec::with_capacity(total);
    let mut keys: HashMap<[u8; 32], Option<VerifyingKey>> = HashMap::new();
    let mut batchable = Vec::with_capacity(total);
    for (index, (record, sender)) in records.into_iter().enumerate() {
        let key = *keys
            .entry(record.envelope.stamp.writer.0)
            .or_insert_with_key(batch_key);
        match key.zip(batch_signature(&record)) {
            Some((key, signature)) => batchable.push((
                index,
                Candidate {
                    message: record.envelope.signing_bytes(&record.key),
                    signature,
                    key,
                    record,
                    sender,
                },
            )),
            None => verified.push((index, record.verify(sender.as_ref()))),
        }
    }
    while !batchable.is_empty() {
        let rest = batchable.split_off(batchable.len().min(VERIFY_CHUNK));
        let chunk = std::mem::replace(&mut batchable, rest);
        verify_chunk(chunk, &mut verified);
    }
    verified.sort_unstable_by_key(|(index, _)| *index);
    verified.into_iter().map(|(_, result)| result).collect()
}

/// A record ready for the batch equation: its message, signature and author key.
struct Candidate {
    record: UnverifiedRecord,
    sender: Option<PeerId>,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

/// The signature of `record` for the batch equation: `None` when the batch could judge
/// it differently from a single verification (see the module docs).
fn batch_signature(record: &UnverifiedRecord) -> Option<Signature> {
    let bytes: [u8; 64] = record.envelope.signature.as_slice().try_into().ok()?;
    batchable_r(&bytes).then(|| Signature::from_bytes(&bytes))
}

/// The author key for the batch equation: `None` if it does not decode or is of small
/// order (a weak key).
fn batch_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes)
        .ok()
        .filter(|key| !key.is_weak())
}

/// Whether the `R` half of `signature` is encoded canonically: its y coordinate below
/// the field prime 2²⁵⁵ − 19, and not a point with x = 0 (y = ±1) carrying the sign bit.
/// A single verification compares `R` byte for byte with a canonical encoding, so it
/// refuses the others; the batch equation decodes `R` and would not.
fn batchable_r(signature: &[u8; 64]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&signature[..32]);
    let sign = y[31] & 0x80 != 0;
    y[31] &= 0x7f;
    // y ≥ p exactly when y = p + k for k in 0..19: 0xed..=0xff, then 30 × 0xff, 0x7f.
    let at_least_p = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    let one = y[0] == 1 && y[1..].iter().all(|&b| b == 0);
    // p − 1 = 0xec, 30 × 0xff, 0x7f (little-endian).
    let minus_one = y[0] == 0xec && y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff);
    !(at_least_p || (sign && (one || minus_one)))
}

/// Checks `chunk` with one batch equation; if it fails (or holds one record), verifies
/// each record on its own.
fn verify_chunk(
    chunk: Vec<(usize, Candidate)>,
    verified: &mut Vec<(usize, Result<SignedRecord, SignedRecordError>)>,
) {
    let holds = chunk.len() > 1 && {
        let messages: Vec<&[u8]> = chunk.iter().map(|(_, c)| c.message.as_slice()).collect();
        let signatures: Vec<Signature> = chunk.iter().map(|(_, c)| c.signature).collect();
        let keys: Vec<VerifyingKey> = chunk.iter().map(|(_, c)| c.key).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    };
    for (index, candidate) in chunk {
        let Candidate { record, sender, .. } = candidate;
        let result = if holds {
            Ok(SignedRecord {
                key: record.key,
                envelope: record.envelope,
            })
        } else {
            record.verify(sender.as_ref())
        };
        verified.push((index, result));
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;
    use libp2p::kad::{Record, RecordKey};

    use super::*;
    use crate::kad::signed::{Envelope, RecordSigner};
    use crate::sync::WriterId;

    type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

    fn sealed(signer: &RecordSigner, name: &str) -> Record {
        let stamp = signer.next_stamp(None);
        signer
            .seal(RecordKey::new(&name), Some(name.as_bytes().to_vec()), stamp)
            .to_record()
    }

    /// `record` with its envelope changed by `change` (and not signed again).
    fn altered(record: &Record, change: impl FnOnce(&mut Envelope)) -> TestResult<Record> {
        let mut envelope = Envelope::decode(&record.value)?;
        change(&mut envelope);
        Ok(Record::new(record.key.clone(), envelope.encode()))
    }

    #[test]
    fn a_batch_decides_every_record_as_verifying_it_alone_does() -> TestResult {
        let (a, b) = (
            RecordSigner::new(&Keypair::generate_ed25519())?,
            RecordSigner::new(&Keypair::generate_ed25519())?,
        );
        let thief = Keypair::generate_ed25519();
        let thief_id = thief.public().to_peer_id();
        let mut records: Vec<(Record, Option<PeerId>)> = Vec::new();
        for i in 0..(2 * VERIFY_CHUNK + 3) {
            let signer = if i % 3 == 0 { &b } else { &a };
            records.push((sealed(signer, &format!("k{i}")), None));
        }
        let good = sealed(&a, "x");
        // A weak (small-order) author key, and the identity point as R written with the
        // sign bit: never in a batch, refused alone.
        records.insert(
            5,
            (
                altered(&good, |e| e.stamp.writer = WriterId([0; 32]))?,
                None,
            ),
        );
        let mut weak = [0u8; 32];
        weak[0] = 1;
        records.insert(
            9,
            (altered(&good, |e| e.stamp.writer = WriterId(weak))?, None),
        );
        records.insert(
            70,
            (
                altered(&good, |e| {
                    e.signature[..32].copy_from_slice(&weak);
                    e.signature[31] |= 0x80;
                })?,
                None,
            ),
        );
        // A non-canonical R (y = p).
        records.insert(
            71,
            (
                altered(&good, |e| {
                    e.signature[0] = 0xed;
                    e.signature[1..31].fill(0xff);
                    e.signature[31] = 0x7f;
                })?,
                None,
            ),
        );
        // Signed by the thief under a's name, known from the sender.
        let stolen = altered(&good, |e| {
            if let Ok(signature) = thief.sign(&e.signing_bytes(&good.key)) {
                e.signature = signature;
            }
        })?;
        records.insert(100, (stolen, Some(thief_id)));
        // A flipped bit in s.
        records.push((altered(&good, |e| e.signature[63] ^= 1)?, None));

        let unverified = records
            .iter()
            .map(|(r, sender)| SignedRecord::decode_unverified(r).map(|u| (u, *sender)))
            .collect::<Result<Vec<_>, _>>()?;
        let alone: Vec<_> = unverified
            .iter()
            .map(|(r, sender)| r.clone().verify(sender.as_ref()))
            .collect();
        let batched = verify_batch(unverified);
        assert_eq!(batched, alone);
        let refused: Vec<usize> = (0..batched.len())
            .filter(|&i| batched[i].is_err())
            .collect();
        assert_eq!(refused, [5, 9, 70, 71, 100, batched.len() - 1]);
        assert!(matches!(
            batched[100],
            Err(SignedRecordError::StolenAuthorship { signer, .. }) if signer == thief_id
        ));
        assert!(verify_batch(Vec::new()).is_empty());
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

        /// Random damage (a flipped bit of a signature, of a stamp or of an author key)
        /// to random records of a burst: the batch decides each record as verifying it
        /// alone does.
        #[test]
        fn random_damage_is_judged_as_one_by_one(
            damage in proptest::collection::vec((0usize..80, 0usize..3, 0usize..64, 0u8..8), 0..6)
        ) {
            let signers = [
                RecordSigner::new(&Keypair::generate_ed25519())
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?,
                RecordSigner::new(&Keypair::generate_ed25519())
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?,
            ];
            let mut records: Vec<Record> = (0..80)
                .map(|i| sealed(&signers[i % 2], &format!("k{i}")))
                .collect();
            for &(at, what, byte, bit) in &damage {
                let changed = altered(&records[at], |e| match what {
                    0 => e.signature[byte] ^= 1 << bit,
                    1 => e.stamp.hlc.counter ^= 1 << bit,
                    _ => e.stamp.writer.0[byte % 32] ^= 1 << bit,
                })
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                records[at] = changed;
            }
            let unverified: Vec<_> = records
                .iter()
                .filter_map(|r| SignedRecord::decode_unverified(r).ok().map(|u| (u, None)))
                .collect();
            let alone: Vec<_> = unverified
                .iter()
                .map(|(r, sender): &(UnverifiedRecord, Option<PeerId>)| r.clone().verify(sender.as_ref()))
                .collect();
            proptest::prop_assert_eq!(verify_batch(unverified), alone);
        }
    }

    #[test]
    fn canonical_r_encodings_are_batchable_and_the_others_are_not() {
        let mut signature = [0u8; 64];
        // A typical R.
        signature[..32].copy_from_slice(&[0x5a; 32]);
        assert!(batchable_r(&signature));
        // p − 1 without the sign bit is canonical (the point (0, −1)).
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        signature[..32].copy_from_slice(&minus_one);
        assert!(batchable_r(&signature));
        // ... with the sign bit it is not.
        signature[31] |= 0x80;
        assert!(!batchable_r(&signature));
        // p itself and every value up to 2²⁵⁵ − 1 are not canonical, with or without sign.
        for low in 0xed..=0xff {
            let mut y = [0xffu8; 32];
            y[0] = low;
            y[31] = 0x7f;
            signature[..32].copy_from_slice(&y);
            assert!(!batchable_r(&signature), "{low:#x}");
            signature[31] |= 0x80;
            assert!(!batchable_r(&signature), "{low:#x} with sign");
        }
        // y = 1 (the identity): canonical only without the sign bit.
        let mut one = [0u8; 32];
        one[0] = 1;
        signature[..32].copy_from_slice(&one);
        assert!(batchable_r(&signature));
        signature[31] |= 0x80;
        assert!(!batchable_r(&signature));
    }
}
