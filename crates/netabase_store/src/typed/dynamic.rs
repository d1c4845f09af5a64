//! A store read and written without the Rust types of its models, from the shapes the
//! macros record in `__netabase/meta`: what the `netabase` command line is built on.
//!
//! At every writable open, a store records next to its schema descriptor a **shape**
//! for its definition (key `shape/<Definition>`, [`super::shape`]): a text that
//! describes every field, its validation rules and links, and the nested types.
//!
//! [`DynamicStore`] reads it back and decodes stored values into [`Value`]s
//! ([`crate::codec::dynamic`]). Its writes go through the one write pipeline
//! ([`super::write::Writer`]) with the same index planning as typed writes
//! ([`super::plan::plan_put_keys`]): unique keys are checked and indexes kept exact.
//!
//! The names of a dynamic store's models and tables live as long as the program (a
//! handful of short strings per open): the write pipeline names tables with
//! `&'static str`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::backend::{Backend, Direction, RawRange, ReadTxn, WriteOp};
use crate::codec::dynamic::{ShapeMismatch, TypeShape, Value};
use crate::codec::value::{VALUE_FORMAT_VERSION, split_header};
use crate::error::{NetabaseError, Result};
use crate::schema::{ModelInfo, SecondaryKeyInfo};
use crate::sync::state::SyncState;

use super::meta::META_TABLE;
use super::plan::index_key;
pub use super::shape::{DynLink, DynRule, LinkArity};
use super::write::Writer;

/// The prefix of the meta keys that hold the shapes (`shape/<Definition>`).
pub const SHAPE_KEY_PREFIX: &str = "shape/";

/// One field of a described model.
#[derive(Debug, Clone)]
pub struct DynField {
    /// The field's name.
    pub name: String,
    /// Its Rust type as written.
    pub type_name: String,
    /// Its wire layout, or why it cannot be described.
    pub shape: std::result::Result<TypeShape, ShapeMismatch>,
    /// Whether it is the primary key.
    pub primary: bool,
    /// Its index table and whether it is unique, when it is a secondary key.
    pub index: Option<(String, bool)>,
}

/// A model as its stored shape describes it.
#[derive(Debug, Clone)]
pub struct DynModel {
    /// The definition's name.
    pub definition: String,
    /// The model's name.
    pub name: String,
    /// Its primary table (`<Definition>/<Model>`), which also names it on the command
    /// line and in exports.
    pub table: String,
    /// The model version its values are written with.
    pub version: u16,
    /// Its fields, in declaration order.
    pub fields: Vec<DynField>,
    /// Its declarative validation rules, by field, in the order they are checked (or
    /// why a rule cannot be read).
    pub rules: Vec<(String, std::result::Result<DynRule, ShapeMismatch>)>,
    /// Its `#[link(..)]` fields.
    pub links: Vec<DynLink>,
    /// Whether it has a model-level `validate = ..` function, which cannot run without
    /// the program that defines it.
    pub custom_validator: bool,
    /// Whether the stored shape describes the model's rules and links (shapes of
    /// version 1 do not).
    pub rules_described: bool,
    info: &'static ModelInfo,
    def: &'static str,
}

impl DynModel {
    /// A model read from its shape's lines.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        def: &'static str,
        name: String,
        table: String,
        version: u16,
        fields: Vec<DynField>,
        rules: Vec<(String, std::result::Result<DynRule, ShapeMismatch>)>,
        links: Vec<DynLink>,
        custom_validator: bool,
        rules_described: bool,
    ) -> DynModel {
        let info = super::shape::model_info(&name, &table, version, &fields);
        DynModel {
            definition: def.to_owned(),
            name,
            table,
            version,
            fields,
            rules,
            links,
            custom_validator,
            rules_described,
            info,
            def,
        }
    }

    /// Checks the declarative validation rules of `record` in the order the model's
    /// own validator checks them (the model-level function is not run: see
    /// [`DynModel::custom_validator`]).
    ///
    /// # Errors
    /// [`NetabaseError::Invalid`] naming the model, the field and the reason, as the
    /// program's own writes report it.
    pub fn validate(&self, record: &Value) -> Result<()> {
        for (field, rule) in &self.rules {
            let invalid = |reason: String| {
                NetabaseError::invalid(self.info.name, Some(static_name(field)), reason)
            };
            let rule = rule
                .as_ref()
                .map_err(|e| invalid(format!("the rule cannot be checked: {e}")))?;
            let value = record
                .field(field)
                .ok_or_else(|| invalid("the field is missing".into()))?;
            let reason = match rule {
                DynRule::NonEmpty => match value.rule_len() {
                    Some(0) => Some("must not be empty".to_owned()),
                    Some(_) => None,
                    None => Some(format!("{} has no length", value.kind())),
                },
                DynRule::Len { min, max } => match value.rule_len() {
                    Some(len) => crate::rules::check_len(len, *min, *max),
                    None => Some(format!("{} has no length", value.kind())),
                },
                DynRule::Range { min, max } => {
                    let below = min
                        .as_ref()
                        .filter(|m| value.compare(m) == Some(std::cmp::Ordering::Less));
                    let above = max
                        .as_ref()
                        .filter(|m| value.compare(m) == Some(std::cmp::Ordering::Greater));
                    match (below, above) {
                        (Some(min), _) => Some(format!(
                            "{} is below the minimum {}",
                            value.show(),
                            min.show()
                        )),
                        (None, Some(max)) => Some(format!(
                            "{} is above the maximum {}",
                            value.show(),
                            max.show()
                        )),
                        (None, None) => None,
                    }
                }
            };
            if let Some(reason) = reason {
                return Err(invalid(reason));
            }
        }
        Ok(())
    }

    /// The encoded primary keys each link of `record` points at, per link (in the
    /// order of [`DynModel::links`]).
    ///
    /// # Errors
    /// [`NetabaseError::Shape`] when a link field's value or type does not hold the
    /// linked model's primary key.
    pub fn link_keys(&self, record: &Value) -> Result<Vec<Vec<Vec<u8>>>> {
        let fail = |field: &str, reason: String| {
            NetabaseError::Shape(Box::new(crate::error::ShapeError {
                model: self.table.clone(),
                field: Some(field.to_owned()),
                reason,
            }))
        };
        let mut out = Vec::with_capacity(self.links.len());
        for link in &self.links {
            let (arity, key) = link
                .holds
                .as_ref()
                .map_err(|e| fail(link.field, e.0.clone()))?;
            let value = record
                .field(link.field)
                .ok_or_else(|| fail(link.field, "the field is missing".into()))?;
            let values: Vec<&Value> = match (arity, value) {
                (LinkArity::Optional, Value::None | Value::Unit) => Vec::new(),
                (LinkArity::Optional, Value::Some(v)) => vec![&**v],
                (LinkArity::Many, Value::Seq(items)) => items.iter().collect(),
                (LinkArity::Many, other) => {
                    return Err(fail(
                        link.field,
                        format!("expected a list of keys, found {}", other.kind()),
                    ));
                }
                (_, v) => vec![v],
            };
            let mut keys = Vec::with_capacity(values.len());
            for v in values {
                let mut bytes = Vec::new();
                key.encode_key(v, &mut bytes)
                    .map_err(|e| fail(link.field, e.0))?;
                keys.push(bytes);
            }
            out.push(keys);
        }
        Ok(out)
    }

    /// An encoded primary key of this model as Rust's `Debug` shows it (hex when it is
    /// not a scalar key), for messages.
    pub fn show_key(&self, key: &[u8]) -> String {
        self.primary()
            .and_then(|p| p.shape.as_ref().ok())
            .and_then(|shape| shape.decode_key(key))
            .map_or_else(|| crate::error::hex(key), |v| v.show())
    }

    /// The link index tables, in the order of [`DynModel::links`].
    fn link_tables(&self) -> Vec<&'static str> {
        self.links.iter().map(|l| l.table).collect()
    }
    /// The primary key field.
    pub fn primary(&self) -> Option<&DynField> {
        self.fields.iter().find(|f| f.primary)
    }

    /// Why the model's values cannot be decoded, when they cannot: a field whose type
    /// the shape does not describe, or no fields at all.
    pub fn undescribed(&self) -> Option<String> {
        if self.fields.is_empty() || self.primary().is_none() {
            return Some(format!(
                "the model `{}` has no stored shape (its model trait was not generated by the \
                 macros)",
                self.table
            ));
        }
        self.fields.iter().find_map(|f| {
            f.shape
                .as_ref()
                .err()
                .map(|e| format!("field `{}.{}`: {e}", self.name, f.name))
        })
    }

    /// Decodes the stored value `bytes` at encoded primary key `pk` into a
    /// [`Value::Record`].
    ///
    /// # Errors
    /// [`NetabaseError::Decode`] naming the table and key when the value does not
    /// decode, is of another model version than the shape's, or the shape cannot
    /// describe a field.
    pub fn decode(&self, pk: &[u8], bytes: &[u8]) -> Result<Value> {
        let (version, mut body) = split_header(&self.table, pk, bytes)?;
        if let Some(why) = self.undescribed() {
            return Err(NetabaseError::decode_other(&self.table, pk, why));
        }
        if version != self.version {
            return Err(NetabaseError::decode_other(
                &self.table,
                pk,
                format!(
                    "the value was written by version {version} of `{}` and the stored shape \
                     describes version {}",
                    self.name, self.version
                ),
            ));
        }
        let mut fields = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let value = field
                .shape
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|shape| shape.decode(&mut body))
                .map_err(|e| {
                    NetabaseError::decode_other(
                        &self.table,
                        pk,
                        format!("field `{}`: {e}", field.name),
                    )
                })?;
            fields.push((field.name.clone(), value));
        }
        if !body.is_empty() {
            return Err(NetabaseError::decode_other(
                &self.table,
                pk,
                format!("{} bytes left after the last field", body.len()),
            ));
        }
        Ok(Value::Record(fields))
    }

    /// Encodes `record` (a [`Value::Record`] with every field) as its stored value, its
    /// encoded primary key, its encoded secondary keys and the keys its links point at.
    ///
    /// # Errors
    /// [`NetabaseError::Shape`] naming the model and field when the record does not
    /// fit the shape.
    pub fn encode(&self, record: &Value) -> Result<EncodedRecord> {
        let fail = |field: &str, reason: String| {
            NetabaseError::Shape(Box::new(crate::error::ShapeError {
                model: self.table.clone(),
                field: (!field.is_empty()).then(|| field.to_owned()),
                reason,
            }))
        };
        if let Some(why) = self.undescribed() {
            return Err(fail("", why));
        }
        let mut value = vec![VALUE_FORMAT_VERSION];
        value.extend_from_slice(&self.version.to_be_bytes());
        let mut pk = Vec::new();
        let mut keys = Vec::new();
        for field in &self.fields {
            let shape = field
                .shape
                .as_ref()
                .map_err(|e| fail(&field.name, e.0.clone()))?;
            let v = record
                .field(&field.name)
                .ok_or_else(|| fail(&field.name, "the field is missing".into()))?;
            shape
                .encode(v, &mut value)
                .map_err(|e| fail(&field.name, e.0))?;
            if field.primary {
                shape
                    .encode_key(v, &mut pk)
                    .map_err(|e| fail(&field.name, e.0))?;
            }
        }
        for key in self.info.secondary_keys {
            let field = self.fields.iter().find(|f| f.name == key.field);
            let (Some(field), Some(v)) = (field, record.field(key.field)) else {
                return Err(fail(key.field, "the secondary key is not a field".into()));
            };
            let mut bytes = Vec::new();
            if let Ok(shape) = &field.shape {
                shape
                    .encode_key(v, &mut bytes)
                    .map_err(|e| fail(&field.name, e.0))?;
            }
            keys.push(bytes);
        }
        let links = self.link_keys(record)?;
        Ok(EncodedRecord {
            pk,
            value,
            keys,
            links,
        })
    }

    /// A stored value's keys, as [`DynModel::encode`] makes them.
    fn stored_keys(&self, pk: &[u8], bytes: &[u8]) -> Result<EncodedRecord> {
        let record = self.decode(pk, bytes)?;
        self.encode(&record)
    }

    /// The secondary keys, as the write pipeline knows them.
    pub fn secondary_keys_info(&self) -> &'static [SecondaryKeyInfo] {
        self.info.secondary_keys
    }
}

/// What [`DynamicStore::for_each`] calls with each record: its encoded primary key and
/// its decoded value; `Break` ends the walk.
pub type RecordFn<'f> = dyn FnMut(&[u8], Result<Value>) -> Result<ControlFlow<()>> + 'f;

/// What [`DynamicStore::import`] may be told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Import records of models that have a model-level `validate = ..` function
    /// without running it (their field rules are still checked). Off by default: such
    /// models are refused.
    pub skip_custom_validators: bool,
}

impl ImportOptions {
    /// The default options: models with a validator function are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`ImportOptions::skip_custom_validators`].
    #[must_use]
    pub fn skip_custom_validators(mut self, skip: bool) -> Self {
        self.skip_custom_validators = skip;
        self
    }
}

/// Why [`DynamicStore::import`] refused its input; nothing of it was applied.
#[derive(Debug)]
pub struct ImportError {
    /// The position of the refused record in the input (from 1); `None` when the
    /// import was refused as a whole (a database it cannot write, an engine failure).
    pub record: Option<u64>,
    /// The refused record's model (its table).
    pub model: Option<String>,
    /// The refused record's primary key, as Rust's `Debug` would show it.
    pub key: Option<String>,
    /// The reason.
    pub error: NetabaseError,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(record) = self.record {
            write!(f, "record {record}")?;
            if let Some(model) = &self.model {
                write!(f, " (`{model}`")?;
                if let Some(key) = &self.key {
                    write!(f, ", primary key {key}")?;
                }
                f.write_str(")")?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A link of an imported record whose target was neither stored nor imported when
/// the record was read.
struct PendingLink<'m> {
    record: u64,
    model: &'m DynModel,
    shown: Option<String>,
    link: &'m DynLink,
    key: Vec<u8>,
}

/// Per index table, the entries (key → value) the records call for.
type IndexEntries = BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A record encoded for its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    /// The encoded primary key.
    pub pk: Vec<u8>,
    /// The stored value (header ++ postcard).
    pub value: Vec<u8>,
    /// The encoded secondary keys, in the order of the model's secondary keys.
    pub keys: Vec<Vec<u8>>,
    /// Per link (in the order of [`DynModel::links`]), the encoded primary keys it
    /// points at.
    pub links: Vec<Vec<Vec<u8>>>,
}

/// A unique-key refusal of `record` as the typed path shows it: the key's value as the
/// imported record holds it and the holder's primary key decoded, instead of their
/// encoded bytes (other errors are returned as they are).
fn readable_unique(model: &DynModel, record: &Value, error: NetabaseError) -> NetabaseError {
    match error {
        NetabaseError::UniqueViolation(mut v) => {
            if let Some(value) = record.field(v.field) {
                v.value = value.show();
            }
            v.holder = model.show_key(&v.holder_key);
            NetabaseError::UniqueViolation(v)
        }
        other => other,
    }
}

/// A field name for the errors of the write pipeline, which name fields with
/// `&'static str` (a few short strings per failing import).
fn static_name(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

/// Progress of a walk over a whole table ([`DynamicStore::verify`],
/// [`DynamicStore::rebuild_indexes`], [`DynamicStore::import`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// The model's table.
    pub table: &'a str,
    /// Records done so far.
    pub done: u64,
    /// Records in the table (0 when unknown).
    pub total: u64,
}

/// One problem [`DynamicStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The table where it is.
    pub table: String,
    /// The key of the entry concerned (hex in messages).
    pub key: Vec<u8>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at key {}: {}",
            self.table,
            crate::error::hex(&self.key),
            self.problem
        )
    }
}

/// The sync state of one synced model ([`DynamicStore::sync_models`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncSummary {
    /// The model's primary table.
    pub table: String,
    /// The writer id of the database's own version stamps.
    pub writer: crate::sync::WriterId,
    /// The versions of the records held.
    pub live: u64,
    /// The tombstones held (removals that reconciliation passes on until pruned).
    pub tombstones: u64,
}

/// A store opened without the Rust types of its models: every definition whose shape
/// is recorded in the database.
pub struct DynamicStore<B> {
    backend: B,
    format: Option<u32>,
    models: Vec<DynModel>,
    schemas: Vec<(String, String)>,
}

impl<B: fmt::Debug> fmt::Debug for DynamicStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicStore")
            .field("backend", &self.backend)
            .field("models", &self.models.len())
            .finish()
    }
}

impl<B: Backend> DynamicStore<B> {
    /// Reads the format, the schema descriptors and the shapes of the database in
    /// `backend`. Nothing is written.
    ///
    /// # Errors
    /// [`NetabaseError::UnsupportedFormat`] when the database is of another format;
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn open(backend: B) -> Result<Self> {
        let mut format = None;
        let mut models = Vec::new();
        let mut schemas = Vec::new();
        {
            let txn = backend.begin_read()?;
            txn.for_each_in(
                META_TABLE,
                RawRange::all(),
                Direction::Forward,
                &mut |k, v| {
                    let key = String::from_utf8_lossy(k);
                    let text = String::from_utf8_lossy(v);
                    if key == "format" {
                        format = <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes);
                    } else if let Some(def) = key.strip_prefix("schema/") {
                        schemas.push((def.to_owned(), text.into_owned()));
                    } else if key.starts_with(SHAPE_KEY_PREFIX)
                        && let Some(parsed) = super::shape::parse_shape(&text)
                    {
                        models.extend(parsed);
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
        }
        if let Some(found) = format
            && found != super::meta::FORMAT_VERSION
        {
            return Err(NetabaseError::UnsupportedFormat(Box::new(
                crate::error::FormatError {
                    table: META_TABLE.to_owned(),
                    found,
                    supported: super::meta::FORMAT_VERSION,
                },
            )));
        }
        // Links into another definition resolve once every definition is read.
        super::shape::resolve_links(&mut models);
        Ok(DynamicStore {
            backend,
            format,
            models,
            schemas,
        })
    }

    /// Refuses an import into a database that keeps what a write without the Rust
    /// types cannot maintain: the links of a shape that does not describe them
    /// (version 1).
    fn refuse_unsupported_import(&self) -> Result<()> {
        let refuse = |definition: &str, reason: &str| {
            Err(NetabaseError::Shape(Box::new(crate::error::ShapeError {
                model: definition.to_owned(),
                field: None,
                reason: reason.to_owned(),
            })))
        };
        for model in &self.models {
            if !model.rules_described {
                return refuse(
                    &model.definition,
                    "the stored shape was written by an older version and does not describe \
                     the models' validators and links: open the database once with the \
                     program that defines the models, which records the current shape",
                );
            }
        }
        for (definition, text) in &self.schemas {
            let linked = text
                .lines()
                .any(|line| line.trim_start().starts_with("link "));
            if linked
                && !self
                    .models
                    .iter()
                    .any(|m| &m.definition == definition && !m.links.is_empty())
            {
                return refuse(
                    definition,
                    "its models link to each other and the stored shape does not describe \
                     the links: open the database once with the program that defines the \
                     models, which records the current shape",
                );
            }
        }
        Ok(())
    }

    /// The sync state an import keeps in step: that of the definition whose models are
    /// synced, if one is. Its records are stamped with the writer id and clock the
    /// database records, as the program's own writes are.
    ///
    /// # Errors
    /// [`NetabaseError::Shape`] when models of more than one definition are synced
    /// (one transaction keeps the metadata of one definition);
    /// [`NetabaseError::Sync`] when the recorded sync state is damaged.
    fn import_sync(&self) -> Result<Option<Arc<SyncState>>> {
        let mut found: Option<Arc<SyncState>> = None;
        for (definition, state) in self.sync_states() {
            let state = state?;
            if let Some(first) = &found {
                return Err(NetabaseError::Shape(Box::new(crate::error::ShapeError {
                    model: definition.to_owned(),
                    field: None,
                    reason: format!(
                        "sync is on for the models of two definitions of this database \
                         (`{}` and `{definition}`), and an import keeps the sync metadata \
                         of one: import through the program that defines the models",
                        first.definition
                    ),
                })));
            }
            found = Some(state);
        }
        Ok(found)
    }

    /// The sync state recorded for every definition of the database that has synced
    /// models (in the order of [`DynamicStore::schemas`]), or why it cannot be read.
    fn sync_states(&self) -> Vec<(&str, Result<Arc<SyncState>>)> {
        let mut out = Vec::new();
        for (definition, _) in &self.schemas {
            let models: Vec<&DynModel> = self
                .models
                .iter()
                .filter(|m| &m.definition == definition)
                .collect();
            let Some(def) = models.first().map(|m| m.def) else {
                continue;
            };
            let infos: Vec<&'static ModelInfo> = models.iter().map(|m| m.info).collect();
            match crate::sync::state::recorded(&self.backend, def, &infos) {
                Ok(None) => {}
                Ok(Some(state)) => out.push((definition.as_str(), Ok(state))),
                Err(e) => out.push((definition.as_str(), Err(e))),
            }
        }
        out
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The storage format recorded in the database (`None` for an empty database).
    pub fn format(&self) -> Option<u32> {
        self.format
    }

    /// Every described model, by definition in name order.
    pub fn models(&self) -> &[DynModel] {
        &self.models
    }

    /// The schema descriptor of every definition: `(definition, text)`.
    pub fn schemas(&self) -> &[(String, String)] {
        &self.schemas
    }

    /// The model named `name`: its table (`BlogDefinition/User`) or, when only one
    /// definition has it, its name (`User`). `None` when no model, or more than one,
    /// has that name.
    pub fn model(&self, name: &str) -> Option<&DynModel> {
        let mut found = self
            .models
            .iter()
            .filter(|m| m.table == name || m.name == name);
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// Calls `f` with each record of `model` in key order: its encoded primary key and
    /// its decoded value (or the error naming the table and key).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure, or `f`'s error.
    pub fn for_each(&self, model: &DynModel, f: &mut RecordFn<'_>) -> Result<()> {
        let txn = self.backend.begin_read()?;
        txn.for_each_in(
            &model.table,
            RawRange::all(),
            Direction::Forward,
            &mut |k, v| f(k, model.decode(k, v)),
        )
    }

    /// The number of entries of `table`.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn len(&self, table: &str) -> Result<u64> {
        self.backend.begin_read()?.len(table)
    }

    /// Writes `records` (`(model, record)` pairs) through the write pipeline in one
    /// transaction: declarative validation rules checked, every link's target found (in
    /// the database or among the imported records, in any order), indexes and link
    /// indexes maintained, unique keys checked. Nothing is written when any record is
    /// refused.
    ///
    /// A model with a model-level `validate = ..` function is refused unless
    /// [`ImportOptions::skip_custom_validators`] is set: the function is the program's
    /// code, which an import without the Rust types cannot run.
    ///
    /// # Errors
    /// [`ImportError`]: the position of a refused record (from 1) with its model and
    /// key, and the reason (the first refusal met: a missing link target is only known
    /// to be missing once the whole input is read, so a later record's refusal may be
    /// reported before it) ([`NetabaseError::Invalid`],
    /// [`NetabaseError::DanglingLink`], [`NetabaseError::UniqueViolation`],
    /// [`NetabaseError::Shape`] for a record that does not fit its model, ...); nothing
    /// is applied.
    pub fn import(
        &self,
        records: &mut dyn Iterator<Item = Result<(String, Value)>>,
        options: &ImportOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> std::result::Result<u64, ImportError> {
        let whole = |error| ImportError {
            record: None,
            model: None,
            key: None,
            error,
        };
        self.refuse_unsupported_import().map_err(whole)?;
        let sync = self.import_sync().map_err(whole)?;
        let writer = Writer::begin(&self.backend, false)
            .map_err(whole)?
            .with_sync(sync.as_ref());
        // Every imported primary key by table, and the links whose target is neither
        // stored nor imported yet: it may come later in the input.
        let mut imported: BTreeMap<&'static str, std::collections::BTreeSet<Vec<u8>>> =
            BTreeMap::new();
        let mut pending: Vec<PendingLink<'_>> = Vec::new();
        let mut done = 0u64;
        for item in records {
            let at = done + 1;
            let fail = |model: Option<&DynModel>, key: Option<String>, error| ImportError {
                record: Some(at),
                model: model.map(|m| m.table.clone()),
                key,
                error,
            };
            let (name, record) = item.map_err(|e| fail(None, None, e))?;
            let model = self.model(&name).ok_or_else(|| {
                fail(
                    None,
                    None,
                    NetabaseError::Shape(Box::new(crate::error::ShapeError {
                        model: name.clone(),
                        field: None,
                        reason: "the database has no model of that name".into(),
                    })),
                )
            })?;
            let shown = model
                .primary()
                .and_then(|p| record.field(&p.name))
                .map(Value::show);
            let fail = |e| fail(Some(model), shown.clone(), e);
            if model.custom_validator && !options.skip_custom_validators {
                return Err(fail(NetabaseError::Shape(Box::new(
                    crate::error::ShapeError {
                        model: model.table.clone(),
                        field: None,
                        reason: "the model has a validator function (`validate = ..`), which \
                                 only the program that defines it can run; import through that \
                                 program, or skip the function knowingly (the field rules are \
                                 still checked)"
                            .into(),
                    },
                ))));
            }
            let encoded = model.encode(&record).map_err(fail)?;
            model.validate(&record).map_err(fail)?;
            for (link, keys) in model.links.iter().zip(&encoded.links) {
                for key in keys {
                    let known = imported
                        .get(link.target_table)
                        .is_some_and(|set| set.contains(key))
                        || writer
                            .reader()
                            .get(link.target_table, key)
                            .map_err(fail)?
                            .is_some();
                    if !known {
                        pending.push(PendingLink {
                            record: at,
                            model,
                            shown: shown.clone(),
                            link,
                            key: key.clone(),
                        });
                    }
                }
            }
            writer
                .put_described(model.info, &model.link_tables(), &encoded, &|old| {
                    model.stored_keys(&encoded.pk, old)
                })
                .map_err(|e| fail(readable_unique(model, &record, e)))?;
            imported
                .entry(model.info.table)
                .or_default()
                .insert(encoded.pk.clone());
            done += 1;
            progress(Progress {
                table: &model.table,
                done,
                total: 0,
            });
        }
        for p in pending {
            if imported
                .get(p.link.target_table)
                .is_some_and(|set| set.contains(&p.key))
            {
                continue;
            }
            let target = self.models.iter().find(|m| m.table == p.link.target_table);
            let target_key =
                target.map_or_else(|| crate::error::hex(&p.key), |t| t.show_key(&p.key));
            return Err(ImportError {
                record: Some(p.record),
                model: Some(p.model.table.clone()),
                key: p.shown,
                error: NetabaseError::DanglingLink(Box::new(crate::error::DanglingLinkError {
                    model: p.model.info.name,
                    field: p.link.field,
                    target: p.link.target,
                    target_key,
                })),
            });
        }
        writer.commit().map_err(whole)?;
        Ok(done)
    }

    /// The index entries `model`'s records call for, read in `txn`: per index table,
    /// key → value. Records that do not decode and unique values shared by two records
    /// are reported to `findings`.
    fn expected_indexes<T: ReadTxn + ?Sized>(
        model: &DynModel,
        txn: &T,
        findings: &mut Vec<Finding>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<IndexEntries> {
        let total = txn.len(&model.table)?;
        let mut expected: IndexEntries = model
            .info
            .secondary_keys
            .iter()
            .map(|k| k.table)
            .chain(model.links.iter().map(|l| l.table))
            .map(|table| (table, BTreeMap::new()))
            .collect();
        let mut done = 0u64;
        txn.for_each_in(
            &model.table,
            RawRange::all(),
            Direction::Forward,
            &mut |pk, v| {
                done += 1;
                if done.is_multiple_of(256) || done == total {
                    progress(Progress {
                        table: &model.table,
                        done,
                        total,
                    });
                }
                let encoded = match model.decode(pk, v).and_then(|r| model.encode(&r)) {
                    Ok(e) => e,
                    Err(e) => {
                        findings.push(Finding {
                            table: model.table.clone(),
                            key: pk.to_vec(),
                            problem: format!("the value does not decode: {e}"),
                        });
                        return Ok(ControlFlow::Continue(()));
                    }
                };
                if encoded.pk != pk {
                    findings.push(Finding {
                    table: model.table.clone(),
                    key: pk.to_vec(),
                    problem: format!(
                        "the record's primary key encodes as {}, not as the key it is stored at",
                        crate::error::hex(&encoded.pk)
                    ),
                });
                }
                for (info, key) in model.info.secondary_keys.iter().zip(&encoded.keys) {
                    let entries = expected.entry(info.table).or_default();
                    let (k, value) = if info.unique {
                        (key.clone(), pk.to_vec())
                    } else {
                        (index_key(false, key, pk), Vec::new())
                    };
                    if let Some(other) = entries.insert(k.clone(), value)
                        && info.unique
                    {
                        findings.push(Finding {
                            table: info.table.to_owned(),
                            key: k,
                            problem: format!(
                                "the unique value is held by two records, at {} and {}",
                                crate::error::hex(&other),
                                crate::error::hex(pk)
                            ),
                        });
                    }
                }
                for (link, keys) in model.links.iter().zip(&encoded.links) {
                    let entries = expected.entry(link.table).or_default();
                    for key in keys {
                        entries.insert(index_key(false, key, pk), Vec::new());
                    }
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(expected)
    }

    /// Reports to `findings` every link of `model`'s records whose target does not
    /// exist, and every link field whose type does not hold the target's key.
    fn dangling_links<T: ReadTxn + ?Sized>(
        &self,
        model: &DynModel,
        txn: &T,
        findings: &mut Vec<Finding>,
    ) -> Result<()> {
        if model.links.is_empty() {
            return Ok(());
        }
        for link in &model.links {
            if let Err(e) = &link.holds {
                findings.push(Finding {
                    table: model.table.clone(),
                    key: Vec::new(),
                    problem: format!("link `{}.{}` not checked: {e}", model.name, link.field),
                });
            }
        }
        let mut found = Vec::new();
        txn.for_each_in(
            &model.table,
            RawRange::all(),
            Direction::Forward,
            &mut |pk, v| {
                // A value that does not decode is reported by the index check.
                if let Ok(record) = model.decode(pk, v)
                    && let Ok(keys) = model.link_keys(&record)
                {
                    for (link, keys) in model.links.iter().zip(keys) {
                        for key in keys {
                            found.push((pk.to_vec(), link, key));
                        }
                    }
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        for (pk, link, key) in found {
            if txn.get(link.target_table, &key)?.is_none() {
                let target = self.models.iter().find(|m| m.table == link.target_table);
                findings.push(Finding {
                    table: model.table.clone(),
                    problem: format!(
                        "`{}.{}` (primary key {}) links to `{}` with primary key {}, which \
                         does not exist",
                        model.name,
                        link.field,
                        model.show_key(&pk),
                        link.target,
                        target.map_or_else(|| crate::error::hex(&key), |t| t.show_key(&key)),
                    ),
                    key: pk,
                });
            }
        }
        Ok(())
    }

    /// Checks every described model: every value decodes and is stored at its own
    /// primary key, every index and link index entry matches a record and every record
    /// has its entries (exactly), unique values are held by one record each, every
    /// link's target exists; for models with sync on, the fingerprint tree agrees with
    /// the sync entries and every stored record has the entry of its stored value.
    /// Returns what it found (nothing when the database is sound).
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn verify(&self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Vec<Finding>> {
        let txn = self.backend.begin_read()?;
        let mut findings = Vec::new();
        for (definition, text) in &self.schemas {
            let linked = text
                .lines()
                .any(|line| line.trim_start().starts_with("link "));
            if linked
                && self
                    .models
                    .iter()
                    .any(|m| &m.definition == definition && !m.rules_described)
            {
                findings.push(Finding {
                    table: definition.clone(),
                    key: Vec::new(),
                    problem: "links not checked: the stored shape was written by an older \
                              version and does not describe them (open the database once with \
                              the program that defines the models)"
                        .into(),
                });
            }
        }
        for model in &self.models {
            if let Some(why) = model.undescribed() {
                findings.push(Finding {
                    table: model.table.clone(),
                    key: Vec::new(),
                    problem: format!("not checked: {why}"),
                });
                continue;
            }
            Self::dangling_links(self, model, &txn, &mut findings)?;
            let expected = Self::expected_indexes(model, &txn, &mut findings, progress)?;
            for (table, wanted) in expected {
                let mut actual = BTreeMap::new();
                txn.for_each_in(table, RawRange::all(), Direction::Forward, &mut |k, v| {
                    actual.insert(k.to_vec(), v.to_vec());
                    Ok(ControlFlow::Continue(()))
                })?;
                for (key, value) in &wanted {
                    match actual.get(key) {
                        None => findings.push(Finding {
                            table: table.to_owned(),
                            key: key.clone(),
                            problem: "a record has no entry in this index".into(),
                        }),
                        Some(found) if found != value => findings.push(Finding {
                            table: table.to_owned(),
                            key: key.clone(),
                            problem: format!(
                                "the entry points at {}, the record holding the value is at {}",
                                crate::error::hex(found),
                                crate::error::hex(value)
                            ),
                        }),
                        Some(_) => {}
                    }
                }
                for key in actual.keys().filter(|k| !wanted.contains_key(*k)) {
                    findings.push(Finding {
                        table: table.to_owned(),
                        key: key.clone(),
                        problem: "the index entry matches no record".into(),
                    });
                }
            }
        }
        self.verify_sync(&txn, &mut findings)?;
        Ok(findings)
    }

    /// Every model with sync on, with its writer id and how many versions and
    /// tombstones it holds (a scan of each sync table).
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] when the recorded sync state is damaged;
    /// [`NetabaseError::Decode`] when a sync table does not decode (an encrypted one
    /// read without its key); [`NetabaseError::Backend`] on engine failure.
    pub fn sync_models(&self) -> Result<Vec<SyncSummary>> {
        let txn = self.backend.begin_read()?;
        let mut out = Vec::new();
        for (_, state) in self.sync_states() {
            let state = state?;
            for model in &state.models {
                let entries = crate::sync::tree::entries_in(&txn, &model.tables, &[], None)?;
                let tombstones = entries.iter().filter(|(_, e)| e.tombstone).count() as u64;
                out.push(SyncSummary {
                    table: model.info.table.to_owned(),
                    writer: state.writer,
                    live: entries.len() as u64 - tombstones,
                    tombstones,
                });
            }
        }
        Ok(out)
    }

    /// Removes the tombstones older than `older_than` from every model with sync on, as
    /// [`crate::sync::prune_tombstones`] does for a store opened by the program, in one
    /// write transaction; returns how many were removed (0 when no model is synced).
    ///
    /// A tombstone keeps a removal from being undone by a replica that still holds the
    /// record: prune only tombstones older than the longest time a replica may stay out
    /// of reach.
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] when the recorded sync state is damaged;
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn prune_tombstones(&self, older_than: std::time::Duration) -> Result<u64> {
        let age = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        let cutoff = crate::sync::stamp::now_millis().saturating_sub(age);
        let mut pruned = 0;
        for (_, state) in self.sync_states() {
            let state = state?;
            pruned += crate::sync::state::prune(&self.backend, &state, cutoff)?;
        }
        Ok(pruned)
    }

    /// Brings the sync metadata of every model with sync on back in step with its
    /// records ([`crate::sync::repair`]): what [`DynamicStore::verify`] reports as a
    /// sync disagreement gets a new version or a tombstone stamped now by this
    /// database's writer id. Returns how many entries were written.
    ///
    /// # Errors
    /// [`NetabaseError::Sync`] when the recorded sync state is damaged;
    /// [`NetabaseError::Decode`] when a sync table does not decode;
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn repair_sync(&self) -> Result<u64> {
        let mut written = 0;
        for (_, state) in self.sync_states() {
            let state = state?;
            written += crate::sync::state::repair(&self.backend, &state)?;
        }
        Ok(written)
    }

    /// The sync part of [`DynamicStore::verify`]: for every synced model, the
    /// fingerprint tree against its entries, and the entries against the stored records.
    fn verify_sync<T: ReadTxn>(&self, txn: &T, findings: &mut Vec<Finding>) -> Result<()> {
        for (definition, state) in self.sync_states() {
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    findings.push(Finding {
                        table: definition.to_owned(),
                        key: Vec::new(),
                        problem: format!("sync state: {e}"),
                    });
                    continue;
                }
            };
            for model in &state.models {
                if let Some(problem) = crate::sync::tree::check(txn, &model.tables)? {
                    findings.push(Finding {
                        table: model.tables.table.clone(),
                        key: Vec::new(),
                        problem,
                    });
                }
                for (key, problem) in
                    crate::sync::tree::check_records(txn, &model.tables, model.info.table)?
                {
                    findings.push(Finding {
                        table: model.info.table.to_owned(),
                        key,
                        problem: format!("sync: {problem}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Rebuilds every index and link index of every described model from its primary
    /// records, in one write transaction through the write pipeline's executor (a link
    /// index is rebuilt whether or not its targets exist, as the program's own rebuild
    /// at open does).
    ///
    /// # Errors
    /// [`NetabaseError::Schema`] (nothing written) when a record does not decode or two
    /// records share a unique value: an index cannot be rebuilt over them;
    /// [`NetabaseError::Backend`] on engine failure.
    pub fn rebuild_indexes(&self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<u64> {
        let writer = Writer::begin(&self.backend, false)?;
        let mut entries = 0u64;
        for model in &self.models {
            if model.undescribed().is_some()
                || (model.info.secondary_keys.is_empty() && model.links.is_empty())
            {
                continue;
            }
            let mut findings = Vec::new();
            let expected = Self::expected_indexes(model, writer.reader(), &mut findings, progress)?;
            if let Some(first) = findings.first() {
                return Err(NetabaseError::Schema(Box::new(crate::error::SchemaError {
                    definition: model.def,
                    model: model.table.clone(),
                    field: None,
                    reason: format!(
                        "the indexes cannot be rebuilt ({} problems in the records; first: {first})",
                        findings.len()
                    ),
                })));
            }
            for (table, wanted) in expected {
                writer.clear_internal(table)?;
                let ops: Vec<WriteOp<'_>> = wanted
                    .into_iter()
                    .map(|(key, value)| WriteOp::Put { table, key, value })
                    .collect();
                entries += ops.len() as u64;
                writer.write_internal(&ops)?;
            }
        }
        writer.commit()?;
        Ok(entries)
    }
}
