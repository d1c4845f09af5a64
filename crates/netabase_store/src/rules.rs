//! Model rules: versions (migrations), validators and links between models.
//!
//! The macros generate the impls of this module from attributes:
//!
//! - `#[netabase(Def, version = 2, from = UserV1)]` on a model, and
//!   `#[netabase(version = 1)]` on a plain serde struct of the module (an older version
//!   of a model, [`OlderVersion`]): reading a value written by an older version upgrades
//!   it through `From`, one version at a time;
//! - `#[netabase(validate = path::to::fn)]` on a model and `#[validate(..)]` on its
//!   fields (`len(min = .., max = ..)`, `range(min = .., max = ..)`, `non_empty`):
//!   checked by the write pipeline before anything of a write is applied;
//! - `#[link(Target)]` / `#[link(Target, on_delete = restrict | cascade | set_null)]` on
//!   a field holding the target's primary key (`K`, `Option<K>` or `Vec<K>`): a link
//!   index `<Definition>/<Model>/<field>` (key `enc(target key) ++ enc(primary key)`,
//!   empty value) kept exact by the write pipeline, dangling links refused, removals of
//!   a target following the link's policy.
//!
//! Users rarely name these traits; they appear in bounds of the typed API
//! ([`crate::Tree::follow`], [`crate::Tree::referrers`], [`crate::Tree::parent`]).

use serde::de::DeserializeOwned;

use crate::codec::key::KeyCodec;
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

/// What removing a record does to the records that link to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnDelete {
    /// Refuse the removal ([`crate::NetabaseError::StillReferenced`]); the default.
    Restrict,
    /// Remove the linking records too, recursively, in the same transaction.
    Cascade,
    /// Clear the link in the linking records (`None`, or the key taken out of a `Vec`).
    SetNull,
}

/// Static description of one `#[link(..)]` field of a model.
#[derive(Debug, Clone, Copy)]
pub struct LinkInfo {
    /// The Rust field name, e.g. `"author_id"`.
    pub field: &'static str,
    /// The link index table, `"<Definition>/<Model>/<field>"`.
    pub table: &'static str,
    /// The linked model's name, e.g. `"User"`.
    pub target: &'static str,
    /// The linked model's primary table, `"<Definition>/<Target>"`.
    pub target_table: &'static str,
    /// What removing a target does to the records linking to it.
    pub on_delete: OnDelete,
    /// Shows an encoded key of the target (its debug form, or hex when it does not
    /// decode), for error reports.
    pub show_target_key: fn(&[u8]) -> String,
}

impl PartialEq for LinkInfo {
    /// Two descriptions of the same link (the key formatter is not compared).
    fn eq(&self, other: &Self) -> bool {
        (
            self.field,
            self.table,
            self.target,
            self.target_table,
            self.on_delete,
        ) == (
            other.field,
            other.table,
            other.target,
            other.target_table,
            other.on_delete,
        )
    }
}

impl Eq for LinkInfo {}

/// One declarative `#[validate(..)]` rule of a model's field, as the model's stored
/// shape records it, so that a tool without the model's Rust type (the `netabase`
/// command line's import) checks it too.
#[derive(Debug, Clone, Copy)]
pub struct FieldRuleInfo {
    /// The Rust field name.
    pub field: &'static str,
    /// The rule.
    pub rule: RuleInfo,
}

/// A declarative field rule ([`FieldRuleInfo`]).
#[derive(Debug, Clone, Copy)]
pub enum RuleInfo {
    /// `len(min = .., max = ..)`: the bounds of the length.
    Len {
        /// The smallest length allowed.
        min: Option<usize>,
        /// The largest length allowed.
        max: Option<usize>,
    },
    /// `non_empty`.
    NonEmpty,
    /// `range(min = .., max = ..)`: each bound written as a value of the field's type
    /// (its postcard encoding), which the stored shape decodes like the field.
    Range {
        /// The smallest value allowed.
        min: Option<fn() -> Vec<u8>>,
        /// The largest value allowed.
        max: Option<fn() -> Vec<u8>>,
    },
}

/// The postcard encoding of a rule bound, for [`RuleInfo::Range`] (empty when it cannot
/// be encoded, which the stored shape then reports as not described).
#[doc(hidden)]
pub fn encode_bound<T: serde::Serialize>(bound: &T) -> Vec<u8> {
    postcard::to_allocvec(bound).unwrap_or_default()
}

/// The debug form of the encoded key `bytes` of type `K`, or its hex when it does not
/// decode: how error reports show keys.
pub fn show_key<K: KeyCodec + std::fmt::Debug>(bytes: &[u8]) -> String {
    match K::from_key_bytes(bytes) {
        Ok(key) => format!("{key:?}"),
        Err(_) => crate::error::hex(bytes),
    }
}

/// An older version of a model: a plain serde struct marked `#[netabase(version = N)]`
/// (optionally `from = Older`) in the definition module, or implemented by hand.
///
/// A model declared `from = ThisType` reads values of [`OlderVersion::VERSION`] as this
/// type and converts them with `From`; older values go down the chain.
pub trait OlderVersion: DeserializeOwned {
    /// The model version whose values this type reads.
    const VERSION: u16;

    /// Decodes a value body written by `version`: this type's own version directly, an
    /// older one through its own `from` chain. `None` when there is no path.
    fn decode_version(version: u16, body: &[u8]) -> Option<Result<Self, postcard::Error>>;
}

/// A field type that can hold links to a model whose primary key type is `K`: `K`
/// itself, `Option<K>` (an optional link) or `Vec<K>` (many links).
#[diagnostic::on_unimplemented(
    message = "a `#[link(..)]` field of type `{Self}` cannot hold the primary key `{K}` of the linked model",
    label = "the linked model's primary key is `{K}`: write `{K}`, `Option<{K}>` or `Vec<{K}>`"
)]
pub trait LinkValue<K> {
    /// Appends the encoded key of every record the field links to.
    fn link_keys(&self, out: &mut Vec<Vec<u8>>);
    /// Clears the links to the record with encoded key `target`; whether the field
    /// changed (a plain `K` cannot be cleared).
    fn unlink(&mut self, target: &[u8]) -> bool;

    /// Appends the encoded key of the `at`-th record the field links to (in the order
    /// of [`LinkValue::link_keys`]) to `out`; `false`, with nothing appended, past the
    /// last. The write pipeline's checks and link-index writes encode each key into a
    /// buffer of their own this way, without an allocation per key.
    fn link_key(&self, at: usize, out: &mut Vec<u8>) -> bool {
        let mut keys = Vec::new();
        self.link_keys(&mut keys);
        keys.get(at).map(|key| out.extend_from_slice(key)).is_some()
    }
}

impl<K: KeyCodec> LinkValue<K> for K {
    fn link_keys(&self, out: &mut Vec<Vec<u8>>) {
        out.push(self.to_key_bytes());
    }
    fn link_key(&self, at: usize, out: &mut Vec<u8>) -> bool {
        if at != 0 {
            return false;
        }
        self.encode_key(out);
        true
    }
    fn unlink(&mut self, _target: &[u8]) -> bool {
        false
    }
}

impl<K: KeyCodec> LinkValue<K> for Option<K> {
    fn link_keys(&self, out: &mut Vec<Vec<u8>>) {
        if let Some(key) = self {
            out.push(key.to_key_bytes());
        }
    }
    fn link_key(&self, at: usize, out: &mut Vec<u8>) -> bool {
        match self {
            Some(key) if at == 0 => {
                key.encode_key(out);
                true
            }
            _ => false,
        }
    }
    fn unlink(&mut self, target: &[u8]) -> bool {
        if self.as_ref().is_some_and(|k| k.to_key_bytes() == target) {
            *self = None;
            true
        } else {
            false
        }
    }
}

impl<K: KeyCodec> LinkValue<K> for Vec<K> {
    fn link_keys(&self, out: &mut Vec<Vec<u8>>) {
        out.extend(self.iter().map(KeyCodec::to_key_bytes));
    }
    fn link_key(&self, at: usize, out: &mut Vec<u8>) -> bool {
        match self.get(at) {
            Some(key) => {
                key.encode_key(out);
                true
            }
            None => false,
        }
    }
    fn unlink(&mut self, target: &[u8]) -> bool {
        let before = self.len();
        self.retain(|k| k.to_key_bytes() != target);
        self.len() != before
    }
}

/// A `#[link(..)]` field of a model, as a type: `PostAuthorIdLink` for the field
/// `author_id` of `Post`. Names the link for [`crate::Tree::follow`].
pub trait Link<D: NetabaseDefinitionTrait> {
    /// The model holding the link.
    type From: NetabaseModelTrait<D>;
    /// The linked model.
    type To: NetabaseModelTrait<D>;
    /// The link's position in the holder's `LINKS`.
    const INDEX: usize;
}

/// A model as a link of another definition names it: `#[link(accounts::User)]` in a
/// model of definition A, where `User` is a model of definition B stored in the same
/// database. Generated for every model by the definition macro.
///
/// A link across definitions is checked like one within a definition: the field must
/// hold [`CrossTarget::Key`] (a compile error otherwise), a put with a dangling link is
/// refused, and removing the target through B's store is refused while a record of A
/// still links to it (`on_delete = restrict`, the only policy across definitions: B's
/// store cannot write the records of A, whose Rust types it does not know).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a model, so a `#[link(..)]` cannot name it",
    label = "a link names a model: a struct deriving `NetabaseModel` in a definition module"
)]
pub trait CrossTarget: Sized {
    /// The definition that holds the model.
    type Definition: NetabaseDefinitionTrait;
    /// The type of the model's primary key field (`u64` for `#[primary_key] id: u64`).
    type Key: KeyCodec + std::fmt::Debug;
    /// The model's name, e.g. `"User"`.
    const NAME: &'static str;
    /// The model's primary table, `"<Definition>/<Model>"`.
    const TABLE: &'static str;
}

/// A `#[link(..)]` field naming a model of another definition, as a type
/// (`PostAuthorIdLink`); names the link for [`crate::Tree::follow_across`].
pub trait CrossLink<D: NetabaseDefinitionTrait> {
    /// The model holding the link.
    type From: NetabaseModelTrait<D>;
    /// The linked model, of another definition.
    type To: CrossTarget + NetabaseModelTrait<<Self::To as CrossTarget>::Definition>;
    /// The link's position in the holder's `LINKS`.
    const INDEX: usize;
}

/// A model declared `#[netabase(Def, parent = Parent)]`: its link to `Parent` cascades,
/// and [`crate::Tree::parent`] reads the parent.
pub trait Child<D: NetabaseDefinitionTrait>: NetabaseModelTrait<D> {
    /// The parent model.
    type Parent: NetabaseModelTrait<D>;
    /// The link to the parent.
    type ParentLink: Link<D, From = Self, To = Self::Parent>;
}

/// The one visitor of models, [`crate::schema::ModelVisitor`], under the name the
/// model rules used for it: [`NetabaseDefinitionTrait::visit_models`] runs it for every
/// model through `&mut` (`impl ModelVisitor<D> for &mut MyStep` with
/// `type Output = Result<()>`).
#[doc(no_inline)]
pub use crate::schema::ModelVisitor;

/// The length a `#[validate(len(..))]` or `#[validate(non_empty)]` rule checks: bytes of
/// a string, elements of a collection.
pub trait ValidateLen {
    /// The length.
    fn validate_len(&self) -> usize;
}

impl ValidateLen for String {
    fn validate_len(&self) -> usize {
        self.len()
    }
}

impl ValidateLen for str {
    fn validate_len(&self) -> usize {
        self.len()
    }
}

impl<T> ValidateLen for Vec<T> {
    fn validate_len(&self) -> usize {
        self.len()
    }
}

impl<T> ValidateLen for [T] {
    fn validate_len(&self) -> usize {
        self.len()
    }
}

impl<T: ValidateLen> ValidateLen for Option<T> {
    fn validate_len(&self) -> usize {
        self.as_ref().map_or(0, ValidateLen::validate_len)
    }
}

impl<K, V> ValidateLen for std::collections::BTreeMap<K, V> {
    fn validate_len(&self) -> usize {
        self.len()
    }
}

impl<K, V, S> ValidateLen for std::collections::HashMap<K, V, S> {
    fn validate_len(&self) -> usize {
        self.len()
    }
}

/// Checks a length rule; the reason when it fails.
#[doc(hidden)]
pub fn check_len(len: usize, min: Option<usize>, max: Option<usize>) -> Option<String> {
    if let Some(min) = min
        && len < min
    {
        return Some(format!("length {len} is below the minimum {min}"));
    }
    if let Some(max) = max
        && len > max
    {
        return Some(format!("length {len} is above the maximum {max}"));
    }
    None
}

/// Whether `table` is a table of definition `definition` (`"<definition>/.."`): the
/// compile-time check that a link by path names a model of another definition.
#[doc(hidden)]
pub const fn is_table_of(table: &str, definition: &str) -> bool {
    let (table, definition) = (table.as_bytes(), definition.as_bytes());
    if table.len() <= definition.len() || table[definition.len()] != b'/' {
        return false;
    }
    let mut i = 0;
    while i < definition.len() {
        if table[i] != definition[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Checks a range rule; the reason when it fails.
#[doc(hidden)]
pub fn check_range<T: PartialOrd + std::fmt::Debug>(
    value: &T,
    min: Option<T>,
    max: Option<T>,
) -> Option<String> {
    if let Some(min) = min
        && *value < min
    {
        return Some(format!("{value:?} is below the minimum {min:?}"));
    }
    if let Some(max) = max
        && *value > max
    {
        return Some(format!("{value:?} is above the maximum {max:?}"));
    }
    None
}
