//! Value encoding: a three-byte header, then the model serialized with postcard.
//!
//! ```text
//! byte 0      format version (currently 1)
//! bytes 1..3  model version, big-endian u16 (`#[netabase(Def, version = N)]`, default 0)
//! bytes 3..   postcard(model)
//! ```
//!
//! The header lets a reader refuse bytes from a newer format with a clear error instead
//! of misreading them, and lets a future migration know which version of a model it holds.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{NetabaseError, Result};

/// The value format this build writes and reads.
pub const VALUE_FORMAT_VERSION: u8 = 1;

/// Length of the header in front of every stored value.
pub const HEADER_LEN: usize = 3;

/// Encodes `value` with its header into a new vector.
///
/// # Errors
/// [`NetabaseError::Encode`] if postcard cannot serialize the value.
pub fn encode_value<T: Serialize>(model: &'static str, version: u16, value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(VALUE_FORMAT_VERSION);
    out.extend_from_slice(&version.to_be_bytes());
    postcard::to_extend(value, out).map_err(|source| NetabaseError::Encode { model, source })
}

/// Decodes a stored value of `table` at `key` (both only for the error message).
///
/// # Errors
/// [`NetabaseError::Decode`] naming the table and key when the header is missing or of an
/// unknown format, or when postcard cannot read the body.
pub fn decode_value<T: DeserializeOwned>(table: &str, key: &[u8], bytes: &[u8]) -> Result<T> {
    let (model_version, body) = split_header(table, key, bytes)?;
    let _ = model_version;
    postcard::from_bytes(body).map_err(|e| NetabaseError::decode(table, key, e))
}

/// Checks the header and returns the model version and the body.
///
/// # Errors
/// [`NetabaseError::Decode`] when the bytes are too short or of an unknown format.
pub fn split_header<'a>(table: &str, key: &[u8], bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
    if bytes.len() < HEADER_LEN {
        return Err(NetabaseError::decode(
            table,
            key,
            format_args!(
                "value is {} byte(s), shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != VALUE_FORMAT_VERSION {
        return Err(NetabaseError::decode(
            table,
            key,
            format_args!(
                "value format version {} is not supported (this build reads version {VALUE_FORMAT_VERSION})",
                bytes[0]
            ),
        ));
    }
    Ok((
        u16::from_be_bytes([bytes[1], bytes[2]]),
        &bytes[HEADER_LEN..],
    ))
}
