//! Values at rest: compression and encryption of the values of model tables, as a
//! backend that wraps another ([`Transformed`]).
//!
//! It sits between the typed layer and the engine and knows bytes, tables and keys
//! only. Every value written to a model's primary table (`<Definition>/<Model>`: one
//! `/`, not under `__netabase/`) is sealed as the [`Transforms`] say for that table; every
//! value read from one is opened again, whatever transform it was written with, so a
//! store can change its settings and still read every record it holds. Index tables
//! and netabase's own tables are left as they are: their keys must keep their order.
//!
//! ```text
//! plain value      01 | model version (2) | postcard            (codec::value)
//! sealed value     02 | flags | [nonce (24)] | payload
//!   flags          bits 0-1: compression (0 none, 1 LZ4, 2 zstd); bit 7: encrypted
//!   payload        AEAD(compress(plain value)), or either step alone
//! ```
//!
//! Compression keeps a value as it is when compressing would not make it smaller (the
//! flags say so). Encryption is XChaCha20-Poly1305 with a random 192-bit nonce per
//! write, and the table name, the key and the flags as associated data: a value copied
//! to another key or table, or with its flags changed, fails authentication. The key
//! is given by the application at every open and never stored; the store keeps an
//! encrypted check value in `__netabase/meta` (`transform/key-check`) so that a wrong
//! key is refused at open instead of at the first read.
//!
//! **What encryption does not hide.** Keys stay plaintext, so that order and range
//! queries work: an attacker with the file reads every primary key, every secondary
//! key value (the index tables hold them in their keys), the number of records of each
//! model, the size of every value (to within the compression), the table names (so the
//! model and field names), the schema descriptor and shapes in `__netabase/meta`, and
//! whatever the engine's file layout says about when and in what order writes happened.
//! Values (the non-key fields) are confidential and authenticated; a record cannot be
//! altered, swapped with another or moved to another key without the read failing.
//! Deleting records or rolling the whole file back to an older copy is not detected.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::error::{NetabaseError, Result, TransformProblem};

use super::{
    Backend, Capabilities, Cursor, Direction, EntryFn, FirstFn, OldFn, OwnedReadTxn, RawCursor,
    RawRange, ReadTxn, ValueFn, WriteOp, WriteTxn,
};

/// The first byte of a sealed value (a plain value starts with the value format, 1).
pub const SEALED_FORMAT: u8 = 2;

const FLAG_LZ4: u8 = 1;
const FLAG_ZSTD: u8 = 2;
const COMPRESSION_MASK: u8 = 0b11;
const FLAG_ENCRYPTED: u8 = 0x80;
const NONCE_LEN: usize = 24;
/// The largest value a sealed value may decompress to (a guard against a damaged
/// length, not a limit on values, which are far smaller in practice).
#[cfg_attr(not(any(feature = "lz4", feature = "zstd")), allow(dead_code))]
const MAX_PLAIN: usize = 1 << 30;
const KEY_CHECK: &[u8] = b"transform/key-check";
const KEY_CHECK_PLAIN: &[u8] = b"netabase key check v1";
const META: &str = crate::typed::meta::META_TABLE;

/// A value compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// LZ4 (feature `lz4`): fast, modest ratio.
    Lz4,
    /// zstd at a level from 1 (fast) to 22 (small) (feature `zstd`).
    Zstd(i32),
}

/// What is done to the values of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueTransform {
    /// The compressor, if any.
    pub compression: Option<Compression>,
    /// Whether values are encrypted (needs a key, [`Transforms::key`]).
    pub encrypt: bool,
}

impl ValueTransform {
    /// Values stored as they are.
    pub const PLAIN: ValueTransform = ValueTransform {
        compression: None,
        encrypt: false,
    };
}

/// The 256-bit key of XChaCha20-Poly1305, zeroed in memory when dropped. Its `Debug`
/// shows nothing of it.
#[derive(Clone)]
pub struct EncryptionKey(Box<[u8; 32]>);

impl EncryptionKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        EncryptionKey(Box::new(bytes))
    }

    /// A key from 32 bytes, or from 64 hexadecimal digits (surrounding white space is
    /// ignored): the forms of a key file.
    ///
    /// # Errors
    /// [`NetabaseError::Config`] when `bytes` is neither.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map(str::trim)
            .unwrap_or_default();
        let mut key = [0u8; 32];
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0);
            }
        } else if bytes.len() == 32 {
            key.copy_from_slice(bytes);
        } else {
            return Err(NetabaseError::config(
                "transform",
                "encryption key",
                format!(
                    "a key is 32 bytes or 64 hexadecimal digits; {} bytes were given",
                    bytes.len()
                ),
            ));
        }
        Ok(EncryptionKey::new(key))
    }
}

impl Drop for EncryptionKey {
    fn drop(&mut self) {
        #[cfg(feature = "encryption")]
        zeroize::Zeroize::zeroize(&mut *self.0);
        #[cfg(not(feature = "encryption"))]
        {
            *self.0 = [0; 32];
        }
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

/// What a [`Transformed`] backend does to values: a transform for every model table,
/// others for some, and the key.
///
/// # Examples
/// ```
/// use netabase_store::backend::transform::{Compression, EncryptionKey, Transforms, ValueTransform};
///
/// let transforms = Transforms::new()
///     .compression(Compression::Lz4)
///     .encryption(EncryptionKey::new([7; 32]))
///     // One model stays readable without the key.
///     .model("AppDefinition/Public", ValueTransform::PLAIN);
/// assert!(transforms.transform_of("AppDefinition/Note").encrypt);
/// assert!(!transforms.transform_of("AppDefinition/Public").encrypt);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Transforms {
    default: ValueTransform,
    models: Vec<(String, ValueTransform)>,
    key: Option<EncryptionKey>,
}

impl Transforms {
    /// Values stored as they are, and no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compresses the values of every model.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.default.compression = Some(compression);
        self
    }

    /// Encrypts the values of every model with `key`.
    pub fn encryption(mut self, key: EncryptionKey) -> Self {
        self.default.encrypt = true;
        self.key = Some(key);
        self
    }

    /// Gives the key without encrypting new values (to read a store whose values
    /// were encrypted, or encrypt only some models with [`Transforms::model`]).
    pub fn key(mut self, key: EncryptionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The transform of the model whose primary table is `table`
    /// (`"<Definition>/<Model>"`, [`crate::schema::ModelInfo::table`]), instead of the
    /// store's.
    pub fn model(mut self, table: impl Into<String>, transform: ValueTransform) -> Self {
        let table = table.into();
        self.models.retain(|(t, _)| *t != table);
        self.models.push((table, transform));
        self
    }

    /// The transform new values of `table` are written with.
    pub fn transform_of(&self, table: &str) -> ValueTransform {
        self.models
            .iter()
            .find(|(t, _)| t == table)
            .map_or(self.default, |(_, t)| *t)
    }

    /// Whether a key is given.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Checks that every transform can be carried out by this build.
    fn check(&self) -> Result<()> {
        for t in std::iter::once(&self.default).chain(self.models.iter().map(|(_, t)| t)) {
            if t.encrypt && self.key.is_none() {
                return Err(NetabaseError::config(
                    "transform",
                    "encryption",
                    "a model is encrypted but no key is given",
                ));
            }
            if t.encrypt && !cfg!(feature = "encryption") {
                return Err(NetabaseError::config(
                    "transform",
                    "encryption",
                    "this build has no encryption (feature `encryption`)",
                ));
            }
            match t.compression {
                Some(Compression::Lz4) if !cfg!(feature = "lz4") => {
                    return Err(NetabaseError::config(
                        "transform",
                        "compression",
                        "this build has no LZ4 (feature `lz4`)",
                    ));
                }
                Some(Compression::Zstd(_)) if !cfg!(feature = "zstd") => {
                    return Err(NetabaseError::config(
                        "transform",
                        "compression",
                        "this build has no zstd (feature `zstd`)",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Seals `plain`, the value at `key` of `table`.
    fn seal(&self, table: &str, key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let t = match sync_model_of(table) {
            // A model's sync table is encrypted when its values are, never compressed
            // (hashes do not compress).
            Some(model) => ValueTransform {
                compression: None,
                ..self.transform_of(model)
            },
            None => self.transform_of(table),
        };
        if t == ValueTransform::PLAIN {
            return Ok(plain.to_vec());
        }
        let mut flags = 0u8;
        let compressed = match t.compression {
            Some(c) => compress(c, plain).filter(|c| c.len() < plain.len()),
            None => None,
        };
        if compressed.is_some() {
            flags |= match t.compression {
                Some(Compression::Lz4) => FLAG_LZ4,
                _ => FLAG_ZSTD,
            };
        }
        let body: &[u8] = compressed.as_deref().unwrap_or(plain);
        let mut out = Vec::with_capacity(2 + NONCE_LEN + body.len() + 16);
        if t.encrypt {
            flags |= FLAG_ENCRYPTED;
            out.extend_from_slice(&[SEALED_FORMAT, flags]);
            let key_bytes = self.key.as_ref().ok_or_else(|| {
                NetabaseError::config("transform", "encryption", "no key is given")
            })?;
            encrypt(key_bytes, &aad(table, key, flags), body, &mut out)
                .map_err(|reason| NetabaseError::config("transform", "encryption", reason))?;
        } else {
            out.extend_from_slice(&[SEALED_FORMAT, flags]);
            out.extend_from_slice(body);
        }
        Ok(out)
    }

    /// Opens `stored`, the value at `key` of a sync table. Its plain values have no
    /// header of their own (a database written before sync tables were sealed, or a
    /// model whose values are not encrypted), so a value is taken as sealed only when
    /// it authenticates under the store's key, which the store checked at open; any
    /// other value is lent as it is.
    fn open_sync<'v>(&self, table: &str, key: &[u8], stored: &'v [u8]) -> Cow<'v, [u8]> {
        match (stored, &self.key) {
            ([SEALED_FORMAT, FLAG_ENCRYPTED, body @ ..], Some(k)) => {
                match decrypt(k, &aad(table, key, FLAG_ENCRYPTED), body) {
                    Ok(plain) => Cow::Owned(plain),
                    Err(_) => Cow::Borrowed(stored),
                }
            }
            _ => Cow::Borrowed(stored),
        }
    }

    /// Opens `stored`, the value at `key` of `table`: plain values are lent as they
    /// are.
    fn open<'v>(&self, table: &str, key: &[u8], stored: &'v [u8]) -> Result<Cow<'v, [u8]>> {
        if sync_model_of(table).is_some() {
            return Ok(self.open_sync(table, key, stored));
        }
        if stored.first() != Some(&SEALED_FORMAT) || stored.len() < 2 {
            return Ok(Cow::Borrowed(stored));
        }
        let fail = |problem| NetabaseError::transform(table, key, problem);
        let flags = stored[1];
        if flags & !(COMPRESSION_MASK | FLAG_ENCRYPTED) != 0 {
            return Err(fail(TransformProblem::Unknown(flags)));
        }
        let mut body = Cow::Borrowed(&stored[2..]);
        if flags & FLAG_ENCRYPTED != 0 {
            let Some(k) = &self.key else {
                return Err(fail(TransformProblem::KeyRequired));
            };
            body = Cow::Owned(decrypt(k, &aad(table, key, flags), &stored[2..]).map_err(&fail)?);
        }
        match flags & COMPRESSION_MASK {
            0 => Ok(body),
            FLAG_LZ4 => decompress(Compression::Lz4, &body)
                .map(Cow::Owned)
                .map_err(|e| fail(TransformProblem::Decompress(e))),
            FLAG_ZSTD => decompress(Compression::Zstd(0), &body)
                .map(Cow::Owned)
                .map_err(|e| fail(TransformProblem::Decompress(e))),
            other => Err(fail(TransformProblem::Unknown(other))),
        }
    }
}

/// Whether values of `table` are sealed: a model's primary table.
pub fn is_model_table(table: &str) -> bool {
    !table.starts_with("__") && table.bytes().filter(|b| *b == b'/').count() == 1
}

/// The primary table of the model whose sync table (`__netabase/sync/<table>`) is
/// `table`, if it is one: its version stamps and record hashes are encrypted when the
/// model's values are.
fn sync_model_of(table: &str) -> Option<&str> {
    table
        .strip_prefix("__netabase/sync/")
        .filter(|model| is_model_table(model))
}

/// Whether the transform layer seals (or may have sealed) values of `table`: a
/// model's primary table, or its sync table.
fn is_sealed_table(table: &str) -> bool {
    is_model_table(table) || sync_model_of(table).is_some()
}

/// The associated data of a value: the table, the key and the flags, each delimited.
fn aad(table: &str, key: &[u8], flags: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + table.len() + key.len());
    out.extend_from_slice(b"netabase value v1");
    out.extend_from_slice(&(table.len() as u64).to_be_bytes());
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(&(key.len() as u64).to_be_bytes());
    out.extend_from_slice(key);
    out.push(flags);
    out
}

#[cfg(feature = "encryption")]
fn encrypt(
    key: &EncryptionKey,
    aad: &[u8],
    body: &[u8],
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| format!("no random nonce: {e}"))?;
    let cipher = XChaCha20Poly1305::new((&*key.0).into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: body, aad })
        .map_err(|_| "the value could not be encrypted".to_owned())?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(())
}

#[cfg(not(feature = "encryption"))]
fn encrypt(
    _: &EncryptionKey,
    _: &[u8],
    _: &[u8],
    _: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    Err("this build has no encryption (feature `encryption`)".into())
}

#[cfg(feature = "encryption")]
fn decrypt(
    key: &EncryptionKey,
    aad: &[u8],
    body: &[u8],
) -> std::result::Result<Vec<u8>, TransformProblem> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    if body.len() < NONCE_LEN {
        return Err(TransformProblem::Authentication);
    }
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    XChaCha20Poly1305::new((&*key.0).into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .map_err(|_| TransformProblem::Authentication)
}

#[cfg(not(feature = "encryption"))]
fn decrypt(
    _: &EncryptionKey,
    _: &[u8],
    _: &[u8],
) -> std::result::Result<Vec<u8>, TransformProblem> {
    Err(TransformProblem::Decompress(
        "this build has no encryption (feature `encryption`)".into(),
    ))
}

/// The compressed form of `plain` with its length in front, or `None` when this
/// build lacks the compressor (refused earlier by [`Transforms::check`]).
fn compress(c: Compression, plain: &[u8]) -> Option<Vec<u8>> {
    match c {
        #[cfg(feature = "lz4")]
        Compression::Lz4 => Some(lz4_flex::compress_prepend_size(plain)),
        #[cfg(feature = "zstd")]
        Compression::Zstd(level) => {
            let mut out = (plain.len() as u64).to_be_bytes().to_vec();
            out.extend(zstd_contexts::compress(plain, level)?);
            Some(out)
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = plain;
            None
        }
    }
}

fn decompress(c: Compression, body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    match c {
        #[cfg(feature = "lz4")]
        Compression::Lz4 => {
            let size = body
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
                .ok_or("no length")?;
            if size as usize > MAX_PLAIN {
                return Err(format!("a length of {size} bytes"));
            }
            lz4_flex::decompress_size_prepended(body).map_err(|e| e.to_string())
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd(_) => {
            let size = body
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or("no length")?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_PLAIN)
                .ok_or_else(|| format!("a length of {size} bytes"))?;
            let out = zstd_contexts::decompress(&body[8..], size)?;
            if out.len() == size {
                Ok(out)
            } else {
                Err(format!("{} bytes where {size} were recorded", out.len()))
            }
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = body;
            Err("this build lacks the compressor (features `lz4`, `zstd`)".into())
        }
    }
}

/// zstd contexts kept per thread: making one costs more than compressing a small
/// value, so each thread reuses its own.
#[cfg(feature = "zstd")]
mod zstd_contexts {
    use std::cell::RefCell;

    thread_local! {
        static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { RefCell::new(None) };
        static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { RefCell::new(None) };
    }

    /// `plain` compressed at `level`, or `None` when zstd fails.
    pub(super) fn compress(plain: &[u8], level: i32) -> Option<Vec<u8>> {
        COMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
            }
            slot.as_mut()?.1.compress(plain).ok()
        })
    }

    /// `body` decompressed into at most `size` bytes.
    pub(super) fn decompress(body: &[u8], size: usize) -> Result<Vec<u8>, String> {
        DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
            }
            match slot.as_mut() {
                Some(d) => d.decompress(body, size).map_err(|e| e.to_string()),
                None => Err("no zstd context".into()),
            }
        })
    }
}

/// Progress of a key rotation ([`Transformed::rotate_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation<'a> {
    /// The table being rewritten.
    pub table: &'a str,
    /// Values rewritten so far in it.
    pub done: u64,
    /// Values in it.
    pub total: u64,
}

/// A backend whose model values are compressed and/or encrypted at rest (see the
/// module documentation for the format and the threat model).
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
/// # #[cfg(feature = "encryption")] {
/// use netabase_store::backend::memory::MemoryBackend;
/// use netabase_store::backend::transform::{EncryptionKey, Transformed, Transforms};
///
/// let key = EncryptionKey::new([42; 32]); // from the application's secret store
/// let backend = Transformed::new(MemoryBackend::new(), Transforms::new().encryption(key))?;
/// let store = NetabaseStore::<AppDefinition, _>::from_backend(backend)?;
/// store.open_tree::<Note>().put(Note { id: 1, text: "secret".into() })?;
/// assert_eq!(store.open_tree::<Note>().get(1)?.map(|n| n.text), Some("secret".into()));
/// # }
/// # Ok::<(), netabase_store::NetabaseError>(())
/// ```
pub struct Transformed<B> {
    inner: B,
    transforms: RwLock<Arc<Transforms>>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for Transformed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Transformed<B> {
    /// Wraps `inner`. With a key, checks it against the store's key check (written on
    /// the first open with a key, when the backend is writable).
    ///
    /// # Errors
    /// [`NetabaseError::Config`] when a transform needs a feature this build lacks or
    /// a key that is not given; [`NetabaseError::Transform`] with
    /// [`TransformProblem::WrongKey`] when the key is not the store's.
    pub fn new(inner: B, transforms: Transforms) -> Result<Self> {
        transforms.check()?;
        let backend = Transformed {
            inner,
            transforms: RwLock::new(Arc::new(transforms)),
        };
        backend.check_key()?;
        Ok(backend)
    }

    /// The wrapped backend, for its own settings and extras.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Whether the database holds values encrypted with a key (it has a key check).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn is_encrypted(inner: &B) -> Result<bool> {
        Ok(inner.begin_read()?.get(META, KEY_CHECK)?.is_some())
    }

    fn current(&self) -> Arc<Transforms> {
        let guard: RwLockReadGuard<'_, Arc<Transforms>> = match self.transforms.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(&guard)
    }

    /// Checks the key against the stored check value, writing one when there is none.
    fn check_key(&self) -> Result<()> {
        let t = self.current();
        let Some(key) = &t.key else {
            return Ok(());
        };
        let stored = self.inner.begin_read()?.get(META, KEY_CHECK)?;
        match stored {
            Some(sealed) => {
                let flags = sealed.get(1).copied().unwrap_or(0);
                match decrypt(
                    key,
                    &aad(META, KEY_CHECK, flags),
                    sealed.get(2..).unwrap_or(&[]),
                ) {
                    Ok(plain) if plain == KEY_CHECK_PLAIN => Ok(()),
                    _ => Err(NetabaseError::transform(
                        META,
                        KEY_CHECK,
                        TransformProblem::WrongKey,
                    )),
                }
            }
            None => {
                let txn = match self.inner.begin_write() {
                    Ok(txn) => txn,
                    // A read-only store keeps no check; reads then fail per record.
                    Err(NetabaseError::ReadOnly(_)) => return Ok(()),
                    Err(e) => return Err(e),
                };
                txn.put(META, KEY_CHECK, &key_check(key)?)?;
                txn.commit()
            }
        }
    }

    /// Re-encrypts every encrypted value of every model table (and of its sync table)
    /// under `new`, keeping its compression, in one write transaction: either every value is rewritten or none
    /// is. Plain values stay as they are. `progress` is called every 1,024 values and at
    /// the end of each table. From then on the store is opened with `new` only. Returns
    /// the number of values rewritten.
    ///
    /// The plaintexts do not change, so no index changes: only the sealed bytes are
    /// rewritten.
    ///
    /// # Errors
    /// [`NetabaseError::Config`] when no current key is given;
    /// [`NetabaseError::Transform`] when a value does not open with the current key
    /// (nothing is rewritten); [`NetabaseError::Backend`] on engine failure.
    pub fn rotate_key(
        &self,
        new: EncryptionKey,
        mut progress: impl FnMut(Rotation<'_>),
    ) -> Result<u64> {
        let mut lock = match self.transforms.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let old = Arc::clone(&lock);
        let Some(old_key) = old.key.as_ref() else {
            return Err(NetabaseError::config(
                "transform",
                "encryption",
                "rotating the key needs the current key",
            ));
        };
        let txn = self.inner.begin_write()?;
        let mut rewritten = 0u64;
        for table in txn
            .table_names()?
            .into_iter()
            .filter(|t| is_sealed_table(t))
        {
            let total = txn.len(&table)?;
            let mut done = 0u64;
            let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut failure = None;
            txn.for_each_in(&table, RawRange::all(), Direction::Forward, &mut |k, v| {
                match reencrypt(old_key, &new, &table, k, v) {
                    Ok(Some(sealed)) => batch.push((k.to_vec(), sealed)),
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(e);
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            for chunk in batch.chunks(1024) {
                let ops: Vec<WriteOp<'_>> = chunk
                    .iter()
                    .map(|(k, v)| WriteOp::Put {
                        table: &table,
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect();
                txn.apply(&ops)?;
                done += chunk.len() as u64;
                progress(Rotation {
                    table: &table,
                    done,
                    total,
                });
            }
            rewritten += done;
        }
        txn.put(META, KEY_CHECK, &key_check(&new)?)?;
        txn.commit()?;
        let mut next = (*old).clone();
        next.key = Some(new);
        *lock = Arc::new(next);
        Ok(rewritten)
    }
}

/// The value `stored` at `key` of `table` encrypted under `new` instead of `old`, with
/// the same compression; `None` when it is not encrypted.
fn reencrypt(
    old: &EncryptionKey,
    new: &EncryptionKey,
    table: &str,
    key: &[u8],
    stored: &[u8],
) -> Result<Option<Vec<u8>>> {
    if sync_model_of(table).is_some() {
        // A sync table's plain values have no header: a value is sealed only if it
        // authenticates under the current key (checked at open).
        let [SEALED_FORMAT, FLAG_ENCRYPTED, body @ ..] = stored else {
            return Ok(None);
        };
        let aad = aad(table, key, FLAG_ENCRYPTED);
        let Ok(plain) = decrypt(old, &aad, body) else {
            return Ok(None);
        };
        let mut out = vec![SEALED_FORMAT, FLAG_ENCRYPTED];
        encrypt(new, &aad, &plain, &mut out)
            .map_err(|reason| NetabaseError::config("transform", "encryption", reason))?;
        return Ok(Some(out));
    }
    let flags = match stored {
        [SEALED_FORMAT, flags, ..] if flags & FLAG_ENCRYPTED != 0 => *flags,
        _ => return Ok(None),
    };
    let aad = aad(table, key, flags);
    let body =
        decrypt(old, &aad, &stored[2..]).map_err(|p| NetabaseError::transform(table, key, p))?;
    let mut out = vec![SEALED_FORMAT, flags];
    encrypt(new, &aad, &body, &mut out)
        .map_err(|reason| NetabaseError::config("transform", "encryption", reason))?;
    Ok(Some(out))
}

fn key_check(key: &EncryptionKey) -> Result<Vec<u8>> {
    let mut out = vec![SEALED_FORMAT, FLAG_ENCRYPTED];
    encrypt(
        key,
        &aad(META, KEY_CHECK, FLAG_ENCRYPTED),
        KEY_CHECK_PLAIN,
        &mut out,
    )
    .map_err(|reason| NetabaseError::config("transform", "encryption", reason))?;
    Ok(out)
}

impl<B: Backend> Backend for Transformed<B> {
    type Read = Sealed<B::Read>;
    type Write<'a> = Sealed<B::Write<'a>>;

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn begin_read(&self) -> Result<Self::Read> {
        let transforms = self.current();
        Ok(Sealed {
            txn: self.inner.begin_read()?,
            transforms,
        })
    }

    fn begin_write(&self) -> Result<Self::Write<'_>> {
        let txn = self.inner.begin_write()?;
        Ok(Sealed {
            txn,
            transforms: self.current(),
        })
    }
}

/// A transaction of a [`Transformed`] backend: the engine's, with the transforms it
/// began with.
pub struct Sealed<T> {
    txn: T,
    transforms: Arc<Transforms>,
}

/// A cursor that opens each value of a model table.
struct OpenCursor<'a> {
    inner: Cursor<'a>,
    table: String,
    transforms: Arc<Transforms>,
    value: Vec<u8>,
}

impl RawCursor for OpenCursor<'_> {
    fn next_entry(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        let (key, stored) = match self.inner.next_entry()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        match self.transforms.open(&self.table, key, stored) {
            Ok(Cow::Borrowed(_)) => {
                self.value.clear();
                self.value.extend_from_slice(stored);
            }
            Ok(Cow::Owned(plain)) => self.value = plain,
            Err(e) => return Some(Err(e)),
        }
        Some(Ok((key, &self.value)))
    }
}

impl<T: ReadTxn> Sealed<T> {
    fn wrap<'a>(&self, table: &str, cursor: Cursor<'a>) -> Cursor<'a> {
        if !is_sealed_table(table) {
            return cursor;
        }
        Box::new(OpenCursor {
            inner: cursor,
            table: table.to_owned(),
            transforms: Arc::clone(&self.transforms),
            value: Vec::new(),
        })
    }
}

impl<T: ReadTxn> ReadTxn for Sealed<T> {
    fn get_with(&self, table: &str, key: &[u8], f: &mut ValueFn<'_>) -> Result<()> {
        if !is_sealed_table(table) {
            return self.txn.get_with(table, key, f);
        }
        self.txn.get_with(table, key, &mut |value| match value {
            None => f(None),
            Some(stored) => f(Some(&self.transforms.open(table, key, stored)?)),
        })
    }

    fn cursor(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'_>> {
        Ok(self.wrap(table, self.txn.cursor(table, range, direction)?))
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.txn.len(table)
    }

    fn table_names(&self) -> Result<Vec<String>> {
        self.txn.table_names()
    }

    fn for_each_in(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        f: &mut EntryFn<'_>,
    ) -> Result<()> {
        if !is_sealed_table(table) {
            return self.txn.for_each_in(table, range, direction, f);
        }
        self.txn
            .for_each_in(table, range, direction, &mut |key, stored| {
                f(key, &self.transforms.open(table, key, stored)?)
            })
    }

    fn first_each(
        &self,
        table: &str,
        ranges: Vec<RawRange>,
        direction: Direction,
        f: &mut FirstFn<'_>,
    ) -> Result<()> {
        if !is_sealed_table(table) {
            return self.txn.first_each(table, ranges, direction, f);
        }
        self.txn
            .first_each(table, ranges, direction, &mut |i, found| match found {
                None => f(i, None),
                Some((k, stored)) => f(i, Some((k, &self.transforms.open(table, k, stored)?))),
            })
    }
}

impl<T: OwnedReadTxn> OwnedReadTxn for Sealed<T> {
    fn scan(&self, table: &str, range: RawRange, direction: Direction) -> Result<Cursor<'static>> {
        Ok(self.wrap(table, self.txn.scan(table, range, direction)?))
    }
}

impl<T: WriteTxn> WriteTxn for Sealed<T> {
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        if !is_sealed_table(table) {
            return self.txn.put(table, key, value);
        }
        self.txn
            .put(table, key, &self.transforms.seal(table, key, value)?)
    }

    fn delete(&self, table: &str, key: &[u8]) -> Result<bool> {
        self.txn.delete(table, key)
    }

    fn clear(&self, table: &str) -> Result<()> {
        self.txn.clear(table)
    }

    fn commit(self) -> Result<()> {
        self.txn.commit()
    }

    fn put_each(&self, table: &str, entries: &[(&[u8], &[u8])], old: &mut OldFn<'_>) -> Result<()> {
        if !is_sealed_table(table) {
            return self.txn.put_each(table, entries, old);
        }
        let sealed = entries
            .iter()
            .map(|(k, v)| self.transforms.seal(table, k, v))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(&[u8], &[u8])> = entries
            .iter()
            .zip(&sealed)
            .map(|((k, _), v)| (*k, v.as_slice()))
            .collect();
        self.txn
            .put_each(table, &pairs, &mut |i, replaced| match replaced {
                None => old(i, None),
                Some(stored) => old(i, Some(&self.transforms.open(table, pairs[i].0, stored)?)),
            })
    }

    fn delete_each(&self, table: &str, keys: &[&[u8]], old: &mut OldFn<'_>) -> Result<()> {
        if !is_sealed_table(table) {
            return self.txn.delete_each(table, keys, old);
        }
        self.txn
            .delete_each(table, keys, &mut |i, removed| match removed {
                None => old(i, None),
                Some(stored) => old(i, Some(&self.transforms.open(table, keys[i], stored)?)),
            })
    }

    fn apply(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        if !ops.iter().any(|op| is_sealed_table(op.table())) {
            return self.txn.apply(ops);
        }
        let sealed = ops
            .iter()
            .map(|op| match op {
                WriteOp::Put { table, key, value } if is_sealed_table(table) => Ok(WriteOp::Put {
                    table,
                    key: key.clone(),
                    value: self.transforms.seal(table, key, value)?,
                }),
                other => Ok(other.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        self.txn.apply(&sealed)
    }
}
