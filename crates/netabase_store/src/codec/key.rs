//! Order-preserving key encoding.
//!
//! Every key that reaches a backend is encoded so that comparing the encoded bytes
//! (lexicographically, as every backend does) gives the same answer as comparing the
//! values with their natural order. This is a permanent on-disk contract: the byte
//! layout of each type below is pinned by `tests/key_vectors.rs` and must never change
//! silently.
//!
//! | type | encoding |
//! |---|---|
//! | `u8`..`u128`, `usize` | big-endian, fixed width (`usize` as `u64`) |
//! | `i8`..`i128`, `isize` | big-endian with the sign bit flipped (`isize` as `i64`) |
//! | `bool` | `00` / `01` |
//! | `char` | its scalar value as a big-endian `u32` |
//! | `f32`, `f64` | IEEE-754 total order: positive values get the sign bit set, negative values have every bit flipped |
//! | `String`, `Vec<u8>` | bytes with `00` escaped as `00 FF`, terminated by `00 01` |
//! | `[u8; N]` | the raw bytes (fixed width) |
//! | `Option<T>` | `00` for `None`, `01 ++ enc(T)` for `Some` |
//! | tuples | the encodings of the elements, concatenated |
//! | `()` | nothing |
//!
//! Each encoding is self-delimiting: no encoded value of a type is a proper prefix of
//! another value of the same type, so concatenation (tuples, index entries that are
//! `enc(secondary) ++ enc(primary)`) keeps the order of the first element and can be
//! split again when decoding.

use thiserror::Error;

/// Why a byte string is not a valid key encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyDecodeError {
    /// The input ended before the value was complete.
    #[error("key ended early: {needed} more byte(s) needed to decode a {ty}")]
    UnexpectedEnd {
        /// The type being decoded.
        ty: &'static str,
        /// How many more bytes were needed at least.
        needed: usize,
    },
    /// A byte that the encoding of this type never produces.
    #[error("invalid key byte 0x{byte:02x} while decoding a {ty}")]
    InvalidByte {
        /// The type being decoded.
        ty: &'static str,
        /// The offending byte.
        byte: u8,
    },
    /// The bytes decode to something that is not a value of the type.
    #[error("invalid {ty} in key: {reason}")]
    InvalidValue {
        /// The type being decoded.
        ty: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key decoded completely but bytes were left over.
    #[error("{extra} trailing byte(s) after the key")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
}

/// A type that can be used as a key (primary or secondary) of a model.
///
/// The encoding must be order-preserving (`a < b` exactly when `enc(a) < enc(b)`
/// byte-wise) and self-delimiting (no encoding is a proper prefix of another). The
/// implementations in this crate satisfy both and are checked by property tests; a
/// hand-written implementation for a newtype should delegate to its field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a netabase key",
    label = "this type has no order-preserving key encoding",
    note = "key types are: integers, bool, char, String, Vec<u8>, [u8; N], f32/f64, Option<T> and tuples of these"
)]
pub trait KeyCodec: Sized {
    /// Appends the order-preserving encoding of `self` to `out`.
    fn encode_key(&self, out: &mut Vec<u8>);

    /// Decodes one value from the front of `input` and advances `input` past it.
    ///
    /// # Errors
    /// [`KeyDecodeError`] if the bytes are not a valid encoding of `Self`.
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError>;

    /// The encoding of `self` as a new vector.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.encode_key(&mut out);
        out
    }

    /// Decodes a value that must fill `bytes` exactly.
    ///
    /// # Errors
    /// [`KeyDecodeError`] if the bytes are not a valid encoding, or if bytes are left over.
    fn from_key_bytes(mut bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let value = Self::decode_key(&mut bytes)?;
        if bytes.is_empty() {
            Ok(value)
        } else {
            Err(KeyDecodeError::TrailingBytes { extra: bytes.len() })
        }
    }
}

/// Marker for key types that may be primary keys: they must have a total order and an
/// equality that agrees with their encoding, which excludes floating-point numbers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a netabase primary key",
    note = "primary keys need a total order: integers, bool, char, String, Vec<u8>, [u8; N], Option<T> and tuples of these (floats are allowed as secondary keys only)"
)]
pub trait PrimaryKeyCodec: KeyCodec + Eq + Ord {}

fn take<'a>(input: &mut &'a [u8], n: usize, ty: &'static str) -> Result<&'a [u8], KeyDecodeError> {
    if input.len() < n {
        return Err(KeyDecodeError::UnexpectedEnd {
            ty,
            needed: n - input.len(),
        });
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(
    input: &mut &[u8],
    ty: &'static str,
) -> Result<[u8; N], KeyDecodeError> {
    let bytes = take(input, N, ty)?;
    let mut array = [0u8; N];
    array.copy_from_slice(bytes);
    Ok(array)
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl KeyCodec for $t {
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            #[inline]
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
                Ok(<$t>::from_be_bytes(take_array(input, stringify!($t))?))
            }
        }
        impl PrimaryKeyCodec for $t {}
    )*};
}
unsigned_key!(u8, u16, u32, u64, u128);

macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl KeyCodec for $t {
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit maps MIN..=MAX onto 0..=unsigned MAX in order.
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
            #[inline]
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
                let raw = <$u>::from_be_bytes(take_array(input, stringify!($t))?);
                Ok((raw ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
        impl PrimaryKeyCodec for $t {}
    )*};
}
signed_key!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl KeyCodec for usize {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (*self as u64).encode_key(out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        usize::try_from(u64::decode_key(input)?).map_err(|_| KeyDecodeError::InvalidValue {
            ty: "usize",
            reason: "value does not fit this platform's usize",
        })
    }
}
impl PrimaryKeyCodec for usize {}

impl KeyCodec for isize {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (*self as i64).encode_key(out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        isize::try_from(i64::decode_key(input)?).map_err(|_| KeyDecodeError::InvalidValue {
            ty: "isize",
            reason: "value does not fit this platform's isize",
        })
    }
}
impl PrimaryKeyCodec for isize {}

impl KeyCodec for bool {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        match take(input, 1, "bool")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(KeyDecodeError::InvalidByte { ty: "bool", byte }),
        }
    }
}
impl PrimaryKeyCodec for bool {}

impl KeyCodec for char {
    fn encode_key(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode_key(out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        char::from_u32(u32::decode_key(input)?).ok_or(KeyDecodeError::InvalidValue {
            ty: "char",
            reason: "not a Unicode scalar value",
        })
    }
}
impl PrimaryKeyCodec for char {}

impl KeyCodec for f64 {
    fn encode_key(&self, out: &mut Vec<u8>) {
        let bits = self.to_bits();
        // IEEE-754 total order (as `f64::total_cmp`): set the sign bit of positive values,
        // flip every bit of negative ones.
        let ordered = if bits >> 63 == 0 {
            bits | (1 << 63)
        } else {
            !bits
        };
        out.extend_from_slice(&ordered.to_be_bytes());
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        let ordered = u64::from_be_bytes(take_array(input, "f64")?);
        let bits = if ordered >> 63 == 1 {
            ordered & !(1 << 63)
        } else {
            !ordered
        };
        Ok(f64::from_bits(bits))
    }
}

impl KeyCodec for f32 {
    fn encode_key(&self, out: &mut Vec<u8>) {
        let bits = self.to_bits();
        let ordered = if bits >> 31 == 0 {
            bits | (1 << 31)
        } else {
            !bits
        };
        out.extend_from_slice(&ordered.to_be_bytes());
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        let ordered = u32::from_be_bytes(take_array(input, "f32")?);
        let bits = if ordered >> 31 == 1 {
            ordered & !(1 << 31)
        } else {
            !ordered
        };
        Ok(f32::from_bits(bits))
    }
}

/// Appends `bytes` escaped (`00` becomes `00 FF`) and terminated by `00 01`.
///
/// The terminator sorts below any escaped `00 FF`, so a string sorts before every
/// string it is a prefix of ("a" < "a\0" < "ab").
pub(crate) fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    let mut rest = bytes;
    while let Some(pos) = rest.iter().position(|&b| b == 0) {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(&[0x00, 0xFF]);
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[0x00, 0x01]);
}

fn decode_escaped(input: &mut &[u8], ty: &'static str) -> Result<Vec<u8>, KeyDecodeError> {
    let mut out = Vec::with_capacity(input.len().min(64));
    let mut i = 0;
    let bytes = *input;
    loop {
        let Some(pos) = bytes[i..].iter().position(|&b| b == 0) else {
            return Err(KeyDecodeError::UnexpectedEnd { ty, needed: 2 });
        };
        out.extend_from_slice(&bytes[i..i + pos]);
        let marker = i + pos + 1;
        match bytes.get(marker) {
            Some(0xFF) => {
                out.push(0);
                i = marker + 1;
            }
            Some(0x01) => {
                *input = &bytes[marker + 1..];
                return Ok(out);
            }
            Some(&byte) => return Err(KeyDecodeError::InvalidByte { ty, byte }),
            None => return Err(KeyDecodeError::UnexpectedEnd { ty, needed: 1 }),
        }
    }
}

impl KeyCodec for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_escaped(self, out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        decode_escaped(input, "Vec<u8>")
    }
}
impl PrimaryKeyCodec for Vec<u8> {}

impl KeyCodec for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_escaped(self.as_bytes(), out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        String::from_utf8(decode_escaped(input, "String")?).map_err(|_| {
            KeyDecodeError::InvalidValue {
                ty: "String",
                reason: "not valid UTF-8",
            }
        })
    }
}
impl PrimaryKeyCodec for String {}

impl<const N: usize> KeyCodec for [u8; N] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        take_array(input, "[u8; N]")
    }
}
impl<const N: usize> PrimaryKeyCodec for [u8; N] {}

impl<T: KeyCodec> KeyCodec for Option<T> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode_key(out);
            }
        }
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        match take(input, 1, "Option")?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::decode_key(input)?)),
            byte => Err(KeyDecodeError::InvalidByte { ty: "Option", byte }),
        }
    }
}
impl<T: PrimaryKeyCodec> PrimaryKeyCodec for Option<T> {}

impl KeyCodec for () {
    fn encode_key(&self, _out: &mut Vec<u8>) {}
    fn decode_key(_input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        Ok(())
    }
}
impl PrimaryKeyCodec for () {}

macro_rules! tuple_key {
    ($($name:ident)+) => {
        impl<$($name: KeyCodec),+> KeyCodec for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode_key(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode_key(out);)+
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
                Ok(($($name::decode_key(input)?,)+))
            }
        }
        impl<$($name: PrimaryKeyCodec),+> PrimaryKeyCodec for ($($name,)+) {}
    };
}
tuple_key!(A);
tuple_key!(A B);
tuple_key!(A B C);
tuple_key!(A B C D);
tuple_key!(A B C D E);
tuple_key!(A B C D E F);
tuple_key!(A B C D E F G);
tuple_key!(A B C D E F G H);

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when there is none (the prefix is empty or all `FF`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.last_mut() {
        if *last == 0xFF {
            out.pop();
        } else {
            *last += 1;
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_increments_the_last_non_ff_byte() {
        assert_eq!(prefix_successor(&[1, 2, 3]), Some(vec![1, 2, 4]));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(&[]), None);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(matches!(
            u64::from_key_bytes(&[1, 2]),
            Err(KeyDecodeError::UnexpectedEnd { .. })
        ));
        assert!(String::from_key_bytes(b"abc").is_err());
        assert!(String::from_key_bytes(&[b'a', 0]).is_err());
        assert!(String::from_key_bytes(&[b'a', 0, 7]).is_err());
        assert!(bool::from_key_bytes(&[2]).is_err());
        assert!(char::from_key_bytes(&[0, 0, 0xD8, 0]).is_err());
        assert!(Option::<u8>::from_key_bytes(&[9]).is_err());
        assert!(matches!(
            u8::from_key_bytes(&[1, 2]),
            Err(KeyDecodeError::TrailingBytes { extra: 1 })
        ));
    }
}
