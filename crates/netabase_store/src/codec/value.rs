//! Value encoding: a three-byte header, then the model serialized with postcard.
//!
//! ```text
//! byte 0      format version (currently 1)
//! bytes 1..3  model version, big-endian u16 (`#[netabase(Def, version = N)]`, default 0)
//! bytes 3..   postcard(model)
//! ```
//!
//! The header lets a reader refuse bytes from a newer format with a clear error instead
//! of misreading them. The model version is read back on every decode
//! ([`decode_model`]): a value of the current version decodes directly, a newer one is
//! refused with [`NetabaseError::Version`], and an older one goes through the model's
//! one upgrade hook, [`NetabaseModelTrait::decode_older`].

use serde::Serialize;

use crate::error::{DecodeReason, NetabaseError, Result, VersionError, VersionProblem};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

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
    postcard::to_extend(value, out).map_err(|source| NetabaseError::encode(model, source))
}

/// Decodes a stored value of model `M` at the encoded primary key `key`, reading the
/// model version in its header back: the current version decodes directly, an older one
/// through [`NetabaseModelTrait::decode_older`], a newer one is refused.
///
/// # Errors
/// [`NetabaseError::Decode`] naming the model's table and the key when the header or the
/// body does not decode; [`NetabaseError::Version`] when the version is newer than the
/// code's, or older with no upgrade.
#[inline]
pub fn decode_model<D, M>(key: &[u8], bytes: &[u8]) -> Result<M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let info = &M::INFO;
    let (version, body) = split_header(info.table, key, bytes)?;
    if version == info.version {
        return postcard::from_bytes(body).map_err(|e| NetabaseError::decode(info.table, key, e));
    }
    let problem = if version > info.version {
        VersionProblem::Newer
    } else {
        match M::decode_older(version, body) {
            Some(Ok(model)) => return Ok(model),
            Some(Err(e)) => return Err(NetabaseError::decode(info.table, key, e)),
            None => VersionProblem::NoUpgrade,
        }
    };
    Err(NetabaseError::Version(Box::new(VersionError {
        model: info.name,
        table: info.table,
        key: key.to_vec(),
        found: version,
        known: info.version,
        problem,
    })))
}

/// Checks the header and returns the model version and the body.
///
/// # Errors
/// [`NetabaseError::Decode`] when the bytes are too short or of an unknown format.
#[inline]
pub fn split_header<'a>(table: &str, key: &[u8], bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
    if bytes.len() < HEADER_LEN {
        return Err(NetabaseError::decode(
            table,
            key,
            DecodeReason::TooShort {
                len: bytes.len(),
                header: HEADER_LEN,
            },
        ));
    }
    if bytes[0] == crate::backend::transform::SEALED_FORMAT {
        return Err(NetabaseError::transform(
            table,
            key,
            crate::error::TransformProblem::NotOpened,
        ));
    }
    if bytes[0] != VALUE_FORMAT_VERSION {
        return Err(NetabaseError::decode(
            table,
            key,
            DecodeReason::UnknownFormat {
                found: bytes[0],
                supported: VALUE_FORMAT_VERSION,
            },
        ));
    }
    Ok((
        u16::from_be_bytes([bytes[1], bytes[2]]),
        &bytes[HEADER_LEN..],
    ))
}
