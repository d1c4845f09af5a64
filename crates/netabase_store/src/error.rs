//! The one error type of the store.

use std::path::PathBuf;

use thiserror::Error;

use crate::codec::key::KeyDecodeError;

/// A boxed error from a storage engine, kept as the `source` of [`NetabaseError::Backend`].
pub type BoxedError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `netabase_store`.
///
/// Every variant says what failed and where: the backend and operation, the table and
/// key, or the model and field.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetabaseError {
    /// The storage engine reported an error.
    #[error("{backend} backend failed to {operation}: {source}")]
    Backend {
        /// The backend's name (`"redb"`, `"memory"`, ...).
        backend: &'static str,
        /// What the store was doing, e.g. `"begin a write transaction"`.
        operation: &'static str,
        /// The engine's own error.
        #[source]
        source: BoxedError,
    },

    /// Stored bytes (a value or a key) could not be decoded.
    #[error("cannot decode the record in table `{table}` at key {key}: {reason}")]
    Decode {
        /// The table that holds the bytes.
        table: String,
        /// The key of the record, in hex.
        key: String,
        /// Why decoding failed.
        reason: String,
    },

    /// A key in a table is not a valid encoding of the table's key type.
    #[error("invalid key {key} in table `{table}`: {source}")]
    KeyDecode {
        /// The table that holds the key.
        table: String,
        /// The key, in hex.
        key: String,
        /// What is wrong with it.
        #[source]
        source: KeyDecodeError,
    },

    /// A model could not be serialized.
    #[error("cannot encode a `{model}`: {source}")]
    Encode {
        /// The model's name.
        model: &'static str,
        /// The serializer's error.
        #[source]
        source: postcard::Error,
    },

    /// A unique secondary key is already held by another record; nothing of the write
    /// was applied.
    #[error(
        "unique key `{model}.{field}` = {value} is already held by the record with primary key {existing}"
    )]
    UniqueViolation {
        /// The model's name.
        model: &'static str,
        /// The field of the unique secondary key.
        field: &'static str,
        /// The conflicting key value (debug form).
        value: String,
        /// The primary key of the record that holds it (debug form when decodable, else hex).
        existing: String,
    },

    /// The database was written by a newer (or unknown) version of the format.
    #[error(
        "unsupported storage format in `{table}`: found version {found}, this build reads version {supported}"
    )]
    UnsupportedFormat {
        /// Where the version was read.
        table: String,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// A file-system operation failed.
    #[error("{operation} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A configuration option was refused.
    #[error("the {backend} backend does not accept `{option}`: {reason}")]
    Config {
        /// The backend's name.
        backend: &'static str,
        /// The option's name.
        option: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// A write was attempted on a store opened read-only.
    #[error("the {backend} store was opened read-only; {operation} is not allowed")]
    ReadOnly {
        /// The backend's name.
        backend: &'static str,
        /// The refused operation.
        operation: &'static str,
    },
}

/// `Result` with [`NetabaseError`].
pub type Result<T, E = NetabaseError> = std::result::Result<T, E>;

impl NetabaseError {
    /// Wraps an engine error with the backend name and the operation.
    pub fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxedError>,
    ) -> Self {
        NetabaseError::Backend {
            backend,
            operation,
            source: source.into(),
        }
    }

    /// A decode error for the record of `table` at `key`.
    pub fn decode(table: &str, key: &[u8], reason: impl std::fmt::Display) -> Self {
        NetabaseError::Decode {
            table: table.to_owned(),
            key: hex(key),
            reason: reason.to_string(),
        }
    }

    /// A key decode error for `key` in `table`.
    pub fn key_decode(table: &str, key: &[u8], source: KeyDecodeError) -> Self {
        NetabaseError::KeyDecode {
            table: table.to_owned(),
            key: hex(key),
            source,
        }
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
