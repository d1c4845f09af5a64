//! The typed bridge: models as DHT records, and the checks an inbound record must pass.
//!
//! # Record key layout
//!
//! The record key of a model is the order-preserving key encoding (see
//! [`crate::codec::key`]) of the tuple
//!
//! ```text
//! (definition name: String, model name: String, primary key bytes: Vec<u8>)
//! ```
//!
//! where the model name is [`DiscriminantTrait::name`] and the primary key bytes are
//! the model's encoded primary key. Models are named, not numbered, so reordering the
//! models of a definition does not change any record key. It depends on the key alone, so any peer can compute
//! it from `UserPrimaryKey(7)` without holding the model; the definition name keeps two
//! schemas that share a DHT apart. The record value is the stored value of the model
//! ([`NetabaseDefinitionTrait::encode_value`]: header ++ postcard).

use libp2p::kad::{Record, RecordKey};
use thiserror::Error;

use crate::codec::key::{KeyCodec, KeyDecodeError};
use crate::error::NetabaseError;
use crate::schema::{DiscriminantTrait, NetabaseDefinitionTrait, NetabaseModelTrait};

/// Why a record is not a valid record of a definition.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is larger than the limit.
    #[error("record value is {size} bytes, more than the limit of {max}")]
    ValueTooLarge {
        /// The value's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The key is not a netabase record key.
    #[error("record key is not a netabase record key: {0}")]
    MalformedKey(#[source] KeyDecodeError),
    /// The key belongs to another definition.
    #[error("record key belongs to definition `{found}`, not `{expected}`")]
    ForeignDefinition {
        /// The definition named by the key.
        found: String,
        /// The definition of this node.
        expected: &'static str,
    },
    /// The key names a model that the definition does not have.
    #[error("record key names model `{model}`, which `{definition}` does not have")]
    UnknownModel {
        /// The definition.
        definition: &'static str,
        /// The model name found in the key.
        model: String,
    },
    /// The value does not decode as the model named by the key.
    #[error("record value is not a valid `{model}`: {source}")]
    UndecodableValue {
        /// The model named by the key.
        model: &'static str,
        /// The decoder's error.
        #[source]
        source: NetabaseError,
    },
    /// The value decodes, but not all of it: re-encoding the decoded model gives a value
    /// of another length (trailing bytes, or bytes of another model that happen to
    /// decode). Lengths are compared rather than bytes so that a model whose encoding
    /// is not unique (a `HashMap` field) is not refused.
    #[error("record value is {found} bytes, but the `{model}` it decodes to encodes in {expected}")]
    NonCanonicalValue {
        /// The model named by the key.
        model: &'static str,
        /// The length of the re-encoded model.
        expected: usize,
        /// The length of the value received.
        found: usize,
    },
    /// The value is a model that fails its validation rules (`#[validate(..)]`,
    /// `validate = ..`), which every write path of the store applies.
    #[error("record value is a `{model}` that fails its validation rules: {source}")]
    Invalid {
        /// The model.
        model: &'static str,
        /// The validation error ([`NetabaseError::Invalid`]).
        #[source]
        source: NetabaseError,
    },
    /// The value decodes, but its primary key is not the one in the record key.
    #[error("record value is a `{model}` whose primary key does not match the record key")]
    KeyMismatch {
        /// The model named by the key.
        model: &'static str,
    },
}

/// The parts of a netabase record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKeyParts {
    /// The definition's name ([`NetabaseDefinitionTrait::NAME`]).
    pub definition: String,
    /// The model's name ([`DiscriminantTrait::name`]).
    pub model: String,
    /// The encoded primary key.
    pub primary_key: Vec<u8>,
}

fn encode_parts(definition: &str, model: &str, primary_key: &[u8]) -> RecordKey {
    let mut out = Vec::with_capacity(definition.len() + model.len() + primary_key.len() + 8);
    definition.to_owned().encode_key(&mut out);
    model.to_owned().encode_key(&mut out);
    primary_key.to_vec().encode_key(&mut out);
    RecordKey::from(out)
}

/// Splits a record key into its parts.
///
/// # Errors
/// [`RecordError::MalformedKey`] if the key is not a netabase record key.
pub fn parse_record_key(key: &RecordKey) -> Result<RecordKeyParts, RecordError> {
    let (definition, model, primary_key) =
        <(String, String, Vec<u8>)>::from_key_bytes(key.as_ref())
            .map_err(RecordError::MalformedKey)?;
    Ok(RecordKeyParts {
        definition,
        model,
        primary_key,
    })
}

/// The record key of the model `M` with primary key `key`.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
/// # }
/// # use app::*;
/// use netabase_store::kad::{DefinitionRecordExt, record_key};
///
/// let note = Note { id: 7, text: "hi".into() };
/// let from_key = record_key::<AppDefinition, Note>(&NotePrimaryKey(7));
/// assert_eq!(from_key, note.into_definition().record_key());
/// ```
pub fn record_key<D, M>(key: &M::PrimaryKey) -> RecordKey
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let mut primary = Vec::with_capacity(16);
    key.encode_key(&mut primary);
    encode_parts(D::NAME, M::discriminant().name(), &primary)
}

/// The record key of the record of the model named `model` whose encoded primary key
/// is `primary_key`: [`record_key`] for code that knows models by name (sync, which
/// carries encoded keys), or `None` when `D` has no such model.
pub fn record_key_for<D: NetabaseDefinitionTrait>(
    model: &str,
    primary_key: &[u8],
) -> Option<RecordKey> {
    let discriminant = D::Discriminant::from_name(model)?;
    Some(encode_parts(D::NAME, discriminant.name(), primary_key))
}

/// The record key of a key enum value (`BlogKeys::User(UserKey::Primary(..))`), or
/// `None` when it holds a secondary key (records are addressed by primary key only).
pub fn record_key_of<D: NetabaseDefinitionTrait>(keys: &D::Keys) -> Option<RecordKey> {
    let mut primary = Vec::with_capacity(16);
    D::encode_keys_primary(keys, &mut primary)
        .then(|| encode_parts(D::NAME, D::key_discriminant(keys).name(), &primary))
}

/// Models of a definition as DHT records; implemented for every definition.
pub trait DefinitionRecordExt: NetabaseDefinitionTrait {
    /// The record key of the held model (see the [module docs](self) for the layout).
    fn record_key(&self) -> RecordKey;

    /// The held model as a record: its record key and its encoded value, with no
    /// publisher and no expiry (the node sets both).
    ///
    /// # Errors
    /// [`NetabaseError::Encode`] if the model cannot be serialized.
    fn to_record(&self) -> Result<Record, NetabaseError>;

    /// The model carried by `record`, after checking that the key is a key of this
    /// definition, the value decodes (completely) as the model it names and the model's
    /// primary key is the one in the record key.
    ///
    /// # Errors
    /// The [`RecordError`] of the first check that fails.
    fn from_record(record: &Record) -> Result<Self, RecordError>;
}

impl<D: NetabaseDefinitionTrait> DefinitionRecordExt for D {
    fn record_key(&self) -> RecordKey {
        let mut primary = Vec::with_capacity(16);
        self.encode_primary_key(&mut primary);
        encode_parts(D::NAME, self.discriminant().name(), &primary)
    }

    fn to_record(&self) -> Result<Record, NetabaseError> {
        Ok(Record::new(self.record_key(), self.encode_value()?))
    }

    fn from_record(record: &Record) -> Result<Self, RecordError> {
        let parts = parse_record_key(&record.key)?;
        if parts.definition != D::NAME {
            return Err(RecordError::ForeignDefinition {
                found: parts.definition,
                expected: D::NAME,
            });
        }
        let Some(discriminant) = D::Discriminant::from_name(&parts.model) else {
            return Err(RecordError::UnknownModel {
                definition: D::NAME,
                model: parts.model,
            });
        };
        let model = discriminant.name();
        let value = D::decode_value(discriminant, &record.value)
            .map_err(|source| RecordError::UndecodableValue { model, source })?;
        // postcard ignores trailing bytes, so a value of another model can decode as this
        // one; a full decode re-encodes to the same length.
        let expected = value
            .encode_value()
            .map_err(|source| RecordError::UndecodableValue { model, source })?
            .len();
        if expected != record.value.len() {
            return Err(RecordError::NonCanonicalValue {
                model,
                expected,
                found: record.value.len(),
            });
        }
        let mut primary = Vec::with_capacity(parts.primary_key.len());
        value.encode_primary_key(&mut primary);
        if value.discriminant() != discriminant || primary != parts.primary_key {
            return Err(RecordError::KeyMismatch { model });
        }
        Ok(value)
    }
}

/// [`DefinitionRecordExt::from_record`] preceded by a size check: what a node runs on
/// every record it receives, before anything of it reaches its store.
///
/// # Errors
/// [`RecordError::ValueTooLarge`] if the value is larger than `max_value_bytes`, else as
/// [`DefinitionRecordExt::from_record`].
pub fn validate_record<D: NetabaseDefinitionTrait>(
    record: &Record,
    max_value_bytes: usize,
) -> Result<D, RecordError> {
    if record.value.len() > max_value_bytes {
        return Err(RecordError::ValueTooLarge {
            size: record.value.len(),
            max: max_value_bytes,
        });
    }
    let value = D::from_record(record)?;
    // The model's validators, as every local write runs them. Links are not checked:
    // a record's targets need not be held by this node.
    crate::typed::links::validate_value::<D>(&value).map_err(|source| RecordError::Invalid {
        model: value.discriminant().name(),
        source,
    })?;
    Ok(value)
}
