//! Signed, versioned DHT records: who wrote a record, when, and the one rule that picks
//! the winner of a key on every node.
//!
//! The value of every netabase DHT record is an [`Envelope`]: the model bytes (or
//! nothing, for a tombstone), the [`VersionStamp`] of the write — the same stamp the
//! store's [`sync`](crate::sync) module keeps, whose [`WriterId`] is the author's ed25519
//! public key — and the author's ed25519 signature over the record key, the BLAKE3
//! digest of the model bytes, the stamp and the tombstone flag.
//!
//! ```text
//! record value = ENVELOPE_FORMAT ++ postcard(Envelope { stamp, tombstone, digest, signature, value })
//! signed bytes = SIGNING_DOMAIN ++ u64be(len key) ++ key ++ digest ++ stamp.to_bytes() ++ tombstone
//! ```
//!
//! [`SignedRecord::open`] is the only way to a [`SignedRecord`]: it decodes the envelope
//! and checks the digest and the signature, so a `SignedRecord` is always one its author
//! really wrote. It runs in two halves where the costly one should run elsewhere:
//! [`SignedRecord::decode_unverified`] (decode, shape and digest: cheap) and
//! [`UnverifiedRecord::verify`] (the ed25519 signature), or [`verify_batch`] for many
//! records at once. [`RecordSigner`] writes them, with a hybrid logical clock.
//!
//! **The winner rule.** For one key, the record with the greater stamp wins
//! ([`VersionStamp`] orders by clock reading, then by author); two records with the same
//! stamp (an author that signed twice at one reading) are ordered by their value digest,
//! so every node that compares the same two records picks the same one.
//!
//! **Tombstones.** A removal is a signed record with the tombstone flag and no value. It
//! wins over every older copy, so an older copy re-published later does not bring the
//! model back; it expires [`KadStoreConfig::tombstone_ttl`](super::KadStoreConfig) after
//! its stamp, after which an older copy that is still around may be accepted again.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, ed25519};
use libp2p::kad::{Record, RecordKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::sync::stamp::{Clock, now_millis};
use crate::sync::{Hlc, VersionStamp, WriterId};

mod batch;
pub use batch::{VERIFY_CHUNK, verify_batch};

/// The first byte of a signed record value; bumped when the envelope layout changes.
pub const ENVELOPE_FORMAT: u8 = 1;

/// The prefix of every signed message, so a netabase record signature can never be
/// replayed as a signature of anything else made with the same key.
pub const SIGNING_DOMAIN: &[u8] = b"netabase/kad/signed-record/v1";

/// The length of an ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// Why a record was refused by the signature checks or the winner rule.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedRecordError {
    /// The value is not a signed envelope (an unsigned model, garbage, another format).
    #[error("record is not signed: {reason}")]
    Unsigned {
        /// Why the value is not an envelope.
        reason: String,
    },
    /// The signed digest does not match the value carried: the value was changed after
    /// it was signed.
    #[error("record value was altered after signing (its digest is not the signed one)")]
    TamperedValue,
    /// The signature does not verify under the author key the record names (or that
    /// key is not a valid ed25519 key).
    #[error("record signature does not verify under its author's key: {reason}")]
    BadSignature {
        /// What failed.
        reason: String,
    },
    /// The signature verifies, but under the key of another peer than the author the
    /// record claims: a record signed by `signer` that names someone else as author.
    #[error("record claims author {claimed:?} but was signed by peer {signer}")]
    StolenAuthorship {
        /// The author the record claims.
        claimed: WriterId,
        /// The peer whose key made the signature.
        signer: PeerId,
    },
    /// A record with a greater stamp (or the same record) is already held for the key.
    #[error("record version {offered:?} is older than the version {held:?} already held")]
    Superseded {
        /// The stamp held.
        held: VersionStamp,
        /// The stamp offered.
        offered: VersionStamp,
    },
    /// The stamp lies further in the future than the allowed clock skew: accepting it
    /// would let one writer win the key for as long as its clock runs ahead.
    #[error("record stamp {stamp:?} lies more than {max_skew:?} in the future")]
    FutureStamp {
        /// The stamp.
        stamp: VersionStamp,
        /// The allowed skew.
        max_skew: Duration,
    },
    /// A tombstone older than the tombstone TTL: its deletion is over.
    #[error("tombstone of {stamp:?} has expired")]
    ExpiredTombstone {
        /// The tombstone's stamp.
        stamp: VersionStamp,
    },
    /// A signer needs an ed25519 identity.
    #[error("records are signed with ed25519 keys; this identity is not one")]
    NotEd25519,
}

/// The wire layout of a signed record value (see the [module docs](self)). Decoding
/// and encoding it checks nothing; [`SignedRecord::open`] verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The version of the write; its writer is the author's ed25519 public key.
    pub stamp: VersionStamp,
    /// Whether this record is a removal (then `value` is empty).
    pub tombstone: bool,
    /// BLAKE3 of `value`.
    pub digest: [u8; 32],
    /// The author's ed25519 signature over [`Envelope::signing_bytes`].
    pub signature: Vec<u8>,
    /// The encoded model (the stored value of the model), empty for a tombstone.
    pub value: Vec<u8>,
}

impl Envelope {
    /// `ENVELOPE_FORMAT ++ postcard(self)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.value.len() + 160);
        out.push(ENVELOPE_FORMAT);
        // Serializing plain fields into a Vec cannot fail; an empty body would be
        // refused by `decode` anyway.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Reads [`Envelope::encode`].
    ///
    /// # Errors
    /// [`SignedRecordError::Unsigned`] if `bytes` are not an envelope of this format.
    pub fn decode(bytes: &[u8]) -> Result<Self, SignedRecordError> {
        let unsigned = |reason: String| SignedRecordError::Unsigned { reason };
        match bytes.split_first() {
            Some((&ENVELOPE_FORMAT, rest)) => {
                let (envelope, tail): (Envelope, _) =
                    postcard::take_from_bytes(rest).map_err(|e| unsigned(e.to_string()))?;
                if !tail.is_empty() {
                    return Err(unsigned(format!("{} trailing bytes", tail.len())));
                }
                Ok(envelope)
            }
            Some((other, _)) => Err(unsigned(format!("unknown envelope format {other}"))),
            None => Err(unsigned("empty value".to_owned())),
        }
    }

    /// Whether this is a tombstone older than `ttl` at `now_millis` (wall-clock
    /// milliseconds since the Unix epoch).
    pub fn tombstone_expired(&self, ttl: Duration, now_millis: u64) -> bool {
        self.tombstone && self.tombstone_expiry_millis(ttl) <= now_millis
    }

    /// The wall-clock millisecond at which this record, if a tombstone, expires.
    fn tombstone_expiry_millis(&self, ttl: Duration) -> u64 {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.stamp.hlc.millis.saturating_add(ttl)
    }

    /// The bytes the author signs for the record at `key`.
    pub fn signing_bytes(&self, key: &RecordKey) -> Vec<u8> {
        let key = key.as_ref();
        let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + key.len() + 96);
        out.extend_from_slice(SIGNING_DOMAIN);
        out.extend_from_slice(&(key.len() as u64).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.stamp.to_bytes());
        out.push(u8::from(self.tombstone));
        out
    }
}

/// A record whose envelope decoded and whose signature verified under the author it
/// names. Only [`SignedRecord::open`] (or [`UnverifiedRecord::verify`]) and
/// [`RecordSigner`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    key: RecordKey,
    envelope: Envelope,
}

/// The ed25519 key of `writer`, if it is a valid one.
fn author_key(writer: &WriterId) -> Result<ed25519::PublicKey, SignedRecordError> {
    ed25519::PublicKey::try_from_bytes(&writer.0).map_err(|e| SignedRecordError::BadSignature {
        reason: format!("the author is not an ed25519 public key: {e}"),
    })
}

/// The public key inlined in `peer` (ed25519 peer ids carry their key).
fn peer_key(peer: &PeerId) -> Option<PublicKey> {
    let hash = peer.as_ref();
    // Code 0 is the identity multihash: the digest is the protobuf-encoded key.
    (hash.code() == 0)
        .then(|| PublicKey::try_decode_protobuf(hash.digest()).ok())
        .flatten()
}

impl SignedRecord {
    /// Decodes and verifies `record`'s envelope.
    ///
    /// # Errors
    /// [`SignedRecordError::Unsigned`], [`SignedRecordError::TamperedValue`],
    /// [`SignedRecordError::StolenAuthorship`] (when the signature is that of the
    /// record's `publisher` field, another peer than the author it names) or
    /// [`SignedRecordError::BadSignature`].
    pub fn open(record: &Record) -> Result<Self, SignedRecordError> {
        Self::open_from(record, None)
    }

    /// [`SignedRecord::open`] for a record received from `sender`: a signature that
    /// fails under the claimed author but verifies under the sender's key (or the
    /// record's `publisher`'s) is reported as [`SignedRecordError::StolenAuthorship`].
    ///
    /// The same as [`SignedRecord::decode_unverified`] followed by
    /// [`UnverifiedRecord::verify`].
    ///
    /// # Errors
    /// As [`SignedRecord::open`].
    pub fn open_from(record: &Record, sender: Option<&PeerId>) -> Result<Self, SignedRecordError> {
        Self::decode_unverified(record)?.verify(sender)
    }

    /// The cheap half of [`SignedRecord::open`]: decodes `record`'s envelope and checks
    /// its shape (a 64-byte signature, no value in a tombstone) and that the value is the
    /// one its digest names, but does **not** verify the signature, which is the costly
    /// part (tens of microseconds). Use it to check a record's model before handing
    /// the record to the thread that verifies it ([`UnverifiedRecord::verify`]); nothing
    /// an [`UnverifiedRecord`] says is known to come from its author until then.
    ///
    /// # Errors
    /// [`SignedRecordError::Unsigned`] if the value is not an envelope (or is a
    /// tombstone carrying a value), [`SignedRecordError::BadSignature`] if the signature
    /// is not 64 bytes long, [`SignedRecordError::TamperedValue`] if the value is not the
    /// one its digest names.
    pub fn decode_unverified(record: &Record) -> Result<UnverifiedRecord, SignedRecordError> {
        let envelope = Envelope::decode(&record.value)?;
        if envelope.signature.len() != SIGNATURE_LEN {
            return Err(SignedRecordError::BadSignature {
                reason: format!(
                    "a signature of {} bytes (ed25519 signatures are {SIGNATURE_LEN})",
                    envelope.signature.len()
                ),
            });
        }
        if envelope.tombstone && !envelope.value.is_empty() {
            return Err(SignedRecordError::Unsigned {
                reason: "a tombstone that carries a value".to_owned(),
            });
        }
        // The signature covers the digest; the digest must be that of the value.
        if *blake3::hash(&envelope.value).as_bytes() != envelope.digest {
            return Err(SignedRecordError::TamperedValue);
        }
        Ok(UnverifiedRecord {
            key: record.key.clone(),
            publisher: record.publisher,
            expires: record.expires,
            envelope,
        })
    }

    /// The signed record of one version of a record, rebuilt from its parts as sync
    /// carries them (the record key, the stamp, the stored value or `None` for a
    /// tombstone, and the author's signature), and verified: a signature made by
    /// [`RecordSigner::seal`] or [`RecordSigner::sign_version`] over the same key,
    /// value and stamp opens here. The signed bytes are rebuilt from the value's
    /// digest, so the proof of a record version is its 64-byte signature alone.
    ///
    /// # Errors
    /// [`SignedRecordError::BadSignature`] when the signature is not 64 bytes or is not
    /// the author's over this key, value and stamp.
    pub fn from_version(
        key: RecordKey,
        stamp: VersionStamp,
        value: Option<Vec<u8>>,
        signature: &[u8],
    ) -> Result<Self, SignedRecordError> {
        if signature.len() != SIGNATURE_LEN {
            return Err(SignedRecordError::BadSignature {
                reason: format!(
                    "a signature of {} bytes (ed25519 signatures are {SIGNATURE_LEN})",
                    signature.len()
                ),
            });
        }
        UnverifiedRecord::from_version(key, stamp, value, signature)?.verify(None)
    }

    /// The record key.
    pub fn key(&self) -> &RecordKey {
        &self.key
    }

    /// The version stamp of the write.
    pub fn stamp(&self) -> VersionStamp {
        self.envelope.stamp
    }

    /// The author (its ed25519 public key).
    pub fn author(&self) -> WriterId {
        self.envelope.stamp.writer
    }

    /// The peer id of the author.
    pub fn author_peer(&self) -> Option<PeerId> {
        let key = ed25519::PublicKey::try_from_bytes(&self.envelope.stamp.writer.0).ok()?;
        Some(PublicKey::from(key).to_peer_id())
    }

    /// Whether the record is a removal.
    pub fn is_tombstone(&self) -> bool {
        self.envelope.tombstone
    }

    /// The encoded model, or `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        (!self.envelope.tombstone).then_some(self.envelope.value.as_slice())
    }

    /// The model as an unsigned record (record key and encoded model), for the typed
    /// checks of [`validate_record`](super::validate_record); `None` for a tombstone.
    pub fn payload(&self) -> Option<Record> {
        self.value()
            .map(|value| Record::new(self.key.clone(), value.to_vec()))
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The record as sent and stored: the encoded envelope as value, the author as
    /// publisher, no expiry.
    pub fn to_record(&self) -> Record {
        Record {
            key: self.key.clone(),
            value: self.envelope.encode(),
            publisher: self.author_peer(),
            expires: None,
        }
    }

    /// The winner rule: `Greater` when `self` wins over `other` (a greater stamp, or the
    /// same stamp and a greater digest), `Equal` when they are the same write.
    pub fn compare(&self, other: &SignedRecord) -> Ordering {
        self.envelope
            .stamp
            .cmp(&other.envelope.stamp)
            .then_with(|| self.envelope.digest.cmp(&other.envelope.digest))
    }

    /// Whether this is a tombstone older than `ttl` at `now_millis` (wall-clock
    /// milliseconds since the Unix epoch).
    pub fn tombstone_expired(&self, ttl: Duration, now_millis: u64) -> bool {
        self.envelope.tombstone_expired(ttl, now_millis)
    }

    /// Refuses a stamp more than `max_skew` ahead of the wall clock at `now_millis`.
    ///
    /// # Errors
    /// [`SignedRecordError::FutureStamp`].
    pub fn check_skew(&self, max_skew: Duration, now_millis: u64) -> Result<(), SignedRecordError> {
        let skew = u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX);
        if self.envelope.stamp.hlc.millis > now_millis.saturating_add(skew) {
            return Err(SignedRecordError::FutureStamp {
                stamp: self.envelope.stamp,
                max_skew,
            });
        }
        Ok(())
    }

    /// The wall-clock millisecond at which this record, if a tombstone, expires.
    pub(super) fn tombstone_expiry_millis(&self, ttl: Duration) -> u64 {
        self.envelope.tombstone_expiry_millis(ttl)
    }
}

/// A record whose envelope decoded, whose shape is valid and whose value matches its
/// digest, but whose signature has not been verified yet: made by
/// [`SignedRecord::decode_unverified`], turned into a [`SignedRecord`] by
/// [`UnverifiedRecord::verify`]. Its stamp, author and value are claims until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedRecord {
    key: RecordKey,
    publisher: Option<PeerId>,
    expires: Option<Instant>,
    envelope: Envelope,
}

impl UnverifiedRecord {
    /// [`SignedRecord::from_version`] without the signature check: the record of one
    /// version rebuilt from its parts as sync carries them, to be verified later (in a
    /// batch, say).
    ///
    /// # Errors
    /// [`SignedRecordError::BadSignature`] when the signature is not 64 bytes.
    pub fn from_version(
        key: RecordKey,
        stamp: VersionStamp,
        value: Option<Vec<u8>>,
        signature: &[u8],
    ) -> Result<Self, SignedRecordError> {
        if signature.len() != SIGNATURE_LEN {
            return Err(SignedRecordError::BadSignature {
                reason: format!(
                    "a signature of {} bytes (ed25519 signatures are {SIGNATURE_LEN})",
                    signature.len()
                ),
            });
        }
        let tombstone = value.is_none();
        let value = value.unwrap_or_default();
        Ok(UnverifiedRecord {
            key,
            publisher: None,
            expires: None,
            envelope: Envelope {
                stamp,
                tombstone,
                digest: *blake3::hash(&value).as_bytes(),
                signature: signature.to_vec(),
                value,
            },
        })
    }

    /// The record key.
    pub fn key(&self) -> &RecordKey {
        &self.key
    }

    /// The version stamp the record claims.
    pub fn stamp(&self) -> VersionStamp {
        self.envelope.stamp
    }

    /// Whether the record claims to be a removal.
    pub fn is_tombstone(&self) -> bool {
        self.envelope.tombstone
    }

    /// The encoded model, or `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        (!self.envelope.tombstone).then_some(self.envelope.value.as_slice())
    }

    /// The model as an unsigned record (record key and encoded model), for the typed
    /// checks of [`validate_record`](super::validate_record); `None` for a tombstone.
    pub fn payload(&self) -> Option<Record> {
        self.value()
            .map(|value| Record::new(self.key.clone(), value.to_vec()))
    }

    /// The expiry of the record as received (its `expires` field).
    pub fn expires(&self) -> Option<Instant> {
        self.expires
    }

    /// Verifies the signature under the author the record names (for a record received
    /// from `sender`, if known: see [`SignedRecord::open_from`]).
    ///
    /// # Errors
    /// [`SignedRecordError::StolenAuthorship`] when the signature is that of `sender` or
    /// of the record's `publisher`, another peer than the author it names;
    /// [`SignedRecordError::BadSignature`] otherwise.
    pub fn verify(self, sender: Option<&PeerId>) -> Result<SignedRecord, SignedRecordError> {
        let UnverifiedRecord {
            key,
            publisher,
            envelope,
            ..
        } = self;
        let message = envelope.signing_bytes(&key);
        let verified =
            author_key(&envelope.stamp.writer).map(|k| k.verify(&message, &envelope.signature));
        if !matches!(verified, Ok(true)) {
            let candidates = sender.into_iter().chain(publisher.as_ref());
            for peer in candidates {
                if peer_key(peer).is_some_and(|k| k.verify(&message, &envelope.signature)) {
                    return Err(SignedRecordError::StolenAuthorship {
                        claimed: envelope.stamp.writer,
                        signer: *peer,
                    });
                }
            }
            verified?;
            return Err(SignedRecordError::BadSignature {
                reason: "the signature is not the author's over this key, digest and stamp"
                    .to_owned(),
            });
        }
        Ok(SignedRecord { key, envelope })
    }
}

/// The author id of the ed25519 identity behind `peer`, if its id carries an ed25519
/// key (as every netabase node's does).
pub fn author_of(peer: &PeerId) -> Option<WriterId> {
    let key = peer_key(peer)?.try_into_ed25519().ok()?;
    Some(WriterId(key.to_bytes()))
}

/// Signs records as one author: an ed25519 identity and its hybrid logical clock.
pub struct RecordSigner {
    keypair: ed25519::Keypair,
    author: WriterId,
    clock: Clock,
}

impl std::fmt::Debug for RecordSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSigner")
            .field("author", &self.author)
            .finish_non_exhaustive()
    }
}

impl RecordSigner {
    /// A signer for the ed25519 identity `keypair` (a node's libp2p identity).
    ///
    /// # Errors
    /// [`SignedRecordError::NotEd25519`] for another kind of key.
    pub fn new(keypair: &Keypair) -> Result<Self, SignedRecordError> {
        let keypair = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|_| SignedRecordError::NotEd25519)?;
        let author = WriterId(keypair.public().to_bytes());
        Ok(RecordSigner {
            keypair,
            author,
            clock: Clock::new(Hlc::default()),
        })
    }

    /// The author id of the records this signer signs (its ed25519 public key).
    pub fn author(&self) -> WriterId {
        self.author
    }

    /// The peer id of the signer's identity.
    pub fn peer_id(&self) -> PeerId {
        PublicKey::from(self.keypair.public()).to_peer_id()
    }

    /// Moves the clock past a stamp seen in another author's record.
    pub fn observe(&self, stamp: VersionStamp) {
        self.clock.observe(stamp.hlc);
    }

    /// A fresh stamp of this author, greater than `after` (the stamp of the version of
    /// the key held now, if any), so a local write always supersedes what this node has
    /// seen of the key.
    pub fn next_stamp(&self, after: Option<VersionStamp>) -> VersionStamp {
        if let Some(after) = after {
            self.clock.observe(after.hlc);
        }
        VersionStamp {
            hlc: self.clock.now(),
            writer: self.author,
        }
    }

    /// The signature of this author over one version of a record (the bytes that
    /// [`RecordSigner::seal`] signs), for a stamp of this author only: `None` when
    /// `stamp` names another writer, whose versions this signer cannot vouch for.
    /// [`SignedRecord::from_version`] verifies it.
    pub fn sign_version(
        &self,
        key: &RecordKey,
        stamp: VersionStamp,
        value: Option<&[u8]>,
    ) -> Option<Vec<u8>> {
        if stamp.writer != self.author {
            return None;
        }
        let envelope = Envelope {
            stamp,
            tombstone: value.is_none(),
            digest: *blake3::hash(value.unwrap_or_default()).as_bytes(),
            signature: Vec::new(),
            value: Vec::new(),
        };
        Some(self.keypair.sign(&envelope.signing_bytes(key)))
    }

    /// Signs `value` (an encoded model; `None`: a tombstone) under `key` with `stamp`.
    pub fn seal(
        &self,
        key: RecordKey,
        value: Option<Vec<u8>>,
        stamp: VersionStamp,
    ) -> SignedRecord {
        let tombstone = value.is_none();
        let value = value.unwrap_or_default();
        let mut envelope = Envelope {
            stamp: VersionStamp {
                writer: self.author,
                ..stamp
            },
            tombstone,
            digest: *blake3::hash(&value).as_bytes(),
            signature: Vec::new(),
            value,
        };
        envelope.signature = self.keypair.sign(&envelope.signing_bytes(&key));
        SignedRecord { key, envelope }
    }
}

/// Wall-clock milliseconds since the Unix epoch, now: the `now_millis` of
/// [`SignedRecord::tombstone_expired`] and [`SignedRecord::check_skew`].
pub fn wall_millis() -> u64 {
    now_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> RecordKey {
        RecordKey::new(&name)
    }

    fn signer() -> Result<RecordSigner, SignedRecordError> {
        RecordSigner::new(&Keypair::generate_ed25519())
    }

    fn sealed(signer: &RecordSigner, value: &[u8]) -> Record {
        let stamp = signer.next_stamp(None);
        signer
            .seal(key("k"), Some(value.to_vec()), stamp)
            .to_record()
    }

    #[test]
    fn a_sealed_record_opens_with_its_author_stamp_and_value() -> Result<(), SignedRecordError> {
        let signer = signer()?;
        let record = sealed(&signer, b"hello");
        assert_eq!(record.publisher, Some(signer.peer_id()));
        let opened = SignedRecord::open(&record)?;
        assert_eq!(opened.author(), signer.author());
        assert_eq!(opened.author_peer(), Some(signer.peer_id()));
        assert_eq!(author_of(&signer.peer_id()), Some(signer.author()));
        assert_eq!(author_of(&PeerId::random()), None);
        assert_eq!(opened.value(), Some(&b"hello"[..]));
        assert!(!opened.is_tombstone());
        assert_eq!(opened.payload().map(|r| r.value), Some(b"hello".to_vec()));
        assert_eq!(opened.to_record().value, record.value);
        Ok(())
    }

    #[test]
    fn unsigned_tampered_and_badly_signed_records_are_refused() -> Result<(), SignedRecordError> {
        let signer = signer()?;
        let plain = Record::new(key("k"), b"hello".to_vec());
        assert!(matches!(
            SignedRecord::open(&plain),
            Err(SignedRecordError::Unsigned { .. })
        ));
        let empty = Record::new(key("k"), Vec::new());
        assert!(matches!(
            SignedRecord::open(&empty),
            Err(SignedRecordError::Unsigned { .. })
        ));

        let good = sealed(&signer, b"hello");
        let mut envelope = Envelope::decode(&good.value)?;
        envelope.value = b"HELLO".to_vec();
        let tampered = Record::new(key("k"), envelope.encode());
        assert_eq!(
            SignedRecord::open(&tampered),
            Err(SignedRecordError::TamperedValue)
        );

        let mut envelope = Envelope::decode(&good.value)?;
        envelope.signature[0] ^= 1;
        let bad = Record::new(key("k"), envelope.encode());
        assert!(matches!(
            SignedRecord::open(&bad),
            Err(SignedRecordError::BadSignature { .. })
        ));

        // The same signature under another key, or with a changed stamp, fails too.
        let mut moved = good.clone();
        moved.key = key("other");
        assert!(matches!(
            SignedRecord::open(&moved),
            Err(SignedRecordError::BadSignature { .. })
        ));
        let mut envelope = Envelope::decode(&good.value)?;
        envelope.stamp.hlc.millis += 1;
        let restamped = Record::new(key("k"), envelope.encode());
        assert!(matches!(
            SignedRecord::open(&restamped),
            Err(SignedRecordError::BadSignature { .. })
        ));
        let mut envelope = Envelope::decode(&good.value)?;
        envelope.signature.pop();
        let short = Record::new(key("k"), envelope.encode());
        assert!(matches!(
            SignedRecord::open(&short),
            Err(SignedRecordError::BadSignature { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_record_signed_by_one_peer_claiming_another_author_is_stolen()
    -> Result<(), SignedRecordError> {
        let thief = Keypair::generate_ed25519();
        let victim = signer()?;
        let Ok(thief_ed) = thief.clone().try_into_ed25519() else {
            return Err(SignedRecordError::NotEd25519);
        };
        let value = b"mine now".to_vec();
        let mut envelope = Envelope {
            stamp: victim.next_stamp(None),
            tombstone: false,
            digest: *blake3::hash(&value).as_bytes(),
            signature: Vec::new(),
            value,
        };
        envelope.signature = thief_ed.sign(&envelope.signing_bytes(&key("k")));
        let record = Record::new(key("k"), envelope.encode());
        let sender = thief.public().to_peer_id();
        assert_eq!(
            SignedRecord::open_from(&record, Some(&sender)),
            Err(SignedRecordError::StolenAuthorship {
                claimed: victim.author(),
                signer: sender,
            })
        );
        // Without knowing the sender it is a bad signature.
        assert!(matches!(
            SignedRecord::open(&record),
            Err(SignedRecordError::BadSignature { .. })
        ));
        Ok(())
    }

    #[test]
    fn decoding_without_verifying_checks_the_shape_and_digest_but_not_the_signature()
    -> Result<(), SignedRecordError> {
        let signer = signer()?;
        let good = sealed(&signer, b"hello");
        let unverified = SignedRecord::decode_unverified(&good)?;
        assert_eq!(unverified.key(), &good.key);
        assert_eq!(unverified.stamp().writer, signer.author());
        assert_eq!(unverified.value(), Some(&b"hello"[..]));
        assert!(!unverified.is_tombstone());
        assert_eq!(unverified.verify(None)?, SignedRecord::open(&good)?);

        // A damaged signature decodes, and only verifying refuses it.
        let mut envelope = Envelope::decode(&good.value)?;
        envelope.signature[0] ^= 1;
        let bad = Record::new(key("k"), envelope.encode());
        let unverified = SignedRecord::decode_unverified(&bad)?;
        assert!(matches!(
            unverified.verify(None),
            Err(SignedRecordError::BadSignature { .. })
        ));

        // An altered value or a non-envelope never get that far.
        let mut envelope = Envelope::decode(&good.value)?;
        envelope.value.push(0);
        let tampered = Record::new(key("k"), envelope.encode());
        assert_eq!(
            SignedRecord::decode_unverified(&tampered),
            Err(SignedRecordError::TamperedValue)
        );
        let plain = Record::new(key("k"), b"hello".to_vec());
        assert!(matches!(
            SignedRecord::decode_unverified(&plain),
            Err(SignedRecordError::Unsigned { .. })
        ));
        Ok(())
    }

    #[test]
    fn the_greater_stamp_wins_then_the_author_then_the_digest() -> Result<(), SignedRecordError> {
        let (a, b) = (signer()?, signer()?);
        let at = |millis, counter| VersionStamp {
            hlc: Hlc { millis, counter },
            writer: WriterId::default(),
        };
        let old = a.seal(key("k"), Some(b"old".to_vec()), at(10, 0));
        let new = a.seal(key("k"), Some(b"new".to_vec()), at(10, 1));
        assert_eq!(new.compare(&old), Ordering::Greater);
        assert_eq!(old.compare(&new), Ordering::Less);
        assert_eq!(old.compare(&old.clone()), Ordering::Equal);

        // Same clock reading, two authors: the greater author wins, on both sides.
        let from_a = a.seal(key("k"), Some(b"a".to_vec()), at(20, 0));
        let from_b = b.seal(key("k"), Some(b"b".to_vec()), at(20, 0));
        let expected = a.author().cmp(&b.author());
        assert_eq!(from_a.compare(&from_b), expected);
        assert_eq!(from_b.compare(&from_a), expected.reverse());

        // One author, one stamp, two values: the digest decides, the same way everywhere.
        let x = a.seal(key("k"), Some(b"x".to_vec()), at(30, 0));
        let y = a.seal(key("k"), Some(b"y".to_vec()), at(30, 0));
        assert_ne!(x.compare(&y), Ordering::Equal);
        assert_eq!(x.compare(&y), y.compare(&x).reverse());
        Ok(())
    }

    #[test]
    fn a_tombstone_wins_over_older_copies_and_expires() -> Result<(), SignedRecordError> {
        let (a, b) = (signer()?, signer()?);
        let put = a.seal(key("k"), Some(b"v".to_vec()), a.next_stamp(None));
        let stamp = b.next_stamp(Some(put.stamp()));
        let tombstone = b.seal(key("k"), None, stamp);
        let opened = SignedRecord::open(&tombstone.to_record())?;
        assert!(opened.is_tombstone());
        assert_eq!(opened.value(), None);
        assert_eq!(opened.payload(), None);
        assert_eq!(opened.compare(&put), Ordering::Greater);

        let ttl = Duration::from_secs(60);
        let born = tombstone.stamp().hlc.millis;
        assert!(!opened.tombstone_expired(ttl, born + 59_999));
        assert!(opened.tombstone_expired(ttl, born + 60_000));
        assert!(!put.tombstone_expired(Duration::ZERO, u64::MAX));

        // A tombstone that carries a value is not one this format writes.
        let mut envelope = Envelope::decode(&tombstone.to_record().value)?;
        envelope.value = b"v".to_vec();
        let odd = Record::new(key("k"), envelope.encode());
        assert!(matches!(
            SignedRecord::open(&odd),
            Err(SignedRecordError::Unsigned { .. })
        ));
        Ok(())
    }

    #[test]
    fn stamps_too_far_in_the_future_are_refused() -> Result<(), SignedRecordError> {
        let a = signer()?;
        let now = now_millis();
        let at = |millis| VersionStamp {
            hlc: Hlc { millis, counter: 0 },
            writer: a.author(),
        };
        let skew = Duration::from_secs(60);
        let near = a.seal(key("k"), Some(b"v".to_vec()), at(now + 59_000));
        assert_eq!(near.check_skew(skew, now), Ok(()));
        let far = a.seal(key("k"), Some(b"v".to_vec()), at(u64::MAX));
        assert!(matches!(
            far.check_skew(skew, now),
            Err(SignedRecordError::FutureStamp { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_version_signature_rebuilds_the_sealed_record() -> Result<(), SignedRecordError> {
        let (a, b) = (signer()?, signer()?);
        let stamp = a.next_stamp(None);
        let sealed = a.seal(key("k"), Some(b"v".to_vec()), stamp);
        // The signature of a version is the one `seal` makes: the proof is 64 bytes.
        let signature = a.sign_version(&key("k"), stamp, Some(b"v"));
        assert_eq!(
            signature.as_deref(),
            Some(sealed.envelope().signature.as_slice())
        );
        let Some(signature) = signature else {
            return Err(SignedRecordError::NotEd25519);
        };
        let rebuilt = SignedRecord::from_version(key("k"), stamp, Some(b"v".to_vec()), &signature)?;
        assert_eq!(rebuilt, sealed);
        // Another value, key or stamp does not verify; nor does a short signature.
        for (k, v, s) in [
            (key("k"), Some(b"w".to_vec()), stamp),
            (key("j"), Some(b"v".to_vec()), stamp),
            (key("k"), None, stamp),
            (key("k"), Some(b"v".to_vec()), a.next_stamp(None)),
        ] {
            assert!(matches!(
                SignedRecord::from_version(k, s, v, &signature),
                Err(SignedRecordError::BadSignature { .. })
            ));
        }
        assert!(
            SignedRecord::from_version(key("k"), stamp, Some(b"v".to_vec()), &signature[1..])
                .is_err()
        );
        // A signer vouches for its own stamps only.
        assert_eq!(b.sign_version(&key("k"), stamp, Some(b"v")), None);
        let tomb = a.next_stamp(None);
        let Some(signature) = a.sign_version(&key("k"), tomb, None) else {
            return Err(SignedRecordError::NotEd25519);
        };
        assert!(SignedRecord::from_version(key("k"), tomb, None, &signature)?.is_tombstone());
        Ok(())
    }

    #[test]
    fn stamps_of_a_signer_grow_past_what_it_has_seen() -> Result<(), SignedRecordError> {
        let a = signer()?;
        let far = VersionStamp {
            hlc: Hlc {
                millis: now_millis() + 3_600_000,
                counter: 7,
            },
            writer: WriterId([0xff; 32]),
        };
        let next = a.next_stamp(Some(far));
        assert!(next > far, "{next:?} <= {far:?}");
        assert_eq!(next.writer, a.author());
        assert!(a.next_stamp(None) > next);
        Ok(())
    }
}
