//! Values without their Rust types: decoding and encoding postcard from a described
//! shape, for tools (the `netabase` command line) that read and write a database
//! without the program that defined its models.
//!
//! postcard is not self-describing: a stored value is its fields one after the other,
//! with no names and no type tags. What makes it readable is the shape the macros
//! record for every model ([`crate::schema::ModelShape`]): each field's Rust type as
//! written, which [`TypeShape::parse`] turns into the wire layout. The types a shape
//! can describe are those models are made of: integers, floats, `bool`, `char`,
//! `String`, `Vec<T>` (`Vec<u8>` included), `Option<T>`, `Box<T>`, tuples, arrays,
//! maps (`HashMap`, `BTreeMap`) and sets, and the structs and enums declared in the
//! definition module ([`NamedType`]), which the stored shape describes member by
//! member. Anything else (a type declared elsewhere, a type alias, a generic type) is
//! refused with a message naming the type, never guessed at.

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::key::KeyCodec;

/// The wire layout of one Rust type, as postcard writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeShape {
    /// `()`: nothing on the wire.
    Unit,
    /// `bool`: one byte.
    Bool,
    /// `u8`: one byte.
    U8,
    /// `u16`: a varint.
    U16,
    /// `u32`: a varint.
    U32,
    /// `u64`: a varint.
    U64,
    /// `u128`: a varint.
    U128,
    /// `usize`: a varint.
    Usize,
    /// `i8`: one byte.
    I8,
    /// `i16`: a zigzag varint.
    I16,
    /// `i32`: a zigzag varint.
    I32,
    /// `i64`: a zigzag varint.
    I64,
    /// `i128`: a zigzag varint.
    I128,
    /// `isize`: a zigzag varint.
    Isize,
    /// `f32`: four bytes, little-endian.
    F32,
    /// `f64`: eight bytes, little-endian.
    F64,
    /// `char`: its UTF-8 bytes with a length.
    Char,
    /// `String`: a length, then UTF-8 bytes.
    Text,
    /// `Option<T>`: a tag byte, then the value when it is `Some`.
    Option(Box<TypeShape>),
    /// `Vec<T>`: a length, then each element.
    Seq(Box<TypeShape>),
    /// `[T; N]`: N elements, no length.
    Array(Box<TypeShape>, usize),
    /// A tuple: each element in order.
    Tuple(Vec<TypeShape>),
    /// A map (`HashMap<K, V>`, `BTreeMap<K, V>`): a length, then each key and value.
    Map(Box<TypeShape>, Box<TypeShape>),
    /// A struct or an enum declared in the definition module, described by the stored
    /// shape.
    Named(Arc<NamedType>),
}

/// A struct or an enum of the definition module, by name; its description is set once
/// every type of the shape is known, so types may refer to each other (and to
/// themselves).
pub struct NamedType {
    name: String,
    def: OnceLock<TypeDef>,
}

impl NamedType {
    /// A type named `name`, not described yet.
    pub fn new(name: impl Into<String>) -> Arc<NamedType> {
        Arc::new(NamedType {
            name: name.into(),
            def: OnceLock::new(),
        })
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the description (the first one set stays).
    pub fn define(&self, def: TypeDef) {
        let _ = self.def.set(def);
    }

    /// The description, once set.
    pub fn def(&self) -> Option<&TypeDef> {
        self.def.get()
    }

    fn described(&self) -> Result<&TypeDef, ShapeMismatch> {
        match self.def.get() {
            Some(TypeDef::Undescribed(why)) => Err(mismatch(format!(
                "the type `{}` is not described: {why}",
                self.name
            ))),
            Some(def) => Ok(def),
            None => Err(mismatch(format!(
                "the type `{}` has no description",
                self.name
            ))),
        }
    }
}

impl fmt::Debug for NamedType {
    // The name only: a type may contain itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamedType({})", self.name)
    }
}

impl PartialEq for NamedType {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for NamedType {}

/// What a struct or an enum of the definition module is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeDef {
    /// A struct: its fields.
    Struct(Fields),
    /// An enum: its variants in declaration order (postcard writes the position).
    Enum(Vec<(String, Fields)>),
    /// A type whose serialization the shape cannot describe, and why (a `#[serde(..)]`
    /// attribute, generic parameters, a member of an undescribed type).
    Undescribed(String),
}

/// The fields of a struct or of an enum variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// No fields (`struct Marker;`, `Status::Active`): nothing on the wire.
    Unit,
    /// One unnamed field (`struct Meters(f64)`, `Status::Moved(String)`): the field as
    /// it is.
    Newtype(TypeShape),
    /// Several unnamed fields: each in order.
    Tuple(Vec<TypeShape>),
    /// Named fields: each in declaration order.
    Named(Vec<(String, TypeShape)>),
}

/// How deep types of the definition module may nest in one value: a bound on the
/// recursion a damaged value of a recursive type could cause.
const MAX_DEPTH: usize = 128;

/// A value decoded without its Rust type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `()`.
    Unit,
    /// A `bool`.
    Bool(bool),
    /// A non-negative integer of any width.
    UInt(u128),
    /// A negative integer of any width (non-negative ones may come as [`Value::UInt`]).
    Int(i128),
    /// A float.
    Float(f64),
    /// A `char`.
    Char(char),
    /// A `String`.
    Text(String),
    /// `None`.
    None,
    /// `Some(value)`.
    Some(Box<Value>),
    /// A `Vec`, an array or a tuple.
    Seq(Vec<Value>),
    /// A model or a struct with named fields: its fields in declaration order.
    Record(Vec<(String, Value)>),
    /// A map: its entries in stored order.
    Map(Vec<(Value, Value)>),
    /// A variant of an enum: its name and its fields ([`Value::Unit`] for a unit
    /// variant, the value of a newtype variant, a [`Value::Seq`] for a tuple variant, a
    /// [`Value::Record`] for a struct variant).
    Variant(String, Box<Value>),
}

/// Why a value could not be decoded or encoded from a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch(pub String);

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeMismatch {}

fn mismatch(text: impl Into<String>) -> ShapeMismatch {
    ShapeMismatch(text.into())
}

impl TypeShape {
    /// Parses a Rust type as written in a model (`"Vec<u8>"`, `"Option<(u32,String)>"`,
    /// `"std::string::String"`).
    ///
    /// # Errors
    /// A message naming the type when it is not one a shape can describe.
    pub fn parse(ty: &str) -> Result<TypeShape, ShapeMismatch> {
        Self::parse_with(ty, &|_| None)
    }

    /// [`TypeShape::parse`], where `resolve` names the shape of a type the stored shape
    /// declares (a struct or an enum of the definition module).
    ///
    /// # Errors
    /// A message naming the type when it is not one a shape can describe.
    pub fn parse_with(ty: &str, resolve: &Resolve<'_>) -> Result<TypeShape, ShapeMismatch> {
        let compact: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
        let mut rest = compact.as_str();
        let shape = parse_type(&mut rest, resolve)
            .map_err(|e| mismatch(format!("the type `{compact}` cannot be described: {}", e.0)))?;
        if !rest.is_empty() {
            return Err(mismatch(format!(
                "the type `{compact}` cannot be described: unexpected `{rest}`"
            )));
        }
        Ok(shape)
    }

    /// Decodes one value of this shape from the front of `input`, advancing it.
    ///
    /// # Errors
    /// When the bytes are not a postcard value of this shape.
    pub fn decode(&self, input: &mut &[u8]) -> Result<Value, ShapeMismatch> {
        self.decode_at(input, 0)
    }

    fn decode_at(&self, input: &mut &[u8], depth: usize) -> Result<Value, ShapeMismatch> {
        Ok(match self {
            TypeShape::Unit => Value::Unit,
            TypeShape::Bool => Value::Bool(take(input)?),
            TypeShape::U8 => Value::UInt(take::<u8>(input)?.into()),
            TypeShape::U16 => Value::UInt(take::<u16>(input)?.into()),
            TypeShape::U32 => Value::UInt(take::<u32>(input)?.into()),
            TypeShape::U64 | TypeShape::Usize => Value::UInt(take::<u64>(input)?.into()),
            TypeShape::U128 => Value::UInt(take::<u128>(input)?),
            TypeShape::I8 => int(take::<i8>(input)?.into()),
            TypeShape::I16 => int(take::<i16>(input)?.into()),
            TypeShape::I32 => int(take::<i32>(input)?.into()),
            TypeShape::I64 | TypeShape::Isize => int(take::<i64>(input)?.into()),
            TypeShape::I128 => int(take::<i128>(input)?),
            TypeShape::F32 => Value::Float(take::<f32>(input)?.into()),
            TypeShape::F64 => Value::Float(take(input)?),
            TypeShape::Char => Value::Char(take(input)?),
            TypeShape::Text => Value::Text(take(input)?),
            TypeShape::Option(inner) => match take::<u8>(input)? {
                0 => Value::None,
                1 => Value::Some(Box::new(inner.decode_at(input, depth)?)),
                tag => return Err(mismatch(format!("an option tag is {tag}, not 0 or 1"))),
            },
            TypeShape::Seq(inner) => {
                let len = take::<u64>(input)?;
                // Every element takes at least... nothing (a `Vec<()>`), so bound the
                // allocation by what is left rather than trusting the length.
                let mut items =
                    Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(input.len()));
                for _ in 0..len {
                    items.push(inner.decode_at(input, depth)?);
                }
                Value::Seq(items)
            }
            TypeShape::Array(inner, n) => Value::Seq(
                (0..*n)
                    .map(|_| inner.decode_at(input, depth))
                    .collect::<Result<_, _>>()?,
            ),
            TypeShape::Tuple(items) => Value::Seq(
                items
                    .iter()
                    .map(|t| t.decode_at(input, depth))
                    .collect::<Result<_, _>>()?,
            ),
            TypeShape::Map(k, v) => {
                let len = take::<u64>(input)?;
                let mut entries =
                    Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(input.len()));
                for _ in 0..len {
                    let key = k.decode_at(input, depth)?;
                    entries.push((key, v.decode_at(input, depth)?));
                }
                Value::Map(entries)
            }
            TypeShape::Named(named) => {
                if depth >= MAX_DEPTH {
                    return Err(mismatch(format!(
                        "`{}` nests more than {MAX_DEPTH} levels deep",
                        named.name
                    )));
                }
                match named.described()? {
                    TypeDef::Struct(fields) => fields.decode(input, depth + 1)?,
                    TypeDef::Enum(variants) => {
                        let index = take::<u32>(input)?;
                        let (name, fields) = usize::try_from(index)
                            .ok()
                            .and_then(|i| variants.get(i))
                            .ok_or_else(|| {
                                mismatch(format!(
                                    "`{}` has {} variants, and the value is variant {index}",
                                    named.name,
                                    variants.len()
                                ))
                            })?;
                        Value::Variant(name.clone(), Box::new(fields.decode(input, depth + 1)?))
                    }
                    TypeDef::Undescribed(_) => unreachable_undescribed()?,
                }
            }
        })
    }

    /// Appends the postcard encoding of `value` as this shape.
    ///
    /// # Errors
    /// When `value` is not of this shape (a string for an integer, a number out of
    /// range, a tuple of the wrong length).
    pub fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), ShapeMismatch> {
        match (self, value) {
            (TypeShape::Unit, Value::Unit | Value::None) => Ok(()),
            (TypeShape::Bool, Value::Bool(b)) => put(out, b),
            (TypeShape::U8, _) => put(out, &uint::<u8>(value, "u8")?),
            (TypeShape::U16, _) => put(out, &uint::<u16>(value, "u16")?),
            (TypeShape::U32, _) => put(out, &uint::<u32>(value, "u32")?),
            (TypeShape::U64 | TypeShape::Usize, _) => put(out, &uint::<u64>(value, "u64")?),
            (TypeShape::U128, _) => put(out, &uint::<u128>(value, "u128")?),
            (TypeShape::I8, _) => put(out, &sint::<i8>(value, "i8")?),
            (TypeShape::I16, _) => put(out, &sint::<i16>(value, "i16")?),
            (TypeShape::I32, _) => put(out, &sint::<i32>(value, "i32")?),
            (TypeShape::I64 | TypeShape::Isize, _) => put(out, &sint::<i64>(value, "i64")?),
            (TypeShape::I128, _) => put(out, &sint::<i128>(value, "i128")?),
            #[allow(clippy::cast_possible_truncation)]
            (TypeShape::F32, _) => put(out, &(float(value)? as f32)),
            (TypeShape::F64, _) => put(out, &float(value)?),
            (TypeShape::Char, Value::Char(c)) => put(out, c),
            (TypeShape::Char, Value::Text(s)) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => put(out, &c),
                    _ => Err(mismatch(format!("expected one character, found {s:?}"))),
                }
            }
            (TypeShape::Text, Value::Text(s)) => put(out, s),
            (TypeShape::Option(_), Value::None | Value::Unit) => put(out, &0u8),
            (TypeShape::Option(inner), Value::Some(v)) => {
                put(out, &1u8)?;
                inner.encode(v, out)
            }
            // A bare value where an option is expected (JSON has no `Some`).
            (TypeShape::Option(inner), v) => {
                put(out, &1u8)?;
                inner.encode(v, out)
            }
            (TypeShape::Seq(inner), Value::Seq(items)) => {
                put(out, &(items.len() as u64))?;
                items.iter().try_for_each(|v| inner.encode(v, out))
            }
            (TypeShape::Array(inner, n), Value::Seq(items)) if items.len() == *n => {
                items.iter().try_for_each(|v| inner.encode(v, out))
            }
            (TypeShape::Tuple(types), Value::Seq(items)) if items.len() == types.len() => types
                .iter()
                .zip(items)
                .try_for_each(|(t, v)| t.encode(v, out)),
            (TypeShape::Map(k, v), Value::Map(entries)) => {
                put(out, &(entries.len() as u64))?;
                entries.iter().try_for_each(|(key, value)| {
                    k.encode(key, out)?;
                    v.encode(value, out)
                })
            }
            (TypeShape::Named(named), value) => match named.described()? {
                TypeDef::Struct(fields) => fields.encode(value, out),
                TypeDef::Enum(variants) => {
                    let (name, inner) = match value {
                        Value::Variant(name, inner) => (name.as_str(), &**inner),
                        // A unit variant may come as its bare name.
                        Value::Text(name) => (name.as_str(), &Value::Unit),
                        other => {
                            return Err(mismatch(format!(
                                "expected a variant of `{}`, found {}",
                                named.name,
                                other.kind()
                            )));
                        }
                    };
                    let (index, (_, fields)) = variants
                        .iter()
                        .enumerate()
                        .find(|(_, (n, _))| n == name)
                        .ok_or_else(|| {
                            mismatch(format!("`{}` has no variant `{name}`", named.name))
                        })?;
                    put(out, &u32::try_from(index).unwrap_or(u32::MAX))?;
                    fields
                        .encode(inner, out)
                        .map_err(|e| mismatch(format!("variant `{name}`: {}", e.0)))
                }
                TypeDef::Undescribed(_) => unreachable_undescribed(),
            },
            (shape, value) => Err(mismatch(format!(
                "expected {}, found {}",
                shape.describe(),
                value.kind()
            ))),
        }
    }

    /// Appends the order-preserving key encoding of `value` as this shape: the bytes a
    /// primary or secondary key of this type has in its table
    /// ([`crate::codec::key::KeyCodec`]).
    ///
    /// # Errors
    /// When `value` is not of this shape, or the type cannot be a key.
    pub fn encode_key(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), ShapeMismatch> {
        match (self, value) {
            (TypeShape::Unit, _) => Ok(()),
            (TypeShape::Bool, Value::Bool(b)) => {
                b.encode_key(out);
                Ok(())
            }
            (TypeShape::U8, _) => key(out, uint::<u8>(value, "u8")?),
            (TypeShape::U16, _) => key(out, uint::<u16>(value, "u16")?),
            (TypeShape::U32, _) => key(out, uint::<u32>(value, "u32")?),
            (TypeShape::U64, _) => key(out, uint::<u64>(value, "u64")?),
            (TypeShape::Usize, _) => key(
                out,
                usize::try_from(uint::<u64>(value, "usize")?)
                    .map_err(|_| mismatch("a usize out of range"))?,
            ),
            (TypeShape::U128, _) => key(out, uint::<u128>(value, "u128")?),
            (TypeShape::I8, _) => key(out, sint::<i8>(value, "i8")?),
            (TypeShape::I16, _) => key(out, sint::<i16>(value, "i16")?),
            (TypeShape::I32, _) => key(out, sint::<i32>(value, "i32")?),
            (TypeShape::I64, _) => key(out, sint::<i64>(value, "i64")?),
            (TypeShape::Isize, _) => key(
                out,
                isize::try_from(sint::<i64>(value, "isize")?)
                    .map_err(|_| mismatch("an isize out of range"))?,
            ),
            (TypeShape::I128, _) => key(out, sint::<i128>(value, "i128")?),
            #[allow(clippy::cast_possible_truncation)]
            (TypeShape::F32, _) => key(out, float(value)? as f32),
            (TypeShape::F64, _) => key(out, float(value)?),
            (TypeShape::Char, Value::Char(c)) => key(out, *c),
            (TypeShape::Text, Value::Text(s)) => {
                s.encode_key(out);
                Ok(())
            }
            (TypeShape::Seq(inner), Value::Seq(items)) if **inner == TypeShape::U8 => {
                let bytes = items
                    .iter()
                    .map(|v| uint::<u8>(v, "u8"))
                    .collect::<Result<Vec<u8>, _>>()?;
                key(out, bytes)
            }
            (TypeShape::Array(inner, n), Value::Seq(items))
                if **inner == TypeShape::U8 && items.len() == *n =>
            {
                // `[u8; N]` keys are their bytes as they are.
                for v in items {
                    out.push(uint::<u8>(v, "u8")?);
                }
                Ok(())
            }
            (TypeShape::Option(_), Value::None) => {
                out.push(0);
                Ok(())
            }
            (TypeShape::Option(inner), v) => {
                out.push(1);
                let v = match v {
                    Value::Some(v) => v,
                    v => v,
                };
                inner.encode_key(v, out)
            }
            (TypeShape::Tuple(types), Value::Seq(items)) if items.len() == types.len() => types
                .iter()
                .zip(items)
                .try_for_each(|(t, v)| t.encode_key(v, out)),
            (shape, value) => Err(mismatch(format!(
                "expected a key of {}, found {}",
                shape.describe(),
                value.kind()
            ))),
        }
    }

    /// Checks that every type this shape reaches is described: a struct or an enum of
    /// the definition module that the stored shape marks undescribed is reported by
    /// name (before any value is decoded).
    ///
    /// # Errors
    /// The first undescribed type, and why.
    pub fn check_described(&self) -> Result<(), ShapeMismatch> {
        self.check_in(&mut Vec::new())
    }

    fn check_in(&self, seen: &mut Vec<String>) -> Result<(), ShapeMismatch> {
        match self {
            TypeShape::Option(inner) | TypeShape::Seq(inner) | TypeShape::Array(inner, _) => {
                inner.check_in(seen)
            }
            TypeShape::Tuple(items) => items.iter().try_for_each(|t| t.check_in(seen)),
            TypeShape::Map(k, v) => {
                k.check_in(seen)?;
                v.check_in(seen)
            }
            TypeShape::Named(named) => {
                if seen.iter().any(|n| *n == named.name) {
                    return Ok(());
                }
                seen.push(named.name.clone());
                let fields: Vec<&Fields> = match named.described()? {
                    TypeDef::Struct(fields) => vec![fields],
                    TypeDef::Enum(variants) => variants.iter().map(|(_, f)| f).collect(),
                    TypeDef::Undescribed(_) => return unreachable_undescribed(),
                };
                fields.into_iter().try_for_each(|f| match f {
                    Fields::Unit => Ok(()),
                    Fields::Newtype(t) => t.check_in(seen),
                    Fields::Tuple(types) => types.iter().try_for_each(|t| t.check_in(seen)),
                    Fields::Named(members) => {
                        members.iter().try_for_each(|(_, t)| t.check_in(seen))
                    }
                })
            }
            _ => Ok(()),
        }
    }

    /// Decodes the order-preserving key encoding `bytes` of a scalar key (integers,
    /// `bool`, `char`, `String`), for messages; `None` for other shapes or bytes that
    /// do not decode.
    pub fn decode_key(&self, bytes: &[u8]) -> Option<Value> {
        fn d<K: KeyCodec>(bytes: &[u8]) -> Option<K> {
            K::from_key_bytes(bytes).ok()
        }
        Some(match self {
            TypeShape::Bool => Value::Bool(d(bytes)?),
            TypeShape::U8 => Value::UInt(d::<u8>(bytes)?.into()),
            TypeShape::U16 => Value::UInt(d::<u16>(bytes)?.into()),
            TypeShape::U32 => Value::UInt(d::<u32>(bytes)?.into()),
            TypeShape::U64 => Value::UInt(d::<u64>(bytes)?.into()),
            TypeShape::U128 => Value::UInt(d::<u128>(bytes)?),
            TypeShape::I8 => int(d::<i8>(bytes)?.into()),
            TypeShape::I16 => int(d::<i16>(bytes)?.into()),
            TypeShape::I32 => int(d::<i32>(bytes)?.into()),
            TypeShape::I64 => int(d::<i64>(bytes)?.into()),
            TypeShape::I128 => int(d::<i128>(bytes)?),
            TypeShape::Char => Value::Char(d(bytes)?),
            TypeShape::Text => Value::Text(d(bytes)?),
            _ => return None,
        })
    }

    /// A short description for messages (`"a u32"`, `"a list"`).
    pub fn describe(&self) -> String {
        match self {
            TypeShape::Unit => "()".into(),
            TypeShape::Bool => "a bool".into(),
            TypeShape::U8 => "a u8".into(),
            TypeShape::U16 => "a u16".into(),
            TypeShape::U32 => "a u32".into(),
            TypeShape::U64 => "a u64".into(),
            TypeShape::U128 => "a u128".into(),
            TypeShape::Usize => "a usize".into(),
            TypeShape::I8 => "an i8".into(),
            TypeShape::I16 => "an i16".into(),
            TypeShape::I32 => "an i32".into(),
            TypeShape::I64 => "an i64".into(),
            TypeShape::I128 => "an i128".into(),
            TypeShape::Isize => "an isize".into(),
            TypeShape::F32 => "an f32".into(),
            TypeShape::F64 => "an f64".into(),
            TypeShape::Char => "a char".into(),
            TypeShape::Text => "a string".into(),
            TypeShape::Option(inner) => format!("{} or null", inner.describe()),
            TypeShape::Seq(_) => "a list".into(),
            TypeShape::Array(_, n) => format!("a list of {n}"),
            TypeShape::Tuple(items) => format!("a list of {}", items.len()),
            TypeShape::Map(..) => "a map".into(),
            TypeShape::Named(named) => match named.def() {
                Some(TypeDef::Enum(_)) => format!("a variant of `{}`", named.name),
                _ => format!("a `{}`", named.name),
            },
        }
    }
}

/// Names the shape of a type the stored shape declares, for [`TypeShape::parse_with`].
pub type Resolve<'r> = dyn Fn(&str) -> Option<TypeShape> + 'r;

// `described()` has refused undescribed types already.
fn unreachable_undescribed<T>() -> Result<T, ShapeMismatch> {
    Err(mismatch("the type is not described"))
}

impl Fields {
    fn decode(&self, input: &mut &[u8], depth: usize) -> Result<Value, ShapeMismatch> {
        Ok(match self {
            Fields::Unit => Value::Unit,
            Fields::Newtype(t) => t.decode_at(input, depth)?,
            Fields::Tuple(types) => Value::Seq(
                types
                    .iter()
                    .map(|t| t.decode_at(input, depth))
                    .collect::<Result<_, _>>()?,
            ),
            Fields::Named(fields) => Value::Record(
                fields
                    .iter()
                    .map(|(name, t)| {
                        t.decode_at(input, depth)
                            .map(|v| (name.clone(), v))
                            .map_err(|e| mismatch(format!("member `{name}`: {}", e.0)))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), ShapeMismatch> {
        match (self, value) {
            (Fields::Unit, Value::Unit | Value::None) => Ok(()),
            (Fields::Newtype(t), v) => t.encode(v, out),
            (Fields::Tuple(types), Value::Seq(items)) if items.len() == types.len() => types
                .iter()
                .zip(items)
                .try_for_each(|(t, v)| t.encode(v, out)),
            (Fields::Named(fields), Value::Record(_)) => {
                fields
                    .iter()
                    .try_for_each(|(name, t)| match value.field(name) {
                        Some(v) => t
                            .encode(v, out)
                            .map_err(|e| mismatch(format!("member `{name}`: {}", e.0))),
                        None if matches!(t, TypeShape::Option(_)) => put(out, &0u8),
                        None => Err(mismatch(format!("the member `{name}` is missing"))),
                    })
            }
            (fields, value) => Err(mismatch(format!(
                "expected {}, found {}",
                match fields {
                    Fields::Unit => "nothing".to_owned(),
                    Fields::Newtype(t) => t.describe(),
                    Fields::Tuple(types) => format!("a list of {}", types.len()),
                    Fields::Named(_) => "an object".to_owned(),
                },
                value.kind()
            ))),
        }
    }
}

impl Value {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Unit => "()",
            Value::Bool(_) => "a bool",
            Value::UInt(_) | Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Char(_) => "a char",
            Value::Text(_) => "a string",
            Value::None => "null",
            Value::Some(_) => "an option",
            Value::Seq(_) => "a list",
            Value::Record(_) => "a record",
            Value::Map(_) => "a map",
            Value::Variant(..) => "an enum variant",
        }
    }

    /// The order of two values as the Rust types they came from order them (numbers
    /// by value, strings by bytes, `None` before `Some`, lists element by element);
    /// `None` when they do not compare (a NaN, values of different kinds).
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::UInt(a), Value::UInt(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            // A `UInt` beyond i128 is above every `Int`.
            (Value::Int(a), Value::UInt(b)) => {
                Some(i128::try_from(*b).map_or(Ordering::Less, |b| a.cmp(&b)))
            }
            (Value::UInt(a), Value::Int(b)) => {
                Some(i128::try_from(*a).map_or(Ordering::Greater, |a| a.cmp(b)))
            }
            (Value::Float(a), b) => a.partial_cmp(&float(b).ok()?),
            (a, Value::Float(b)) => float(a).ok()?.partial_cmp(b),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Char(a), Value::Char(b)) => Some(a.cmp(b)),
            // A one-character string where a `char` is meant (JSON has no chars).
            (Value::Char(a), Value::Text(b)) => single_char(b).map(|b| a.cmp(&b)),
            (Value::Text(a), Value::Char(b)) => single_char(a).map(|a| a.cmp(b)),
            (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
            (Value::Unit, Value::Unit) | (Value::None, Value::None) => Some(Ordering::Equal),
            (Value::None, Value::Some(_)) => Some(Ordering::Less),
            (Value::Some(_), Value::None) => Some(Ordering::Greater),
            (Value::Some(a), Value::Some(b)) => a.compare(b),
            (Value::Seq(a), Value::Seq(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.compare(y)? {
                        Ordering::Equal => {}
                        other => return Some(other),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    }

    /// The length a `len` or `non_empty` rule checks: bytes of a string, elements of a
    /// list or a map, 0 for `None`. `None` when the value has no length.
    pub fn rule_len(&self) -> Option<usize> {
        match self {
            Value::Text(s) => Some(s.len()),
            Value::Seq(items) => Some(items.len()),
            Value::Map(entries) => Some(entries.len()),
            Value::None => Some(0),
            Value::Some(v) => v.rule_len(),
            _ => None,
        }
    }

    /// The value as Rust's `Debug` shows the type it came from (`7`, `"text"`,
    /// `Some(1.5)`), for messages.
    pub fn show(&self) -> String {
        match self {
            Value::Unit => "()".into(),
            Value::Bool(b) => b.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Char(c) => format!("{c:?}"),
            Value::Text(s) => format!("{s:?}"),
            Value::None => "None".into(),
            Value::Some(v) => format!("Some({})", v.show()),
            Value::Seq(items) => format!(
                "[{}]",
                items.iter().map(Value::show).collect::<Vec<_>>().join(", ")
            ),
            Value::Record(fields) => format!(
                "{{ {} }}",
                fields
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.show()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.show(), v.show()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Variant(name, inner) => match &**inner {
                Value::Unit => name.clone(),
                inner => format!("{name}({})", inner.show()),
            },
        }
    }

    /// The field `name` of a record.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn int(v: i128) -> Value {
    match u128::try_from(v) {
        Ok(u) => Value::UInt(u),
        Err(_) => Value::Int(v),
    }
}

fn take<T: DeserializeOwned>(input: &mut &[u8]) -> Result<T, ShapeMismatch> {
    let (value, rest) = postcard::take_from_bytes::<T>(input)
        .map_err(|e| mismatch(format!("{e} at {} bytes from the end", input.len())))?;
    *input = rest;
    Ok(value)
}

fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), ShapeMismatch> {
    let taken = std::mem::take(out);
    *out = postcard::to_extend(value, taken).map_err(|e| mismatch(e.to_string()))?;
    Ok(())
}

fn key<K: KeyCodec>(out: &mut Vec<u8>, value: K) -> Result<(), ShapeMismatch> {
    value.encode_key(out);
    Ok(())
}

fn uint<T: TryFrom<u128>>(value: &Value, ty: &str) -> Result<T, ShapeMismatch> {
    let wide = match value {
        Value::UInt(u) => *u,
        Value::Int(i) => u128::try_from(*i).map_err(|_| mismatch(format!("{i} is not a {ty}")))?,
        other => return Err(mismatch(format!("expected a {ty}, found {}", other.kind()))),
    };
    T::try_from(wide).map_err(|_| mismatch(format!("{wide} does not fit in a {ty}")))
}

fn sint<T: TryFrom<i128>>(value: &Value, ty: &str) -> Result<T, ShapeMismatch> {
    let wide = match value {
        Value::Int(i) => *i,
        Value::UInt(u) => {
            i128::try_from(*u).map_err(|_| mismatch(format!("{u} does not fit in an {ty}")))?
        }
        other => {
            return Err(mismatch(format!(
                "expected an {ty}, found {}",
                other.kind()
            )));
        }
    };
    T::try_from(wide).map_err(|_| mismatch(format!("{wide} does not fit in an {ty}")))
}

#[allow(clippy::cast_precision_loss)]
fn float(value: &Value) -> Result<f64, ShapeMismatch> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::UInt(u) => Ok(*u as f64),
        Value::Int(i) => Ok(*i as f64),
        other => Err(mismatch(format!(
            "expected a number, found {}",
            other.kind()
        ))),
    }
}

/// One type from the front of `rest`.
fn parse_type(rest: &mut &str, resolve: &Resolve<'_>) -> Result<TypeShape, ShapeMismatch> {
    if let Some(after) = rest.strip_prefix('(') {
        *rest = after;
        let mut items = Vec::new();
        loop {
            if let Some(after) = rest.strip_prefix(')') {
                *rest = after;
                break;
            }
            items.push(parse_type(rest, resolve)?);
            if let Some(after) = rest.strip_prefix(',') {
                *rest = after;
            } else if !rest.starts_with(')') {
                return Err(mismatch("a tuple is not closed"));
            }
        }
        return Ok(if items.is_empty() {
            TypeShape::Unit
        } else {
            TypeShape::Tuple(items)
        });
    }
    if let Some(after) = rest.strip_prefix('[') {
        *rest = after;
        let inner = parse_type(rest, resolve)?;
        let after = rest
            .strip_prefix(';')
            .ok_or_else(|| mismatch("a slice has no fixed length"))?;
        let end = after
            .find(']')
            .ok_or_else(|| mismatch("an array is not closed"))?;
        let n: usize = after[..end]
            .trim_end_matches("usize")
            .parse()
            .map_err(|_| {
                mismatch(format!(
                    "the array length `{}` is not a number",
                    &after[..end]
                ))
            })?;
        *rest = &after[end + 1..];
        return Ok(TypeShape::Array(Box::new(inner), n));
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let path = &rest[..end];
    *rest = &rest[end..];
    let name = path.rsplit("::").next().unwrap_or(path);
    if name.is_empty() {
        return Err(mismatch(format!("`{}` is not a type name", &rest[..])));
    }
    let mut args = Vec::new();
    if let Some(after) = rest.strip_prefix('<') {
        *rest = after;
        loop {
            args.push(parse_type(rest, resolve)?);
            if let Some(after) = rest.strip_prefix(',') {
                *rest = after;
            } else if let Some(after) = rest.strip_prefix('>') {
                *rest = after;
                break;
            } else {
                return Err(mismatch("generic arguments are not closed"));
            }
        }
    }
    let one = |args: Vec<TypeShape>| -> Result<Box<TypeShape>, ShapeMismatch> {
        match <[TypeShape; 1]>::try_from(args) {
            Ok([t]) => Ok(Box::new(t)),
            Err(_) => Err(mismatch(format!("`{name}` takes one type argument"))),
        }
    };
    let scalar = match name {
        "bool" => TypeShape::Bool,
        "u8" => TypeShape::U8,
        "u16" => TypeShape::U16,
        "u32" => TypeShape::U32,
        "u64" => TypeShape::U64,
        "u128" => TypeShape::U128,
        "usize" => TypeShape::Usize,
        "i8" => TypeShape::I8,
        "i16" => TypeShape::I16,
        "i32" => TypeShape::I32,
        "i64" => TypeShape::I64,
        "i128" => TypeShape::I128,
        "isize" => TypeShape::Isize,
        "f32" => TypeShape::F32,
        "f64" => TypeShape::F64,
        "char" => TypeShape::Char,
        "String" => TypeShape::Text,
        "Vec" | "VecDeque" | "LinkedList" | "HashSet" | "BTreeSet" | "IndexSet" => {
            return Ok(TypeShape::Seq(one(args)?));
        }
        "Option" => return Ok(TypeShape::Option(one(args)?)),
        "Box" | "Rc" | "Arc" => return Ok(*one(args)?),
        "HashMap" | "BTreeMap" | "IndexMap" => {
            return match <[TypeShape; 2]>::try_from(args) {
                Ok([k, v]) => Ok(TypeShape::Map(Box::new(k), Box::new(v))),
                Err(_) => Err(mismatch(format!("`{name}` takes two type arguments"))),
            };
        }
        other => {
            if let Some(shape) = resolve(other)
                && args.is_empty()
            {
                return Ok(shape);
            }
            return Err(mismatch(format!(
                "`{other}` is not a type a stored shape describes (integers, floats, bool, \
                 char, String, Vec, Option, Box, maps, sets, tuples and arrays, and the \
                 structs and enums declared in the definition module); a type declared \
                 elsewhere, a generic type or a type alias is not described"
            )));
        }
    };
    if args.is_empty() {
        Ok(scalar)
    } else {
        Err(mismatch(format!("`{name}` takes no type arguments")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Sample {
        a: u64,
        b: i32,
        c: String,
        d: Vec<u8>,
        e: Option<(u16, String)>,
        f: f64,
        g: bool,
        h: [u8; 3],
        i: Vec<Option<i64>>,
        j: char,
        k: u128,
    }

    fn shapes() -> Vec<TypeShape> {
        [
            "u64",
            "i32",
            "std::string::String",
            "Vec<u8>",
            "Option<(u16,String)>",
            "f64",
            "bool",
            "[u8;3]",
            "Vec<Option<i64>>",
            "char",
            "u128",
        ]
        .iter()
        .map(|t| TypeShape::parse(t))
        .collect::<Result<_, _>>()
        .unwrap_or_default()
    }

    #[test]
    fn decodes_and_reencodes_what_postcard_wrote() -> Result<(), Box<dyn std::error::Error>> {
        let sample = Sample {
            a: 300,
            b: -7,
            c: "héllo".into(),
            d: vec![0, 1, 255],
            e: Some((65535, "x".into())),
            f: -1.5,
            g: true,
            h: [9, 8, 7],
            i: vec![None, Some(i64::MIN), Some(i64::MAX)],
            j: 'é',
            k: u128::MAX,
        };
        let bytes = postcard::to_allocvec(&sample)?;
        let shapes = shapes();
        assert_eq!(shapes.len(), 11);
        let mut input = bytes.as_slice();
        let values: Vec<Value> = shapes
            .iter()
            .map(|s| s.decode(&mut input))
            .collect::<Result<_, _>>()?;
        assert!(input.is_empty());
        assert_eq!(values[1], Value::Int(-7));
        assert_eq!(values[2], Value::Text("héllo".into()));
        let mut out = Vec::new();
        for (s, v) in shapes.iter().zip(&values) {
            s.encode(v, &mut out)?;
        }
        assert_eq!(out, bytes);
        Ok(())
    }

    #[test]
    fn key_encoding_matches_the_typed_codec() -> Result<(), ShapeMismatch> {
        let mut out = Vec::new();
        TypeShape::parse("(u32,String)")?.encode_key(
            &Value::Seq(vec![Value::UInt(7), Value::Text("a".into())]),
            &mut out,
        )?;
        assert_eq!(out, (7u32, "a".to_string()).to_key_bytes());
        out.clear();
        TypeShape::parse("i64")?.encode_key(&Value::Int(-3), &mut out)?;
        assert_eq!(out, (-3i64).to_key_bytes());
        Ok(())
    }

    #[test]
    fn refuses_what_it_cannot_describe() {
        for ty in ["Address", "HashMap<String>", "&str", "[u8]", "Vec<u8,u8>"] {
            assert!(TypeShape::parse(ty).is_err(), "{ty} was accepted");
        }
        let e = TypeShape::parse("Vec<Address>")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("`Address`") && e.contains("Vec<Address>"), "{e}");
    }

    #[test]
    fn refuses_out_of_range_and_mistyped_values() {
        let mut out = Vec::new();
        assert!(TypeShape::U8.encode(&Value::UInt(256), &mut out).is_err());
        assert!(TypeShape::U32.encode(&Value::Int(-1), &mut out).is_err());
        assert!(TypeShape::Text.encode(&Value::UInt(1), &mut out).is_err());
        assert!(TypeShape::U64.decode(&mut &[0xFFu8][..]).is_err());
    }
    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Point {
        x: i32,
        label: Option<String>,
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Empty,
        Circle(f64),
        Segment(Point, Point),
        Box { corner: Point, side: u16 },
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Tree {
        name: String,
        children: Vec<Tree>,
    }

    /// The named types of the tests, as a stored shape would declare them.
    fn declared() -> Result<Vec<std::sync::Arc<NamedType>>, ShapeMismatch> {
        let point = NamedType::new("Point");
        let shape = NamedType::new("Shape");
        let tree = NamedType::new("Tree");
        let all = vec![point.clone(), shape.clone(), tree.clone()];
        let known = all.clone();
        let resolve = move |name: &str| {
            known
                .iter()
                .find(|t| t.name() == name)
                .map(|t| TypeShape::Named(t.clone()))
        };
        let p = |ty: &str| TypeShape::parse_with(ty, &resolve);
        point.define(TypeDef::Struct(Fields::Named(vec![
            ("x".into(), p("i32")?),
            ("label".into(), p("Option<String>")?),
        ])));
        shape.define(TypeDef::Enum(vec![
            ("Empty".into(), Fields::Unit),
            ("Circle".into(), Fields::Newtype(p("f64")?)),
            (
                "Segment".into(),
                Fields::Tuple(vec![p("Point")?, p("Point")?]),
            ),
            (
                "Box".into(),
                Fields::Named(vec![
                    ("corner".into(), p("Point")?),
                    ("side".into(), p("u16")?),
                ]),
            ),
        ]));
        tree.define(TypeDef::Struct(Fields::Named(vec![
            ("name".into(), p("String")?),
            ("children".into(), p("Vec<Tree>")?),
        ])));
        Ok(all)
    }

    fn resolver(types: &[std::sync::Arc<NamedType>]) -> impl Fn(&str) -> Option<TypeShape> + '_ {
        |name: &str| {
            types
                .iter()
                .find(|t| t.name() == name)
                .map(|t| TypeShape::Named(t.clone()))
        }
    }

    #[test]
    fn nested_structs_enums_and_maps_decode_and_reencode_byte_for_byte()
    -> Result<(), Box<dyn std::error::Error>> {
        let types = declared()?;
        let resolve = resolver(&types);
        type Field = (
            Vec<Shape>,
            std::collections::BTreeMap<u32, Point>,
            Option<Tree>,
            (Shape, std::collections::HashSet<i8>),
        );
        let shape = TypeShape::parse_with(
            "(Vec<Shape>,BTreeMap<u32,Point>,Option<Tree>,(Shape,HashSet<i8>))",
            &resolve,
        )?;
        let point = |x| Point {
            x,
            label: (x > 0).then(|| format!("p{x}")),
        };
        let value: Field = (
            vec![
                Shape::Empty,
                Shape::Circle(2.5),
                Shape::Segment(point(1), point(-2)),
                Shape::Box {
                    corner: point(3),
                    side: 300,
                },
            ],
            [(7, point(7)), (1, point(-1))].into_iter().collect(),
            Some(Tree {
                name: "root".into(),
                children: vec![Tree {
                    name: "leaf".into(),
                    children: vec![],
                }],
            }),
            (Shape::Circle(-1.0), [3i8].into_iter().collect()),
        );
        let bytes = postcard::to_allocvec(&value)?;
        let mut input = bytes.as_slice();
        let decoded = shape.decode(&mut input)?;
        assert!(input.is_empty());
        let Value::Seq(parts) = &decoded else {
            return Err("not a tuple".into());
        };
        let Value::Seq(shapes) = &parts[0] else {
            return Err("not a list".into());
        };
        assert_eq!(
            shapes[0],
            Value::Variant("Empty".into(), Box::new(Value::Unit))
        );
        assert_eq!(
            shapes[1],
            Value::Variant("Circle".into(), Box::new(Value::Float(2.5)))
        );
        assert!(matches!(&parts[1], Value::Map(entries) if entries.len() == 2));
        let mut out = Vec::new();
        shape.encode(&decoded, &mut out)?;
        assert_eq!(out, bytes);
        Ok(())
    }

    #[test]
    fn a_variant_or_member_that_does_not_fit_is_named() -> Result<(), ShapeMismatch> {
        let types = declared()?;
        let resolve = resolver(&types);
        let shape = TypeShape::parse_with("Shape", &resolve)?;
        let mut out = Vec::new();
        let e = shape
            .encode(
                &Value::Variant("Hexagon".into(), Box::new(Value::Unit)),
                &mut out,
            )
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("`Shape` has no variant `Hexagon`"), "{e}");
        let e = shape
            .encode(
                &Value::Variant(
                    "Box".into(),
                    Box::new(Value::Record(vec![("side".into(), Value::UInt(1))])),
                ),
                &mut out,
            )
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            e.contains("variant `Box`") && e.contains("`corner` is missing"),
            "{e}"
        );
        // A variant index beyond the enum.
        let e = shape
            .decode(&mut &[9u8][..])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("`Shape` has 4 variants"), "{e}");
        Ok(())
    }

    #[test]
    fn a_recursive_value_nested_too_deep_is_refused_not_overflowed() -> Result<(), ShapeMismatch> {
        let types = declared()?;
        let resolve = resolver(&types);
        let shape = TypeShape::parse_with("Tree", &resolve)?;
        // Each level: name "" (length 0), one child (length 1).
        let bytes = [0u8, 1].repeat(10_000);
        let e = shape
            .decode(&mut bytes.as_slice())
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("nests more than"), "{e}");
        Ok(())
    }

    #[test]
    fn an_undescribed_type_is_refused_with_its_reason() {
        let t = NamedType::new("Opaque");
        t.define(TypeDef::Undescribed("a #[serde(..)] attribute".into()));
        let shape = TypeShape::Named(t);
        let e = shape
            .decode(&mut &[0u8][..])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            e.contains("`Opaque` is not described: a #[serde(..)]"),
            "{e}"
        );
    }

    #[test]
    fn values_compare_as_their_rust_types_do() {
        use std::cmp::Ordering::*;
        assert_eq!(Value::Int(-3).compare(&Value::UInt(2)), Some(Less));
        assert_eq!(Value::Int(5).compare(&Value::UInt(3)), Some(Greater));
        assert_eq!(
            Value::UInt(u128::MAX).compare(&Value::Int(7)),
            Some(Greater)
        );
        assert_eq!(Value::UInt(10).compare(&Value::Float(9.5)), Some(Greater));
        assert_eq!(
            Value::Text("ab".into()).compare(&Value::Text("b".into())),
            Some(Less)
        );
        assert_eq!(
            Value::None.compare(&Value::Some(Box::new(Value::UInt(0)))),
            Some(Less)
        );
        assert_eq!(Value::Float(f64::NAN).compare(&Value::Float(1.0)), None);
        assert_eq!(
            Value::Text("b".into()).compare(&Value::Char('a')),
            Some(Greater)
        );
        assert_eq!(Value::Text("é".into()).rule_len(), Some(2));
        assert_eq!(
            Value::Some(Box::new(Value::Seq(vec![Value::Unit]))).rule_len(),
            Some(1)
        );
        assert_eq!(Value::Text("a\"b".into()).show(), "\"a\\\"b\"");
        assert_eq!(Value::Float(5.0).show(), "5.0");
    }
}
