//! The one error type of the store.
//!
//! [`NetabaseError`] is an enum of small boxed reports, so that every `Result` the store
//! returns stays two words wide (a test pins its size) while each report carries the
//! context a user needs: the backend and operation, the table and key, the model and
//! field, the file. Engine and serializer errors are kept as typed `source`s.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::codec::key::KeyDecodeError;

/// A boxed error from a storage engine, kept as the `source` of [`BackendError`].
pub type BoxedError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `netabase_store`.
///
/// Each variant holds a boxed report with public fields; match on the variant, then
/// read the fields:
///
/// ```
/// # use netabase_store::prelude::*;
/// # fn check(result: NetabaseResult<()>) {
/// match result {
///     Err(NetabaseError::UniqueViolation(v)) => eprintln!("{} is taken by {}", v.field, v.holder),
///     Err(other) => eprintln!("{other}"),
///     Ok(()) => {}
/// }
/// # }
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetabaseError {
    /// The storage engine reported an error.
    #[error(transparent)]
    Backend(Box<BackendError>),

    /// The storage engine failed in a way that means its data is damaged (it panicked
    /// on the bytes it read). The store refuses further writes until it is reopened.
    #[error(transparent)]
    Corrupted(Box<CorruptedError>),

    /// Stored bytes (a value, a key or an index entry) could not be decoded.
    #[error(transparent)]
    Decode(Box<DecodeError>),

    /// A model could not be serialized.
    #[error(transparent)]
    Encode(Box<EncodeError>),

    /// A unique secondary key is already held by another record; nothing of the write
    /// was applied.
    #[error(transparent)]
    UniqueViolation(Box<UniqueViolation>),

    /// A stored value was written by a model version this code cannot read.
    #[error(transparent)]
    Version(Box<VersionError>),

    /// The schema stored in the database and the code's schema cannot be reconciled.
    #[error(transparent)]
    Schema(Box<SchemaError>),

    /// The database was written in another (newer or unknown) storage format.
    #[error(transparent)]
    UnsupportedFormat(Box<FormatError>),

    /// A file-system operation failed.
    #[error(transparent)]
    Io(Box<IoError>),

    /// A configuration option was refused.
    #[error(transparent)]
    Config(Box<ConfigError>),

    /// A write was attempted on a store opened read-only.
    #[error(transparent)]
    ReadOnly(Box<ReadOnlyError>),

    /// A write transaction saw an engine failure in one of its writes and can no longer
    /// commit; nothing of it is applied.
    #[error(transparent)]
    Poisoned(Box<PoisonedError>),

    // Subscriptions.
    /// A subscription's store was dropped (every handle on it) and every event it
    /// buffered has been read: no event will come.
    #[error(transparent)]
    Closed(Box<ClosedError>),

    // Model rules: validators and links. Each is a refusal: nothing of the write (or of
    // the enclosing `put_many`, batch or cascade) is applied and the transaction stays
    // usable.
    /// A model failed a validation rule; nothing of the write was applied.
    #[error(transparent)]
    Invalid(Box<InvalidError>),

    /// A put named, in a `#[link(..)]` field, a record that does not exist; nothing of
    /// the write was applied.
    #[error(transparent)]
    DanglingLink(Box<DanglingLinkError>),

    /// A removal was refused because a record still links to the removed one through a
    /// link declared `on_delete = restrict`; nothing of the removal was applied.
    #[error(transparent)]
    StillReferenced(Box<StillReferencedError>),

    /// A write transaction lost a race with a concurrent writer (another process on a
    /// shared server): nothing of it was applied, and running it again may succeed
    /// ([`NetabaseError::is_conflict`]). One-shot writes and batches retry by themselves
    /// a bounded number of times ([`crate::OpenOptions::commit_retries`]); explicit
    /// transactions return it to the caller.
    #[error(transparent)]
    Conflict(Box<ConflictError>),

    // Values at rest and values without their Rust types.
    /// A stored value could not be decrypted or decompressed: the store was opened
    /// without the key it needs, with the wrong key, or the value was altered.
    #[error(transparent)]
    Transform(Box<TransformError>),

    /// A record given without its Rust type (a tool's import) does not fit the shape
    /// its model records in the database.
    #[error(transparent)]
    Shape(Box<ShapeError>),

    /// Synchronisation of two stores was refused or could not complete: a model that
    /// is not synced, a malformed or foreign message, or records that could not be
    /// applied (see [`SyncError`]).
    #[error(transparent)]
    Sync(Box<SyncError>),

    /// An asynchronous write transaction was ended by its engine before it committed:
    /// IndexedDB commits a transaction by itself once no request is pending, so a
    /// transaction held across an unrelated `.await` is gone. The write that found it
    /// so is refused and the transaction can no longer commit; nothing of it that was
    /// not already applied by the engine is reported as committed.
    #[error(transparent)]
    TransactionInactive(Box<InactiveError>),
}

/// A value that could not be decrypted or decompressed ([`NetabaseError::Transform`]).
#[derive(Debug, Error)]
#[non_exhaustive]
#[error(
    "cannot read the value in table `{table}` at key {}: {problem}",
    hex(key)
)]
pub struct TransformError {
    /// The table.
    pub table: String,
    /// The encoded key of the value.
    pub key: Vec<u8>,
    /// What went wrong.
    pub problem: TransformProblem,
}

/// What went wrong in a [`TransformError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransformProblem {
    /// The value is encrypted and the store was opened without a key.
    #[error("the value is encrypted; open the store with its encryption key")]
    KeyRequired,
    /// The store's key check does not open with the given key.
    #[error("the encryption key is not the one this store was written with")]
    WrongKey,
    /// The value does not authenticate under the given key: the key is wrong, or the
    /// value was altered, or moved from another table or key.
    #[error(
        "the value does not authenticate: the key is wrong, or the value was altered or moved \
         from another key"
    )]
    Authentication,
    /// The value does not decompress.
    #[error("the value does not decompress: {0}")]
    Decompress(String),
    /// The value is compressed or encrypted and was read without its transforms.
    #[error(
        "the value is compressed or encrypted; open the store through \
         `backend::transform::Transformed` (with its key when it is encrypted)"
    )]
    NotOpened,
    /// The value's transform byte is not one this build knows.
    #[error("unknown value transform {0:#04x}")]
    Unknown(u8),
}

/// A record that does not fit its model's stored shape ([`NetabaseError::Shape`]).
#[derive(Debug, Error)]
#[non_exhaustive]
#[error("a record of `{model}` does not fit its stored shape: {}{reason}", field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct ShapeError {
    /// The model's table.
    pub model: String,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// What does not fit.
    pub reason: String,
}

/// `Result` with [`NetabaseError`].
pub type Result<T, E = NetabaseError> = std::result::Result<T, E>;

/// The storage engine reported an error ([`NetabaseError::Backend`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub struct BackendError {
    /// The backend's name (`"redb"`, `"memory"`, ...).
    pub backend: &'static str,
    /// What the store was doing, e.g. `"begin a write transaction"`.
    pub operation: &'static str,
    /// The file or directory involved, when there is one.
    pub path: Option<PathBuf>,
    /// The engine's own error.
    #[source]
    pub source: BoxedError,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} backend failed to {}", self.backend, self.operation)?;
        if let Some(path) = &self.path {
            write!(f, " `{}`", path.display())?;
        }
        write!(f, ": {}", self.source)
    }
}

/// The engine panicked on the data it read ([`NetabaseError::Corrupted`]).
#[derive(Debug, Error)]
#[error(
    "{backend} backend found damaged data while trying to {operation}{}: {detail}; \
     the store refuses writes until it is reopened (run its integrity check)",
    table.as_deref().map(|t| format!(" in table `{t}`")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct CorruptedError {
    /// The backend's name.
    pub backend: &'static str,
    /// What the store was doing.
    pub operation: &'static str,
    /// The table being read or written, when known.
    pub table: Option<String>,
    /// What the engine reported.
    pub detail: String,
}

/// Why stored bytes did not decode.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeReason {
    /// The value's body is not a serialization of the model.
    #[error("{0}")]
    Value(#[from] postcard::Error),
    /// The key is not an encoding of the table's key type.
    #[error("{0}")]
    Key(#[from] KeyDecodeError),
    /// The value is shorter than its header.
    #[error("value is {len} byte(s), shorter than its {header}-byte header")]
    TooShort {
        /// The value's length.
        len: usize,
        /// The header's length.
        header: usize,
    },
    /// The value's header names a format this build does not read.
    #[error("value format version {found} is not supported (this build reads version {supported})")]
    UnknownFormat {
        /// The format version found.
        found: u8,
        /// The one this build reads.
        supported: u8,
    },
    /// An index entry points at a primary key that holds no record.
    #[error(
        "index entry points at primary key {} that is not in `{table}`",
        hex(primary_key)
    )]
    DanglingIndex {
        /// The primary table.
        table: &'static str,
        /// The encoded primary key the entry points at.
        primary_key: Vec<u8>,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl From<String> for DecodeReason {
    fn from(reason: String) -> Self {
        DecodeReason::Other(reason)
    }
}

impl From<&str> for DecodeReason {
    fn from(reason: &str) -> Self {
        DecodeReason::Other(reason.to_owned())
    }
}

/// Stored bytes could not be decoded ([`NetabaseError::Decode`]).
#[derive(Debug, Error)]
#[error(
    "cannot decode the record in table `{table}` at key {}: {reason}",
    hex(key)
)]
#[non_exhaustive]
pub struct DecodeError {
    /// The table that holds the bytes.
    pub table: String,
    /// The key of the record (encoded).
    pub key: Vec<u8>,
    /// Why decoding failed.
    #[source]
    pub reason: DecodeReason,
}

/// A model could not be serialized ([`NetabaseError::Encode`]).
#[derive(Debug, Error)]
#[error("cannot encode a `{model}`: {source}")]
#[non_exhaustive]
pub struct EncodeError {
    /// The model's name.
    pub model: &'static str,
    /// The serializer's error.
    #[source]
    pub source: postcard::Error,
}

/// A unique key is held by another record ([`NetabaseError::UniqueViolation`]).
#[derive(Debug, Error)]
#[error(
    "unique key `{model}.{field}` = {value} is already held by the record with primary key {holder}"
)]
#[non_exhaustive]
pub struct UniqueViolation {
    /// The model's name.
    pub model: &'static str,
    /// The field of the unique secondary key.
    pub field: &'static str,
    /// The conflicting key value (debug form).
    pub value: String,
    /// The primary key of the record that holds it (debug form when it decodes, else hex).
    pub holder: String,
    /// The encoded primary key of the record that holds it.
    pub holder_key: Vec<u8>,
}

/// What is wrong with a stored model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionProblem {
    /// Written by a newer version of the model than this code knows.
    Newer,
    /// Written by an older version that this code has no upgrade for.
    NoUpgrade,
}

/// A stored model version that this code cannot read ([`NetabaseError::Version`]).
#[derive(Debug, Error)]
#[error(
    "the record in table `{table}` at key {} was written by version {found} of `{model}`, \
     {}",
    hex(key),
    match problem {
        VersionProblem::Newer => format!("newer than the version {known} this code knows"),
        VersionProblem::NoUpgrade => format!("and this code (version {known}) has no upgrade from it"),
    }
)]
#[non_exhaustive]
pub struct VersionError {
    /// The model's name.
    pub model: &'static str,
    /// The model's table.
    pub table: &'static str,
    /// The record's encoded key.
    pub key: Vec<u8>,
    /// The version found in the value's header.
    pub found: u16,
    /// The version this code writes.
    pub known: u16,
    /// Which problem it is.
    pub problem: VersionProblem,
}

/// The stored schema and the code's cannot be reconciled ([`NetabaseError::Schema`]).
#[derive(Debug, Error)]
#[error("the schema of `{definition}` stored in the database does not match the code: {reason}")]
#[non_exhaustive]
pub struct SchemaError {
    /// The definition's name.
    pub definition: &'static str,
    /// The model concerned.
    pub model: String,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// What differs.
    pub reason: String,
}

/// The database holds another storage format ([`NetabaseError::UnsupportedFormat`]).
#[derive(Debug, Error)]
#[error(
    "unsupported storage format in `{table}`: found version {found}, this build reads version {supported}"
)]
#[non_exhaustive]
pub struct FormatError {
    /// Where the version was read.
    pub table: String,
    /// The version found.
    pub found: u32,
    /// The version this build reads and writes.
    pub supported: u32,
}

/// A file-system operation failed ([`NetabaseError::Io`]).
#[derive(Debug, Error)]
#[error("cannot {operation} `{}`: {source}", path.display())]
#[non_exhaustive]
pub struct IoError {
    /// What was being done, e.g. `"open the database at"`.
    pub operation: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// A configuration option was refused ([`NetabaseError::Config`]).
#[derive(Debug, Error)]
#[error("the {backend} backend does not accept `{option}`: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The backend's name.
    pub backend: &'static str,
    /// The option's name.
    pub option: &'static str,
    /// Why it was refused.
    pub reason: String,
}

/// A write on a read-only store ([`NetabaseError::ReadOnly`]).
#[derive(Debug, Error)]
#[error("`{call}` was refused: the {backend} store was opened read-only")]
#[non_exhaustive]
pub struct ReadOnlyError {
    /// The backend's name.
    pub backend: &'static str,
    /// The refused call, e.g. `"NetabaseStore::write"`.
    pub call: &'static str,
}

/// A write transaction that can no longer commit ([`NetabaseError::Poisoned`]).
#[derive(Debug, Error)]
#[error(
    "this write transaction can no longer commit: an earlier write failed in the engine \
     ({cause}); drop it and start again (nothing of it was applied)"
)]
#[non_exhaustive]
pub struct PoisonedError {
    /// The engine failure that poisoned the transaction.
    pub cause: String,
}

/// What went wrong in a synchronisation ([`NetabaseError::Sync`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncProblem {
    /// The model (or every model) is not synced in this store.
    NotSynced,
    /// A model name given to the sync options is not a model of the definition.
    UnknownModel,
    /// Sync must be turned on or configured, which a read-only store cannot do.
    ReadOnly,
    /// A message could not be decoded, or is not a message of this definition.
    Protocol,
    /// The fingerprint tables do not agree with the records' sync entries.
    Damaged,
    /// Sync was asked of a store that cannot keep its metadata: a store opened
    /// directly on an asynchronous backend (IndexedDB, or an adapter opened with
    /// `AsyncStore::open`).
    Unsupported,
    /// Records chosen by the merge rule could not be applied: each would break a unique
    /// key held locally by another record. Everything else was applied; the two stores
    /// still differ at these keys until the application resolves them.
    Conflicts(Vec<SyncConflict>),
}

/// A record that reconciliation could not apply ([`SyncProblem::Conflicts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncConflict {
    /// The model.
    pub model: &'static str,
    /// The encoded primary key of the record that could not be applied.
    pub key: Vec<u8>,
    /// Why (the unique-key violation, as text).
    pub reason: String,
}

/// Synchronisation was refused or could not complete ([`NetabaseError::Sync`]).
#[derive(Debug, Error)]
#[error(
    "sync of `{definition}`{}: {reason}",
    model.as_deref().map(|m| format!(" (model `{m}`)")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct SyncError {
    /// The definition's name.
    pub definition: &'static str,
    /// The model concerned, if one.
    pub model: Option<String>,
    /// Which problem it is.
    pub problem: SyncProblem,
    /// What happened, in words.
    pub reason: String,
}

impl NetabaseError {
    /// A [`NetabaseError::Sync`].
    pub(crate) fn sync(
        definition: &'static str,
        model: Option<&str>,
        problem: SyncProblem,
        reason: impl Into<String>,
    ) -> Self {
        NetabaseError::Sync(Box::new(SyncError {
            definition,
            model: model.map(str::to_owned),
            problem,
            reason: reason.into(),
        }))
    }
}

/// A subscription whose store is gone ([`NetabaseError::Closed`]).
#[derive(Debug, Error)]
#[error(
    "the `{definition}` store this subscription watched was dropped and every event it \
     buffered has been read: no event will come"
)]
#[non_exhaustive]
pub struct ClosedError {
    /// The name of the store's definition.
    pub definition: &'static str,
}

/// A model failed a validation rule ([`NetabaseError::Invalid`]).
#[derive(Debug, Error)]
#[error(
    "invalid `{model}`{}: {reason}",
    field.map(|f| format!(" field `{f}`")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct InvalidError {
    /// The model's name.
    pub model: &'static str,
    /// The field whose rule failed; `None` for a model-level `validate = ..` function.
    pub field: Option<&'static str>,
    /// What is wrong, e.g. `"length 0 is below the minimum 1"`.
    pub reason: String,
}

/// A link to a record that does not exist ([`NetabaseError::DanglingLink`]).
#[derive(Debug, Error)]
#[error(
    "`{model}.{field}` links to `{target}` with primary key {target_key}, which does not exist"
)]
#[non_exhaustive]
pub struct DanglingLinkError {
    /// The model holding the link.
    pub model: &'static str,
    /// The link field.
    pub field: &'static str,
    /// The linked model.
    pub target: &'static str,
    /// The missing primary key (debug form when it decodes, else hex).
    pub target_key: String,
}

/// A removal refused by an `on_delete = restrict` link ([`NetabaseError::StillReferenced`]).
#[derive(Debug, Error)]
#[error(
    "cannot remove `{target}` with primary key {target_key}: `{model}` with primary key \
     {referrer_key} still links to it through `{model}.{field}` (on_delete = restrict)"
)]
#[non_exhaustive]
pub struct StillReferencedError {
    /// The model of the record being removed.
    pub target: &'static str,
    /// Its primary key (debug form).
    pub target_key: String,
    /// The model of the record that links to it.
    pub model: &'static str,
    /// The link field.
    pub field: &'static str,
    /// The primary key of the record that links to it (debug form).
    pub referrer_key: String,
}

impl NetabaseError {
    /// A failed validation rule of `model` (`field` is `None` for a model-level rule).
    pub fn invalid(
        model: &'static str,
        field: Option<&'static str>,
        reason: impl Into<String>,
    ) -> Self {
        NetabaseError::Invalid(Box::new(InvalidError {
            model,
            field,
            reason: reason.into(),
        }))
    }
}

/// A write transaction that a concurrent writer made stale ([`NetabaseError::Conflict`]).
#[derive(Debug, Error)]
#[error(
    "{backend} backend refused to {operation}: another writer committed since this \
     transaction began reading ({detail}); nothing of it was applied, run it again"
)]
#[non_exhaustive]
pub struct ConflictError {
    /// The backend's name.
    pub backend: &'static str,
    /// What the store was doing, e.g. `"commit a write transaction"`.
    pub operation: &'static str,
    /// What changed underneath the transaction.
    pub detail: String,
}

impl NetabaseError {
    /// A write transaction that a concurrent writer made stale: retryable.
    pub fn conflict(
        backend: &'static str,
        operation: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        NetabaseError::Conflict(Box::new(ConflictError {
            backend,
            operation,
            detail: detail.into(),
        }))
    }

    /// Whether the error is a [`NetabaseError::Conflict`]: the transaction applied
    /// nothing and running it again may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, NetabaseError::Conflict(_))
    }

    /// Wraps an engine error with the backend name and the operation.
    pub fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxedError>,
    ) -> Self {
        NetabaseError::Backend(Box::new(BackendError {
            backend,
            operation,
            path: None,
            source: source.into(),
        }))
    }

    /// Wraps an engine error about the file or directory at `path`.
    pub fn backend_at(
        backend: &'static str,
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<BoxedError>,
    ) -> Self {
        NetabaseError::Backend(Box::new(BackendError {
            backend,
            operation,
            path: Some(path.into()),
            source: source.into(),
        }))
    }

    /// A decode error for the record of `table` at `key`.
    pub fn decode(table: &str, key: &[u8], reason: impl Into<DecodeReason>) -> Self {
        NetabaseError::Decode(Box::new(DecodeError {
            table: table.to_owned(),
            key: key.to_vec(),
            reason: reason.into(),
        }))
    }

    /// A decode error for the record of `table` at `key`, described in words.
    pub fn decode_other(table: &str, key: &[u8], reason: impl fmt::Display) -> Self {
        Self::decode(table, key, DecodeReason::Other(reason.to_string()))
    }

    /// A value that could not be decrypted or decompressed.
    pub fn transform(table: &str, key: &[u8], problem: TransformProblem) -> Self {
        NetabaseError::Transform(Box::new(TransformError {
            table: table.to_owned(),
            key: key.to_vec(),
            problem,
        }))
    }

    /// A file-system error.
    pub fn io(operation: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetabaseError::Io(Box::new(IoError {
            operation,
            path: path.into(),
            source,
        }))
    }

    /// A refused configuration option.
    pub fn config(backend: &'static str, option: &'static str, reason: impl Into<String>) -> Self {
        NetabaseError::Config(Box::new(ConfigError {
            backend,
            option,
            reason: reason.into(),
        }))
    }

    /// A write refused by a read-only store.
    pub fn read_only(backend: &'static str, call: &'static str) -> Self {
        NetabaseError::ReadOnly(Box::new(ReadOnlyError { backend, call }))
    }

    /// A serialization failure.
    pub fn encode(model: &'static str, source: postcard::Error) -> Self {
        NetabaseError::Encode(Box::new(EncodeError { model, source }))
    }

    /// Damage reported by an engine that panicked.
    pub fn corrupted(
        backend: &'static str,
        operation: &'static str,
        table: Option<&str>,
        detail: impl Into<String>,
    ) -> Self {
        NetabaseError::Corrupted(Box::new(CorruptedError {
            backend,
            operation,
            table: table.map(str::to_owned),
            detail: detail.into(),
        }))
    }

    /// Whether the error refused one write and undid it entirely, leaving the
    /// transaction as it was before that write (a unique key held by another record, a
    /// stored record that does not decode, a model that does not encode, an invalid
    /// version). Any other error inside a write transaction poisons it.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(
            self,
            NetabaseError::UniqueViolation(_)
                | NetabaseError::Transform(_)
                | NetabaseError::Shape(_)
                | NetabaseError::Decode(_)
                | NetabaseError::Encode(_)
                | NetabaseError::Version(_)
                | NetabaseError::Invalid(_)
                | NetabaseError::DanglingLink(_)
                | NetabaseError::StillReferenced(_)
        )
    }
}

/// An asynchronous transaction that its engine had already ended
/// ([`NetabaseError::TransactionInactive`]).
#[derive(Debug, Error)]
#[error(
    "{backend} transaction was no longer active when the store tried to {operation}: the \
     engine ended it on its own (a transaction must not be held across an unrelated \
     `.await`); nothing of it is committed by the store"
)]
#[non_exhaustive]
pub struct InactiveError {
    /// The backend's name (`"indexeddb"`).
    pub backend: &'static str,
    /// What the store was doing, e.g. `"put"`.
    pub operation: &'static str,
}

impl NetabaseError {
    /// A transaction that its engine ended before the store was done with it.
    pub fn inactive(backend: &'static str, operation: &'static str) -> Self {
        NetabaseError::TransactionInactive(Box::new(InactiveError { backend, operation }))
    }
}

/// Lower-case hex of `bytes`, for error messages (long keys are shortened).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    const MAX: usize = 64;
    let mut out = String::with_capacity(2 + 2 * bytes.len().min(MAX) + 8);
    out.push_str("0x");
    for b in bytes.iter().take(MAX) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > MAX {
        let _ = write!(out, "… ({} bytes)", bytes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_two_words() {
        assert!(std::mem::size_of::<NetabaseError>() <= 32);
        assert_eq!(std::mem::size_of::<NetabaseError>(), 16);
        assert!(std::mem::size_of::<Result<()>>() <= 32);
    }

    #[test]
    fn sources_are_typed() {
        use std::error::Error as _;
        let e = NetabaseError::decode("T", &[1], postcard::Error::DeserializeUnexpectedEnd);
        let source = e.source().and_then(|s| s.source());
        assert!(source.is_some_and(|s| s.downcast_ref::<postcard::Error>().is_some()));
        assert!(e.to_string().contains("table `T` at key 0x01"));
    }
}
