//! What a database records about itself (`__netabase/meta`): the storage format, and
//! per definition a schema descriptor that is compared with the code's at every open.
//!
//! ```text
//! netabase schema 2
//! definition BlogDefinition
//! model User v1 table BlogDefinition/User key u64
//!   unique email String table BlogDefinition/User/email
//!   index age u32 table BlogDefinition/User/age
//! ```
//!
//! A model with `#[link(..)]` fields adds a line per link:
//! `  link author_id User table BlogDefinition/Post/author_id`; a link to a model of
//! another definition names the target by its table
//! (`  link customer AccountsDefinition/Customer table BillingDefinition/Invoice/customer`).
//!
//! The links of a definition into another are also recorded where the other's store
//! reads them: `links_into/<target definition>/<this definition>`, one line per link
//! (`<Model> <field> <link index table> <target table>`), written with the descriptor and
//! removed once no link of this definition points there; and the empty marker
//! `links_into/<target definition>`, which tells a removal whether to look at all.
//!
//! At open: a secondary key the code added has its index built from the stored records,
//! one the code removed has its index dropped, one whose uniqueness changed is rebuilt,
//! and a key whose type changed is refused ([`crate::NetabaseError::Schema`]): its
//! stored bytes would be misread. A link the code added has its index built, one it
//! removed is dropped; a model whose records were written by an older model version has
//! all its indexes rebuilt from the upgraded records. Every write of the open goes through the one write
//! pipeline and commits once.

use std::ops::ControlFlow;

use crate::backend::{Backend, Direction, RawRange, ReadTxn, WriteOp};
use crate::error::{FormatError, NetabaseError, Result, SchemaError};
use crate::schema::{DiscriminantTrait, ModelInfo, NetabaseDefinitionTrait, SecondaryKeyInfo};

use super::plan::index_key;
use super::write::Writer;

/// The table that records the storage format and the schemas written to a database.
pub const META_TABLE: &str = "__netabase/meta";

/// The storage format this build reads and writes (keys, values and table layout).
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &[u8] = b"format";

/// Progress of an index being built at open ([`OpenOptions::on_index_build`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexBuild {
    /// The model.
    pub model: &'static str,
    /// The secondary key whose index is being built.
    pub field: &'static str,
    /// Records indexed so far.
    pub done: u64,
    /// Records to index.
    pub total: u64,
}

/// Options of [`crate::NetabaseStore::from_backend_with`].
#[derive(Default)]
#[must_use]
pub struct OpenOptions {
    pub(crate) on_index_build: Option<Box<dyn FnMut(IndexBuild) + Send>>,
    commit_retries: Option<u32>,
    sync: crate::sync::state::SyncOptions,
}

/// How many times a one-shot write, a batch or the store's own open write runs again
/// after a [`NetabaseError::Conflict`] when none is given.
pub const DEFAULT_COMMIT_RETRIES: u32 = 16;

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("on_index_build", &self.on_index_build.is_some())
            .field("commit_retries", &self.retries())
            .field("sync", &self.sync)
            .finish()
    }
}

impl OpenOptions {
    /// Calls `f` while an index is built at open (every 1,024 records and at the end).
    pub fn on_index_build(mut self, f: impl FnMut(IndexBuild) + Send + 'static) -> Self {
        self.on_index_build = Some(Box::new(f));
        self
    }

    /// How many times a write that lost a race with a concurrent writer
    /// ([`NetabaseError::Conflict`], reported by backends shared between processes such
    /// as Redis) is run again before the conflict is returned: every one-shot [`Tree`]
    /// write, every [`Batch::commit`] and the store's own write at open (default
    /// [`DEFAULT_COMMIT_RETRIES`]). Explicit transactions are never run again: their
    /// commit returns the conflict to the caller. Backends that never report conflicts
    /// (redb, sled, memory) are unaffected.
    ///
    /// [`Tree`]: crate::Tree
    /// [`Batch::commit`]: crate::Batch::commit
    pub fn commit_retries(mut self, retries: u32) -> Self {
        self.commit_retries = Some(retries);
        self
    }

    /// The number of retries after a conflict.
    pub(crate) fn retries(&self) -> u32 {
        self.commit_retries.unwrap_or(DEFAULT_COMMIT_RETRIES)
    }

    /// Turns sync on for the model named `model` (see [`crate::sync`]): the store keeps
    /// version stamps, tombstones and range fingerprints for its records, so that it can
    /// be reconciled with another store. When the database already holds records of the
    /// model, their sync metadata is built at open. Sync stays on: a later open without
    /// this option keeps it (the choice is recorded in `__netabase/meta`).
    ///
    /// The open fails with [`crate::NetabaseError::Sync`] when the definition has no
    /// model of that name, or when the store is read-only and sync is new to it.
    pub fn sync_model(mut self, model: impl Into<String>) -> Self {
        self.sync.models.push(model.into());
        self
    }

    /// Turns sync on for every model of the definition ([`OpenOptions::sync_model`]).
    pub fn sync_all(mut self) -> Self {
        self.sync.all = true;
        self
    }

    /// The writer id of this store's version stamps. Without it, a store picks a
    /// random id when sync is first turned on and keeps it; with it, the id is
    /// replaced (records keep the stamps they have). A peer-to-peer node passes its
    /// ed25519 public key.
    pub fn writer_id(mut self, writer: crate::sync::WriterId) -> Self {
        self.sync.writer = Some(writer);
        self
    }

    /// Takes the sync options out (the store applies them after the schema).
    pub(crate) fn take_sync(&mut self) -> crate::sync::state::SyncOptions {
        std::mem::take(&mut self.sync)
    }

    /// Whether these options ask for sync (models, every model or a writer id).
    pub(crate) fn asks_for_sync(&self) -> bool {
        self.sync.all || !self.sync.models.is_empty() || self.sync.writer.is_some()
    }
}

/// A model as a stored descriptor describes it.
#[derive(Debug, Default)]
struct StoredModel {
    name: String,
    key_type: Option<String>,
    fields: Vec<StoredField>,
    /// The model version that wrote the descriptor (`v2`).
    version: Option<u16>,
    /// The link indexes: (field, table).
    links: Vec<(String, String)>,
}

#[derive(Debug)]
struct StoredField {
    name: String,
    unique: bool,
    key_type: Option<String>,
    table: String,
}

/// What the open must do to bring the database to the code's schema.
pub(crate) enum Action {
    /// Build the index of `model`'s secondary key `field` (position) from its records.
    Build(&'static ModelInfo, usize),
    /// Drop the index table.
    Drop(String),
    /// Build every link index of the model named so from its records.
    BuildLinks(&'static str),
}

/// Checks the format, reconciles the schema, and (when `write` is set) records both.
pub(crate) fn open<D: NetabaseDefinitionTrait, B: Backend>(
    backend: &B,
    write: bool,
    options: &mut OpenOptions,
) -> Result<()> {
    let (format, stored, stored_shape) = {
        let txn = backend.begin_read()?;
        (
            txn.get(META_TABLE, FORMAT_KEY)?,
            txn.get(META_TABLE, schema_key::<D>().as_bytes())?,
            txn.get(META_TABLE, shape_key::<D>().as_bytes())?,
        )
    };
    let Some(plan) = plan_open::<D>(
        format.as_deref(),
        stored.as_deref(),
        stored_shape.as_deref(),
        write,
    )?
    else {
        return Ok(());
    };
    let writer = Writer::begin(backend, false)?;
    for action in &plan.actions {
        match action {
            Action::Drop(table) => writer.clear_internal(table)?,
            Action::Build(model, field) => {
                build_index::<D, B>(&writer, model, *field, &mut options.on_index_build)?;
            }
            Action::BuildLinks(model) => super::links::build_link_indexes::<D, B>(&writer, model)?,
        }
    }
    writer.write_internal(&plan.meta)?;
    writer.commit().map(drop)
}

/// The key of definition `D`'s schema descriptor in the meta table.
pub(crate) fn schema_key<D: NetabaseDefinitionTrait>() -> String {
    format!("schema/{}", D::NAME)
}

/// The key of definition `D`'s self-describing model shapes in the meta table.
pub(crate) fn shape_key<D: NetabaseDefinitionTrait>() -> String {
    format!("{}{}", super::dynamic::SHAPE_KEY_PREFIX, D::NAME)
}

/// The key of the storage format in the meta table.
pub(crate) const FORMAT_META_KEY: &[u8] = FORMAT_KEY;

/// What an open must write: the schema actions, then the meta records.
pub(crate) struct OpenPlan {
    pub(crate) actions: Vec<Action>,
    pub(crate) meta: Vec<WriteOp<'static>>,
}

/// The decisions of an open, from the stored format, schema descriptor and model shapes
/// (shared by the synchronous and the asynchronous open): an error when the database
/// cannot be opened, `None` when nothing must be written, or what to write.
pub(crate) fn plan_open<D: NetabaseDefinitionTrait>(
    format: Option<&[u8]>,
    stored: Option<&[u8]>,
    stored_shape: Option<&[u8]>,
    write: bool,
) -> Result<Option<OpenPlan>> {
    let descriptor = descriptor::<D>();
    let shape = super::shape::shape_text::<D>();
    let shape_current = stored_shape == shape.as_deref().map(str::as_bytes);
    if let Some(bytes) = format {
        let found = <[u8; 4]>::try_from(bytes)
            .map(u32::from_be_bytes)
            .map_err(|_| {
                NetabaseError::decode_other(META_TABLE, FORMAT_KEY, "format version is not 4 bytes")
            })?;
        if found != FORMAT_VERSION {
            return Err(NetabaseError::UnsupportedFormat(Box::new(FormatError {
                table: META_TABLE.to_owned(),
                found,
                supported: FORMAT_VERSION,
            })));
        }
    }
    let actions = match stored {
        Some(bytes) => reconcile::<D>(&parse(&String::from_utf8_lossy(bytes)))?,
        None => Vec::new(),
    };
    if !write {
        if let Some(Action::Build(model, field)) =
            actions.iter().find(|a| matches!(a, Action::Build(..)))
        {
            return Err(schema_error::<D>(
                model.name,
                Some(model.secondary_keys[*field].field),
                "the index of this new secondary key must be built, which a read-only store \
                 cannot do: open the database writable once",
            ));
        }
        if let Some(Action::BuildLinks(model)) =
            actions.iter().find(|a| matches!(a, Action::BuildLinks(..)))
        {
            return Err(schema_error::<D>(
                model,
                None,
                "the link indexes of this model must be built (a new link, or records of an \
                 older model version), which a read-only store cannot do: open the database \
                 writable once",
            ));
        }
        return Ok(None);
    }
    if format.is_some()
        && stored == Some(descriptor.as_bytes())
        && actions.is_empty()
        && shape_current
    {
        return Ok(None);
    }
    let mut meta = vec![WriteOp::Put {
        table: META_TABLE,
        key: schema_key::<D>().into_bytes(),
        value: descriptor.into_bytes(),
    }];
    if !shape_current {
        meta.push(match shape {
            Some(text) => WriteOp::Put {
                table: META_TABLE,
                key: shape_key::<D>().into_bytes(),
                value: text.into_bytes(),
            },
            None => WriteOp::Delete {
                table: META_TABLE,
                key: shape_key::<D>().into_bytes(),
            },
        });
    }
    meta.extend(links_into_records::<D>(stored));
    if format.is_none() {
        meta.push(WriteOp::Put {
            table: META_TABLE,
            key: FORMAT_KEY.to_vec(),
            value: FORMAT_VERSION.to_be_bytes().to_vec(),
        });
    }
    Ok(Some(OpenPlan { actions, meta }))
}

/// Whether `link` (of a model of `D`) points at a model of another definition.
fn is_across<D: NetabaseDefinitionTrait>(link: &crate::rules::LinkInfo) -> bool {
    !D::MODELS.iter().any(|m| m.table == link.target_table)
}

/// The records of `D`'s links into other definitions (`links_into/<target
/// definition>/<D>`), which the stores of those definitions read in the transaction of
/// a removal; and the removal of the records of definitions `D` no longer links into
/// (named by the links of the `stored` descriptor).
fn links_into_records<D: NetabaseDefinitionTrait>(stored: Option<&[u8]>) -> Vec<WriteOp<'static>> {
    use std::collections::{BTreeMap, BTreeSet};
    let definition_of = |table: &str| table.split('/').next().unwrap_or_default().to_owned();
    let mut now: BTreeMap<String, Vec<(&'static str, &'static crate::rules::LinkInfo)>> =
        BTreeMap::new();
    for model in D::MODELS {
        for link in super::links::links_of::<D>(model.name) {
            if is_across::<D>(link) {
                now.entry(definition_of(link.target_table))
                    .or_default()
                    .push((model.name, link));
            }
        }
    }
    let before: BTreeSet<String> = stored
        .map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(
                    |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                        ["link", _, target, "table", _] if target.contains('/') => {
                            Some(definition_of(target))
                        }
                        _ => None,
                    },
                )
                .collect()
        })
        .unwrap_or_default();
    let key = |target: &str| {
        format!("{}{}", super::links::links_into_prefix(target), D::NAME).into_bytes()
    };
    let mut ops: Vec<WriteOp<'static>> = before
        .iter()
        .filter(|target| !now.contains_key(*target))
        .map(|target| WriteOp::Delete {
            table: META_TABLE,
            key: key(target),
        })
        .collect();
    for (target, links) in now {
        ops.push(WriteOp::Put {
            table: META_TABLE,
            key: key(&target),
            value: super::links::cross_lines(links).into_bytes(),
        });
        ops.push(WriteOp::Put {
            table: META_TABLE,
            key: super::links::links_into_marker(&target),
            value: Vec::new(),
        });
    }
    ops
}

fn schema_error<D: NetabaseDefinitionTrait>(
    model: &str,
    field: Option<&str>,
    reason: impl Into<String>,
) -> NetabaseError {
    NetabaseError::Schema(Box::new(SchemaError {
        definition: D::NAME,
        model: model.to_owned(),
        field: field.map(str::to_owned),
        reason: reason.into(),
    }))
}

/// What must change for the stored schema `stored` to become the code's.
fn reconcile<D: NetabaseDefinitionTrait>(stored: &[StoredModel]) -> Result<Vec<Action>> {
    let mut actions = Vec::new();
    for model in D::MODELS {
        let Some(old) = stored.iter().find(|m| m.name == model.name) else {
            continue;
        };
        if let Some(old_type) = &old.key_type
            && old_type != model.primary_key_type
        {
            return Err(schema_error::<D>(
                model.name,
                None,
                format!(
                    "the primary key of `{}` was `{old_type}` and is now `{}`; its stored keys \
                     would be misread (migrate the data into a new model instead)",
                    model.name, model.primary_key_type
                ),
            ));
        }
        for (index, field) in model.secondary_keys.iter().enumerate() {
            match old.fields.iter().find(|f| f.name == field.field) {
                None => actions.push(Action::Build(model, index)),
                Some(was) => {
                    if let Some(old_type) = &was.key_type
                        && old_type != field.key_type
                    {
                        return Err(changed_type::<D>(model, field, old_type));
                    }
                    if was.unique != field.unique {
                        actions.push(Action::Drop(was.table.clone()));
                        actions.push(Action::Build(model, index));
                    }
                }
            }
        }
        for was in &old.fields {
            if !model.secondary_keys.iter().any(|f| f.field == was.name) {
                actions.push(Action::Drop(was.table.clone()));
            }
        }
        reconcile_rules::<D>(model, old, &mut actions);
    }
    Ok(actions)
}

fn changed_type<D: NetabaseDefinitionTrait>(
    model: &ModelInfo,
    field: &SecondaryKeyInfo,
    old_type: &str,
) -> NetabaseError {
    schema_error::<D>(
        model.name,
        Some(field.field),
        format!(
            "the secondary key `{}.{}` was `{old_type}` and is now `{}`; rename the field to \
             index it anew",
            model.name, field.field, field.key_type
        ),
    )
}

/// Builds the index of secondary key `index` of `model` from its stored records.
fn build_index<D: NetabaseDefinitionTrait, B: Backend>(
    writer: &Writer<'_, B>,
    model: &'static ModelInfo,
    index: usize,
    progress: &mut Option<Box<dyn FnMut(IndexBuild) + Send>>,
) -> Result<()> {
    let total = writer.reader().len(model.table)?;
    let mut builder = IndexBuilder::<D>::new(model, index, total, progress)?;
    writer.reader().for_each_in(
        model.table,
        RawRange::all(),
        Direction::Forward,
        &mut |pk, value| builder.visit(pk, value),
    )?;
    let ops = builder.finish()?;
    writer.write_internal(&ops)?;
    Ok(())
}

/// The index of one secondary key built from the records fed to it in key order: the
/// pure part of an index build, shared by the synchronous and asynchronous opens.
pub(crate) struct IndexBuilder<'p, D: NetabaseDefinitionTrait> {
    model: &'static ModelInfo,
    index: usize,
    discriminant: D::Discriminant,
    total: u64,
    done: u64,
    ops: Vec<WriteOp<'static>>,
    secondary: Vec<u8>,
    claimed: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    failure: Option<NetabaseError>,
    progress: &'p mut Option<Box<dyn FnMut(IndexBuild) + Send>>,
}

impl<'p, D: NetabaseDefinitionTrait> IndexBuilder<'p, D> {
    /// A builder of the index of `model`'s secondary key `index`, over `total` records.
    pub(crate) fn new(
        model: &'static ModelInfo,
        index: usize,
        total: u64,
        progress: &'p mut Option<Box<dyn FnMut(IndexBuild) + Send>>,
    ) -> Result<Self> {
        let discriminant = D::Discriminant::from_name(model.name).ok_or_else(|| {
            schema_error::<D>(model.name, None, "the model is not in the definition")
        })?;
        Ok(IndexBuilder {
            model,
            index,
            discriminant,
            total,
            done: 0,
            ops: Vec::new(),
            secondary: Vec::new(),
            claimed: Default::default(),
            failure: None,
            progress,
        })
    }

    fn report(&mut self) {
        if let Some(f) = self.progress.as_mut() {
            f(IndexBuild {
                model: self.model.name,
                field: self.model.secondary_keys[self.index].field,
                done: self.done,
                total: self.total,
            });
        }
    }

    /// Indexes the record stored at `pk` as `value`; `Break` once the build has failed.
    pub(crate) fn visit(&mut self, pk: &[u8], value: &[u8]) -> Result<ControlFlow<()>> {
        const STEP: u64 = 1024;
        let field = &self.model.secondary_keys[self.index];
        let record = D::decode_value(self.discriminant, value).map_err(|e| match e {
            NetabaseError::Decode(mut d) => {
                d.key = pk.to_vec();
                NetabaseError::Decode(d)
            }
            NetabaseError::Version(mut v) => {
                v.key = pk.to_vec();
                NetabaseError::Version(v)
            }
            other => other,
        })?;
        self.secondary.clear();
        record.encode_secondary_key(self.index, &mut self.secondary);
        if field.unique
            && let Some(other) = self.claimed.insert(self.secondary.clone(), pk.to_vec())
        {
            self.failure = Some(schema_error::<D>(
                self.model.name,
                Some(field.field),
                format!(
                    "the new unique key is shared by the records at {} and {}",
                    crate::error::hex(&other),
                    crate::error::hex(pk)
                ),
            ));
            return Ok(ControlFlow::Break(()));
        }
        self.ops.push(WriteOp::Put {
            table: field.table,
            key: index_key(field.unique, &self.secondary, pk),
            value: if field.unique {
                pk.to_vec()
            } else {
                Vec::new()
            },
        });
        self.done += 1;
        if self.done.is_multiple_of(STEP) {
            self.report();
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The index writes, or the failure that stopped the build.
    pub(crate) fn finish(mut self) -> Result<Vec<WriteOp<'static>>> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        self.report();
        Ok(std::mem::take(&mut self.ops))
    }
}

/// A readable description of the definition's tables and key types, stored in the meta
/// table so that a database can be inspected without the program that wrote it and a
/// schema change is detected at open.
fn descriptor<D: NetabaseDefinitionTrait>() -> String {
    let mut out = format!("netabase schema 2\ndefinition {}\n", D::NAME);
    for model in D::MODELS {
        out.push_str(&format!(
            "model {} v{} table {} key {}\n",
            model.name, model.version, model.table, model.primary_key_type
        ));
        for key in model.secondary_keys {
            let kind = if key.unique { "unique" } else { "index" };
            out.push_str(&format!(
                "  {kind} {} {} table {}\n",
                key.field, key.key_type, key.table
            ));
        }
        for link in super::links::links_of::<D>(model.name) {
            // A link into another definition names its target by table.
            let target = if is_across::<D>(link) {
                link.target_table
            } else {
                link.target
            };
            out.push_str(&format!(
                "  link {} {target} table {}\n",
                link.field, link.table
            ));
        }
    }
    out
}

/// The actions of the model rules: records written by an older model version have
/// every index rebuilt from their upgraded form (an upgrade may change indexed values);
/// a link the code added is built, one it removed is dropped.
fn reconcile_rules<D: NetabaseDefinitionTrait>(
    model: &'static ModelInfo,
    old: &StoredModel,
    actions: &mut Vec<Action>,
) {
    let links = super::links::links_of::<D>(model.name);
    // Without an upgrade path, old records are refused when read, and so is a rebuild.
    let upgraded = old
        .version
        .is_some_and(|v| v < model.version && super::migrate::has_upgrade::<D>(model.name, v));
    if upgraded {
        for (index, field) in model.secondary_keys.iter().enumerate() {
            if !actions
                .iter()
                .any(|a| matches!(a, Action::Build(m, i) if m.name == model.name && *i == index))
            {
                actions.push(Action::Drop(field.table.to_owned()));
                actions.push(Action::Build(model, index));
            }
        }
    }
    let added = links
        .iter()
        .any(|l| !old.links.iter().any(|(f, _)| f == l.field));
    if (upgraded || added) && !links.is_empty() {
        actions.push(Action::BuildLinks(model.name));
    }
    for (field, table) in &old.links {
        if !links.iter().any(|l| l.field == field) {
            actions.push(Action::Drop(table.clone()));
        }
    }
}

/// Reads a stored descriptor: this version's, or the first one (no key types).
fn parse(text: &str) -> Vec<StoredModel> {
    let mut models: Vec<StoredModel> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["model", name, version, "table", _table, rest @ ..] => models.push(StoredModel {
                name: (*name).to_owned(),
                version: version.strip_prefix('v').and_then(|v| v.parse().ok()),
                links: Vec::new(),
                key_type: match rest {
                    ["key", ty] => Some((*ty).to_owned()),
                    _ => None,
                },
                fields: Vec::new(),
            }),
            [kind @ ("unique" | "index"), name, rest @ ..] => {
                let (key_type, table) = match rest {
                    ["table", table] => (None, *table),
                    [ty, "table", table] => (Some((*ty).to_owned()), *table),
                    _ => continue,
                };
                if let Some(model) = models.last_mut() {
                    model.fields.push(StoredField {
                        name: (*name).to_owned(),
                        unique: *kind == "unique",
                        key_type,
                        table: table.to_owned(),
                    });
                }
            }
            ["link", name, _target, "table", table] => {
                if let Some(model) = models.last_mut() {
                    model.links.push(((*name).to_owned(), (*table).to_owned()));
                }
            }
            _ => {}
        }
    }
    models
}
