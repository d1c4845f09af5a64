//! The traits that `#[netabase_definition_module]` implements for a user's schema.
//!
//! Users do not implement these by hand: the macros generate them, and the typed layer
//! (`NetabaseStore`, `Tree`, transactions) is written once against them.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::key::{KeyCodec, PrimaryKeyCodec};

/// Static description of one secondary-key field of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondaryKeyInfo {
    /// The Rust field name, e.g. `"email"`.
    pub field: &'static str,
    /// The index table, `"<Definition>/<Model>/<field>"`.
    pub table: &'static str,
    /// Whether two records may share a value of this key.
    pub unique: bool,
    /// The field's Rust type as written (`"u32"`, `"String"`), recorded in the stored
    /// schema so that a changed key type is detected when the store is opened.
    pub key_type: &'static str,
}

/// Static description of one model of a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model's name, e.g. `"User"`.
    pub name: &'static str,
    /// The primary table, `"<Definition>/<Model>"`.
    pub table: &'static str,
    /// The model version written into every value header (`#[netabase(Def, version = N)]`).
    pub version: u16,
    /// The primary key's Rust type as written, recorded in the stored schema.
    pub primary_key_type: &'static str,
    /// The secondary keys, in field declaration order.
    pub secondary_keys: &'static [SecondaryKeyInfo],
}

/// One field of a model as its self-describing shape records it: enough for a tool
/// without the model's Rust type (the `netabase` command line) to decode and encode
/// its stored values ([`crate::codec::dynamic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldShape {
    /// The Rust field name.
    pub name: &'static str,
    /// The field's Rust type as written, without spaces (`"Vec<u8>"`, `"Option<String>"`).
    pub ty: &'static str,
    /// `false` when a `#[serde(..)]` attribute may change how the field is serialized:
    /// the shape then does not describe it, and tools refuse to decode the model.
    pub described: bool,
}

/// The fields of a model in declaration order (postcard serializes a struct as its
/// fields in that order), and which of them is the primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// The name of the `#[primary_key]` field.
    pub primary_key: &'static str,
    /// Every field, in declaration order.
    pub fields: &'static [FieldShape],
}

/// How the fields of a struct or of an enum variant are written ([`VariantShape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsKind {
    /// No fields (`struct Marker;`, `Status::Active`).
    Unit,
    /// One unnamed field (`struct Meters(f64)`, `Status::Moved(String)`).
    Newtype,
    /// Several unnamed fields (`struct Point(i32, i32)`); named `"0"`, `"1"`, ...
    Tuple,
    /// Named fields.
    Named,
}

/// A struct, or one variant of an enum, of the definition module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantShape {
    /// The variant's name (the struct's name for a struct).
    pub name: &'static str,
    /// How its fields are written.
    pub kind: FieldsKind,
    /// Its fields, in declaration order.
    pub fields: &'static [FieldShape],
}

/// A struct or an enum declared in the definition module besides the models, as the
/// stored shape describes it ([`NetabaseDefinitionTrait::TYPES`]): what lets a tool
/// without the Rust types read fields of nested types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeDecl {
    /// The type's name.
    pub name: &'static str,
    /// Whether it is an enum (each of `variants` is a variant) or a struct (`variants`
    /// holds the struct itself).
    pub is_enum: bool,
    /// `false` when the type's serialization may differ from its declaration (a
    /// `#[serde(..)]` attribute on it or on a variant, generic parameters).
    pub described: bool,
    /// The struct, or the enum's variants in declaration order.
    pub variants: &'static [VariantShape],
}

impl ModelShape {
    /// The shape of a model whose fields are not described (a hand-written impl).
    pub const UNDESCRIBED: ModelShape = ModelShape {
        primary_key: "",
        fields: &[],
    };
}

/// The discriminant enum generated for a definition (one unit variant per model).
pub trait DiscriminantTrait: Copy + Eq + Ord + Hash + Debug + Send + Sync + 'static {
    /// Every discriminant, in declaration order.
    const ALL: &'static [Self];
    /// The model's name, e.g. `"User"`.
    fn name(&self) -> &'static str;
    /// The position of the model in its definition, stable as long as the module's model
    /// order is not changed.
    fn index(&self) -> u16;
    /// The discriminant at `index`, if any.
    fn from_index(index: u16) -> Option<Self> {
        Self::ALL.get(usize::from(index)).copied()
    }
    /// The discriminant named `name`, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.name() == name)
    }
}

/// A definition: the enum of every model of one schema module (`BlogDefinition`).
pub trait NetabaseDefinitionTrait: Sized + Clone + Debug + Send + Sync + 'static {
    /// The enum of every model's key enum (`BlogKeys`).
    type Keys: Clone + Debug + Send + Sync + 'static;
    /// The discriminant enum (`BlogDefinitionDiscriminant`).
    type Discriminant: DiscriminantTrait;
    /// The definition's name, e.g. `"BlogDefinition"`; it prefixes every table name.
    const NAME: &'static str;
    /// Every model of the definition, in declaration order (indexed by
    /// [`DiscriminantTrait::index`]).
    const MODELS: &'static [ModelInfo];
    /// The self-describing shape of every model, parallel to
    /// [`NetabaseDefinitionTrait::MODELS`]; recorded in `__netabase/meta` at open.
    const SHAPES: &'static [ModelShape] = &[];
    /// The structs and enums declared in the definition module besides the models: the
    /// types of nested fields, described in the stored shape.
    const TYPES: &'static [TypeDecl] = &[];

    /// Which model this value holds.
    fn discriminant(&self) -> Self::Discriminant;
    /// Appends the order-preserving encoding of the held model's primary key.
    fn encode_primary_key(&self, out: &mut Vec<u8>);
    /// Appends the encoding of the held model's secondary key at `index` (its position
    /// in the model's [`ModelInfo::secondary_keys`]).
    fn encode_secondary_key(&self, index: usize, out: &mut Vec<u8>);
    /// Encodes the held model as a stored value (header ++ postcard).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Encode`] if serialization fails.
    fn encode_value(&self) -> crate::Result<Vec<u8>>;
    /// Decodes a stored value of the model `discriminant` into the definition enum.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] if the bytes are not a value of that model.
    fn decode_value(discriminant: Self::Discriminant, bytes: &[u8]) -> crate::Result<Self>;
    /// Which model a key enum value refers to.
    fn key_discriminant(key: &Self::Keys) -> Self::Discriminant;
    /// Appends the encoding of the primary key held by `key`, or returns `false` when
    /// `key` holds a secondary key.
    fn encode_keys_primary(key: &Self::Keys, out: &mut Vec<u8>) -> bool;

    /// Runs `visitor` for every model of the definition, in declaration order: how the
    /// write pipeline reaches the models that link to a removed record, and how a
    /// store-wide migration reaches every model. The visitor is implemented for
    /// `&mut` of a step (`impl ModelVisitor<D> for &mut MyStep`, with
    /// `type Output = Result<()>`), so that each model's visit can update it.
    ///
    /// # Errors
    /// The first error of the visitor.
    fn visit_models<V>(visitor: &mut V) -> crate::Result<()>
    where
        for<'v> &'v mut V: ModelVisitor<Self, Output = crate::Result<()>>;
    /// Calls `visitor` with the model type that `discriminant` names: how code that
    /// only knows a model's position (a message from another replica) reaches the
    /// typed write path of that model.
    fn visit_model<V: ModelVisitor<Self>>(
        discriminant: Self::Discriminant,
        visitor: V,
    ) -> V::Output;
}

/// Code generic over the model type: run by [`NetabaseDefinitionTrait::visit_model`]
/// for the model a discriminant names, and by [`NetabaseDefinitionTrait::visit_models`]
/// (through `&mut` of the visitor) for every model of the definition, so the store
/// reaches models from one place (a cascade, a store-wide migration) without naming
/// them.
pub trait ModelVisitor<D: NetabaseDefinitionTrait> {
    /// What the visit returns.
    type Output;
    /// Runs with the model type `M`.
    fn visit<M: NetabaseModelTrait<D>>(self) -> Self::Output;
}

/// Runs `visitor` for the model named `model` of `D` alone (through
/// [`NetabaseDefinitionTrait::visit_model`]); `None` when `D` has no model of that name.
pub(crate) fn visit_named<D, V>(model: &str, visitor: V) -> Option<V::Output>
where
    D: NetabaseDefinitionTrait,
    V: ModelVisitor<D>,
{
    D::Discriminant::from_name(model).map(|d| D::visit_model(d, visitor))
}

/// A model: a struct with one `#[primary_key]` and any number of `#[secondary_key]`s.
pub trait NetabaseModelTrait<D: NetabaseDefinitionTrait>:
    Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
    /// The primary key newtype (`UserPrimaryKey`).
    type PrimaryKey: PrimaryKeyCodec + Clone + Debug + Send + Sync + 'static;
    /// The enum of this model's secondary keys (`UserSecondaryKeys`).
    type SecondaryKeys: SecondaryKeyEnum;
    /// The enum of any key of this model (`UserKey`).
    type Keys: Clone + Debug + Send + Sync + 'static;

    /// Static description: name, table names, version, secondary keys.
    const INFO: ModelInfo;
    /// The model's fields and their types, for tools that read a database without the
    /// model's Rust type.
    const SHAPE: ModelShape = ModelShape::UNDESCRIBED;

    /// This model's discriminant in the definition.
    fn discriminant() -> D::Discriminant;
    /// The record's primary key.
    fn primary_key(&self) -> Self::PrimaryKey;
    /// Appends the encoding of the secondary key at `index` (position in
    /// [`ModelInfo::secondary_keys`]) of this record. Out-of-range indexes append nothing.
    fn encode_secondary_key(&self, index: usize, out: &mut Vec<u8>);
    /// Every secondary key of this record, in declaration order.
    fn secondary_keys(&self) -> Vec<Self::SecondaryKeys>;
    /// Wraps the record into the definition enum.
    fn into_definition(self) -> D;
    /// Unwraps the record from the definition enum, giving it back when it holds another
    /// model.
    ///
    /// # Errors
    /// Returns the definition value unchanged when it holds another model.
    fn try_from_definition(definition: D) -> Result<Self, D>;
    /// Wraps a primary key into the definition's key enum.
    fn primary_key_into_keys(key: Self::PrimaryKey) -> D::Keys;

    /// Decodes the body of a value written by an older `version` of this model: the one
    /// hook every read of an old value goes through. `None` means there is no upgrade
    /// from that version, which reads report as [`crate::NetabaseError::Version`]. The
    /// default has none; migrations generate it.
    fn decode_older(version: u16, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        let _ = (version, body);
        None
    }

    /// Whether [`NetabaseModelTrait::validate`] checks anything (`#[validate(..)]` or
    /// `#[netabase(validate = ..)]`), so that writes of a model without rules skip it.
    const VALIDATES: bool = false;

    /// The model's `#[link(..)]` fields, in declaration order.
    const LINKS: &'static [crate::rules::LinkInfo] = &[];

    /// The model's declarative field rules (`#[validate(..)]`), in the order they are
    /// checked, for the stored shape.
    const FIELD_RULES: &'static [crate::rules::FieldRuleInfo] = &[];

    /// Whether the model has a model-level `#[netabase(validate = ..)]` function, which
    /// a tool without the model's Rust type cannot run.
    const CUSTOM_VALIDATOR: bool = false;

    /// Checks the model's validation rules; the write pipeline calls it before anything
    /// of a write is applied.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Invalid`] naming the model, the field and the reason.
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }

    /// Appends the encoded primary key of every record that link `link` (position in
    /// [`NetabaseModelTrait::LINKS`]) of this record points at.
    fn link_keys(&self, link: usize, out: &mut Vec<Vec<u8>>) {
        let _ = (link, out);
    }

    /// Appends the encoded key of the `at`-th record that link `link` of this record
    /// points at (in the order of [`NetabaseModelTrait::link_keys`]) to `out`; `false`,
    /// with nothing appended, past the last. Generated without an allocation per key;
    /// by default it goes through `link_keys`.
    fn link_key(&self, link: usize, at: usize, out: &mut Vec<u8>) -> bool {
        let mut keys = Vec::new();
        self.link_keys(link, &mut keys);
        keys.get(at).map(|key| out.extend_from_slice(key)).is_some()
    }

    /// Clears link `link` where it points at the encoded key `target` (`set_null`);
    /// whether the record changed.
    fn unlink(&mut self, link: usize, target: &[u8]) -> bool {
        let _ = (link, target);
        false
    }
}

/// The enum of one model's secondary keys (`UserSecondaryKeys`).
pub trait SecondaryKeyEnum: Clone + Debug + Send + Sync + 'static {
    /// The position of the variant's field in [`ModelInfo::secondary_keys`].
    fn index(&self) -> usize;
    /// Appends the order-preserving encoding of the held value.
    fn encode(&self, out: &mut Vec<u8>);
}

/// The key newtype of one secondary field (`UserAgeSecondaryKey`); lets range queries
/// name the index they scan by the type of their bounds.
pub trait SecondaryKeyField<D: NetabaseDefinitionTrait, M: NetabaseModelTrait<D>>:
    KeyCodec + Clone + Debug
{
    /// The position of the field in [`ModelInfo::secondary_keys`].
    const INDEX: usize;
}

/// The key newtype of a unique secondary field (`UserEmailSecondaryKey`): at most one
/// record holds each value, so a lookup by it returns an `Option`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a unique secondary key",
    label = "only a `#[secondary_key(unique)]` field has a lookup that returns one record",
    note = "use `get_by_secondary_key` for a non-unique key: it returns every match"
)]
pub trait UniqueKeyField<D: NetabaseDefinitionTrait, M: NetabaseModelTrait<D>>:
    SecondaryKeyField<D, M>
{
}
