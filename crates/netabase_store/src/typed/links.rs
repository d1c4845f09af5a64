//! The model rules of the write pipeline: validators and links, checked before anything
//! of a write is applied, and the removals a link policy adds to a removal.
//!
//! [`check_puts`] runs before the first byte of a put (or of a whole `put_many`) is
//! written: every validator, and every link's target must exist (in the store, or among
//! the records of the same call). [`Removal::plan`] computes, from the link indexes and
//! before anything is removed, everything a removal implies: the records that cascade
//! (recursively; a record is visited once, so cycles end), the links that `set_null`
//! clears, and whether a `restrict` link refuses it. [`Removal::execute`] then writes
//! all of it through the same executor, in the same transaction. A refusal therefore
//! leaves nothing behind and the transaction stays usable.
//!
//! A link may point at a model of another definition held in the same database. Its
//! put is checked like any other (the target table is read in the same transaction);
//! the target's store learns of it from the meta table ([`links_into`], recorded by the
//! linking store at open) and honours it as `restrict` in every removal walk
//! ([`Incoming::Across`]): it cannot remove or rewrite records whose types it does not
//! know, so the macros refuse `cascade` and `set_null` across definitions.
//!
//! Link index layout (one table per link field, `<Definition>/<Model>/<field>`): key
//! `enc(target key) ++ enc(primary key)`, empty value. The target key's encoding is
//! self-delimiting, so the entries of one target are the keys with its encoding as
//! prefix.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::backend::{Backend, Direction, RawRange, ReadTxn};
use crate::codec::key::KeyCodec;
use crate::codec::value::decode_model;
use crate::error::{DanglingLinkError, NetabaseError, Result, StillReferencedError};
use crate::rules::{LinkInfo, OnDelete};
use crate::schema::{ModelVisitor, visit_named};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::write::Writer;

/// Up to this many records, a link check sorts the targets of every record instead of
/// building a set of the distinct ones.
const FEW: usize = 16;

/// Checks the validators and the links of `models`, all of which one call writes.
///
/// # Errors
/// [`NetabaseError::Invalid`] or [`NetabaseError::DanglingLink`] for the first model
/// that fails.
pub(crate) fn check_puts<D, M, T>(txn: &T, models: &[M]) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    check_puts_deferring::<D, M, T>(txn, models, None)
}

/// [`check_puts`] for one chunk of a call whose later chunks are not written yet: a
/// link to a record of the same model that is neither stored nor in `models` is pushed
/// to `defer` (when given) as `(link, target key)` instead of refused, since a later
/// chunk may hold it. [`check_deferred`] checks them once the call is written.
///
/// # Errors
/// As [`check_puts`].
pub(crate) fn check_puts_deferring<D, M, T>(
    txn: &T,
    models: &[M],
    mut defer: Option<&mut Vec<(usize, Vec<u8>)>>,
) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    if M::VALIDATES {
        models.iter().try_for_each(NetabaseModelTrait::validate)?;
    }
    if let [model] = models {
        return check_one::<D, M, T>(txn, model, defer);
    }
    let targets = LinkTargets::of::<D, M>(models);
    for (index, key) in &targets.pending {
        let link = &M::LINKS[*index];
        if !exists(txn, link.target_table, key)? {
            if link.target_table == M::INFO.table
                && let Some(defer) = defer.as_deref_mut()
            {
                defer.push((*index, key.clone()));
                continue;
            }
            return Err(dangling::<D, M>(*index, key));
        }
    }
    Ok(())
}

/// [`check_puts_deferring`] of a call of one record (every one-shot put): each target
/// looked up as the record names it, encoded into one buffer, without collecting,
/// sorting or allocating per target.
fn check_one<D, M, T>(
    txn: &T,
    model: &M,
    mut defer: Option<&mut Vec<(usize, Vec<u8>)>>,
) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    let mut key = Vec::new();
    let mut own: Option<Vec<u8>> = None;
    for (index, link) in M::LINKS.iter().enumerate() {
        let to_own_model = link.target_table == M::INFO.table;
        each_link_key::<D, M, _>(model, index, &mut key, |key| {
            // A record may link to itself: it is written by this very call.
            if to_own_model && *own.get_or_insert_with(|| model.primary_key().to_key_bytes()) == key
            {
                return Ok(());
            }
            if !exists(txn, link.target_table, key)? {
                if to_own_model && let Some(defer) = defer.as_deref_mut() {
                    defer.push((index, key.to_vec()));
                    return Ok(());
                }
                return Err(dangling::<D, M>(index, key));
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Calls `f` with each target key that link `index` of `model` holds, in the field's
/// order, each encoded into the one buffer `key` (nothing allocated per target).
///
/// # Errors
/// The first error of `f`.
fn each_link_key<D, M, E>(
    model: &M,
    index: usize,
    key: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let mut at = 0;
    loop {
        key.clear();
        if !model.link_key(index, at, key) {
            return Ok(());
        }
        at += 1;
        f(key)?;
    }
}

/// The link targets that the models of one call point at and that must exist in the
/// store: every (link, target key) pair once, in key order, except targets among the
/// call's own records (a tree of records put at once). Both executors look them up.
pub(crate) struct LinkTargets {
    /// (position in `M::LINKS`, encoded target key) of each target to look up.
    pub(crate) pending: Vec<(usize, Vec<u8>)>,
}

impl LinkTargets {
    pub(crate) fn of<D, M>(models: &[M]) -> Self
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        if M::LINKS.is_empty() {
            return LinkTargets {
                pending: Vec::new(),
            };
        }
        // Only computed when a link points back at the model itself.
        let own: BTreeSet<Vec<u8>> = if M::LINKS.iter().any(|l| l.target_table == M::INFO.table) {
            models
                .iter()
                .map(|m| m.primary_key().to_key_bytes())
                .collect()
        } else {
            BTreeSet::new()
        };
        // Every (link, target) pair once, then looked up in key order: the records of
        // one call often link to few targets, and sorted lookups walk the target table
        // in order. A call of many records keeps only the distinct targets (a set
        // lookup per link, not a sort of every link); a call of a few sorts them.
        // Each key is encoded into one buffer, and copied out only when kept.
        let mut targets: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut key = Vec::new();
        if models.len() > FEW {
            // foldhash, not SipHash: hashing each record's target was most of the check.
            let mut seen: Vec<HashSet<Vec<u8>, foldhash::fast::RandomState>> = Vec::new();
            seen.resize_with(M::LINKS.len(), HashSet::default);
            for model in models {
                for (index, seen) in seen.iter_mut().enumerate() {
                    let Ok(()) = each_link_key::<D, M, Infallible>(model, index, &mut key, |key| {
                        if !seen.contains(key) {
                            seen.insert(key.to_vec());
                        }
                        Ok(())
                    });
                }
            }
            for (index, set) in seen.into_iter().enumerate() {
                targets.extend(set.into_iter().map(|key| (index, key)));
            }
        } else {
            for model in models {
                for index in 0..M::LINKS.len() {
                    let Ok(()) = each_link_key::<D, M, Infallible>(model, index, &mut key, |key| {
                        targets.push((index, key.to_vec()));
                        Ok(())
                    });
                }
            }
        }
        targets.sort_unstable();
        targets.dedup();
        targets.retain(|(index, key)| {
            !(M::LINKS[*index].target_table == M::INFO.table && own.contains(key))
        });
        LinkTargets { pending: targets }
    }
}

/// Checks the links that [`check_puts_deferring`] deferred, now that every record of
/// the call is written.
///
/// # Errors
/// [`NetabaseError::DanglingLink`] for the first target that does not exist.
pub(crate) fn check_deferred<D, M, T>(txn: &T, deferred: &[(usize, Vec<u8>)]) -> Result<()>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    for (index, key) in deferred {
        if !exists(txn, M::LINKS[*index].target_table, key)? {
            return Err(dangling::<D, M>(*index, key));
        }
    }
    Ok(())
}

/// The refusal of a link of `M` (at `index` of `M::LINKS`) to the absent `key`.
pub(crate) fn dangling<D, M>(index: usize, key: &[u8]) -> NetabaseError
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let link = &M::LINKS[index];
    NetabaseError::DanglingLink(Box::new(DanglingLinkError {
        model: M::INFO.name,
        field: link.field,
        target: link.target,
        target_key: (link.show_target_key)(key),
    }))
}

/// Runs the validators of the model held by `value` (a record received from a peer).
///
/// # Errors
/// [`NetabaseError::Invalid`] when a rule fails.
#[cfg(feature = "libp2p")]
pub(crate) fn validate_value<D: NetabaseDefinitionTrait>(value: &D) -> Result<()> {
    struct Check<'v, D> {
        value: &'v D,
    }
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Check<'_, D> {
        type Output = Result<()>;

        fn visit<M: NetabaseModelTrait<D>>(self) -> Result<()> {
            if M::VALIDATES
                && let Ok(model) = M::try_from_definition(self.value.clone())
            {
                model.validate()?;
            }
            Ok(())
        }
    }
    D::visit_model(value.discriminant(), Check { value })
}

fn exists<T: ReadTxn + ?Sized>(txn: &T, table: &str, key: &[u8]) -> Result<bool> {
    let mut found = false;
    txn.get_with(table, key, &mut |value| {
        found = value.is_some();
        Ok(())
    })?;
    Ok(found)
}

/// The encoded primary keys of the records whose link with index table `table` points
/// at `target`, in key order.
pub(crate) fn referrer_keys<T: ReadTxn + ?Sized>(
    txn: &T,
    table: &str,
    target: &[u8],
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    txn.for_each_in(
        table,
        RawRange::prefix(target),
        Direction::Forward,
        &mut |key, _| {
            out.push(key[target.len()..].to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// Whether any model of `D` links to the model whose primary table is `target`.
pub(crate) fn is_linked_to<D: NetabaseDefinitionTrait>(target: &'static str) -> bool {
    struct Find {
        target: &'static str,
        found: bool,
    }
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for &mut Find {
        type Output = Result<()>;

        fn visit<R: NetabaseModelTrait<D>>(self) -> Result<()> {
            self.found |= R::LINKS.iter().any(|l| l.target_table == self.target);
            Ok(())
        }
    }
    let mut find = Find {
        target,
        found: false,
    };
    // The visitor itself never fails.
    let _ = D::visit_models(&mut find);
    find.found
}

/// A record, by model name and encoded primary key.
pub(crate) type RecordId = (&'static str, Vec<u8>);
/// The records a removal cascades to, per model.
pub(crate) type CascadedRecords = BTreeMap<&'static str, Vec<Vec<u8>>>;
/// The links a removal clears: record -> (position in its model's links, target key).
pub(crate) type NulledLinks = BTreeMap<RecordId, Vec<(usize, Vec<u8>)>>;

/// A `restrict` link found by the walk: the referrer, its field, and the target, with
/// their keys as error reports show them.
struct Restricted {
    /// The referrer; `None` for a record of another definition, which a removal here
    /// never removes.
    referrer: Option<RecordId>,
    model: &'static str,
    field: &'static str,
    target: &'static str,
    shown_referrer: String,
    shown_target: String,
}

/// Everything a removal implies beyond the records it names, planned before any write.
#[derive(Debug, Default)]
pub(crate) struct Removal {
    /// Records removed by a cascade, per model, beyond the removal's own keys.
    cascaded: CascadedRecords,
    /// Records whose links `set_null` clears: record -> (link, target key).
    nulls: NulledLinks,
}

/// A link that points at the model being removed.
#[derive(Clone)]
pub(crate) enum Incoming {
    /// A link of model `referrer` of the same definition.
    Within {
        referrer: &'static str,
        index: usize,
        link: &'static LinkInfo,
        show_referrer: fn(&[u8]) -> String,
    },
    /// A link of a model of another definition (always `restrict`), as that
    /// definition recorded it in the meta table; `show_target` shows the removed
    /// model's keys.
    Across {
        link: Arc<CrossIncoming>,
        target: &'static str,
        show_target: fn(&[u8]) -> String,
    },
}

impl Incoming {
    /// The link index table to read the referrers from.
    pub(crate) fn table(&self) -> &str {
        match self {
            Incoming::Within { link, .. } => link.table,
            Incoming::Across { link, .. } => &link.table,
        }
    }
}

/// Every link that points at the model named `target` of `D`: those of the models of
/// `D` in the order of the definition's models and of their links, then those of
/// other definitions (`across`, every link into `D` the meta table records).
fn incoming<D: NetabaseDefinitionTrait>(
    target: &'static str,
    across: &[Arc<CrossIncoming>],
) -> Vec<Incoming> {
    struct Find<'a> {
        target: &'static str,
        table: &'static str,
        across: &'a [Arc<CrossIncoming>],
        found: Vec<Incoming>,
    }
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for &mut Find<'_> {
        type Output = Result<()>;

        fn visit<R: NetabaseModelTrait<D>>(self) -> Result<()> {
            for (index, link) in R::LINKS.iter().enumerate() {
                if link.target_table == self.table {
                    self.found.push(Incoming::Within {
                        referrer: R::INFO.name,
                        index,
                        link,
                        show_referrer: crate::rules::show_key::<R::PrimaryKey>,
                    });
                }
            }
            if R::INFO.name == self.target {
                for link in self
                    .across
                    .iter()
                    .filter(|l| l.target_table == R::INFO.table)
                {
                    self.found.push(Incoming::Across {
                        link: link.clone(),
                        target: R::INFO.name,
                        show_target: crate::rules::show_key::<R::PrimaryKey>,
                    });
                }
            }
            Ok(())
        }
    }
    let table = D::MODELS
        .iter()
        .find(|m| m.name == target)
        .map_or("", |m| m.table);
    let mut find = Find {
        target,
        table,
        across,
        found: Vec::new(),
    };
    // The visitor itself never fails.
    let _ = D::visit_models(&mut find);
    find.found
}

/// The meta-table key prefix of the links into definition `definition` that other
/// definitions record: `links_into/<definition>/`, one entry per linking definition
/// (`links_into/<definition>/<linking definition>`).
pub(crate) fn links_into_prefix(definition: &str) -> String {
    format!("links_into/{definition}/")
}

/// The meta-table key `links_into/<definition>` (no trailing slash), present once any
/// definition has recorded links into `definition`: a removal reads this one key, and
/// scans the entries under [`links_into_prefix`] only when it is there. It is never
/// removed (a definition that stops linking leaves it; the scan then finds nothing),
/// so its absence is proof that nothing links in.
pub(crate) fn links_into_marker(definition: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(LINKS_INTO.len() + definition.len());
    key.extend_from_slice(LINKS_INTO.as_bytes());
    key.extend_from_slice(definition.as_bytes());
    key
}

const LINKS_INTO: &str = "links_into/";

/// A link of a model of another definition into one of this definition, as the meta
/// table records it (one line `<Model> <field> <link table> <target table>`): the
/// store of the target's definition honours it (`restrict`) without the linking
/// model's Rust type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CrossIncoming {
    /// The linking model's name.
    pub(crate) model: &'static str,
    /// The link field.
    pub(crate) field: &'static str,
    /// The link index table, `<Definition>/<Model>/<field>`.
    pub(crate) table: String,
    /// The linked model's primary table.
    pub(crate) target_table: String,
}

/// The meta-table text recording `links` (links of a model of one definition into
/// another): one line per link.
pub(crate) fn cross_lines<'a>(
    links: impl IntoIterator<Item = (&'static str, &'a LinkInfo)>,
) -> String {
    let mut out = String::new();
    for (model, link) in links {
        out.push_str(&format!(
            "{model} {} {} {}\n",
            link.field, link.table, link.target_table
        ));
    }
    out
}

/// Reads the links recorded by one `links_into/..` entry (lines that do not parse are
/// skipped: they name nothing this build can honour).
pub(crate) fn parse_cross(value: &[u8], out: &mut Vec<Arc<CrossIncoming>>) {
    for line in String::from_utf8_lossy(value).lines() {
        if let [model, field, table, target_table] =
            line.split_whitespace().collect::<Vec<_>>().as_slice()
        {
            out.push(Arc::new(CrossIncoming {
                model: intern(model),
                field: intern(field),
                table: (*table).to_owned(),
                target_table: (*target_table).to_owned(),
            }));
        }
    }
}

/// Every link into the models of `D` that another definition recorded in the meta
/// table, read in `txn` (the transaction of the removal that must honour them).
///
/// # Errors
/// [`NetabaseError::Backend`] on engine failure.
pub(crate) fn links_into<D: NetabaseDefinitionTrait, T: ReadTxn + ?Sized>(
    txn: &T,
) -> Result<Vec<Arc<CrossIncoming>>> {
    let mut out = Vec::new();
    if !exists(txn, super::meta::META_TABLE, &links_into_marker(D::NAME))? {
        return Ok(out);
    }
    txn.for_each_in(
        super::meta::META_TABLE,
        RawRange::prefix(links_into_prefix(D::NAME).as_bytes()),
        Direction::Forward,
        &mut |_, value| {
            parse_cross(value, &mut out);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// Whether a removal of the model with primary table `table` must be planned: a link
/// of `D` or of another definition (`across`) points at it.
pub(crate) fn removal_is_linked<D: NetabaseDefinitionTrait>(
    table: &'static str,
    across: &[Arc<CrossIncoming>],
) -> bool {
    is_linked_to::<D>(table) || across.iter().any(|l| l.target_table == table)
}

/// A name read from the meta table, as the `&'static str` that error reports hold.
/// Each distinct name is allocated once per process (the names of the models and
/// fields of a database: a handful).
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<BTreeSet<&'static str>> = std::sync::Mutex::new(BTreeSet::new());
    let mut names = match NAMES.lock() {
        Ok(names) => names,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The walk of [`Removal::plan`] without its reads, so that the synchronous and the
/// asynchronous executors share it: [`RemovalWalk::next`] names a removed record and
/// the links whose referrers must be read, [`RemovalWalk::referrers`] takes what was
/// read, [`RemovalWalk::finish`] decides.
pub(crate) struct RemovalWalk {
    /// Every record removed so far (the removal's own and the cascaded ones).
    removed: BTreeSet<RecordId>,
    queue: VecDeque<RecordId>,
    removal: Removal,
    /// `restrict` links found.
    restricted: Vec<Restricted>,
    /// The incoming links of each model met, computed once.
    links: BTreeMap<&'static str, Vec<Incoming>>,
    /// The links of other definitions into this one.
    across: Vec<Arc<CrossIncoming>>,
}

impl RemovalWalk {
    /// The walk of the removal of the records of `M` at `pks`; `across` holds the links
    /// of other definitions into `D` ([`links_into`]).
    pub(crate) fn new<D, M>(pks: &[Vec<u8>], across: Vec<Arc<CrossIncoming>>) -> Self
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let name = M::INFO.name;
        RemovalWalk {
            removed: pks.iter().map(|pk| (name, pk.clone())).collect(),
            queue: pks.iter().map(|pk| (name, pk.clone())).collect(),
            removal: Removal::default(),
            restricted: Vec::new(),
            links: BTreeMap::new(),
            across,
        }
    }

    /// The next removed record whose referrers are to be read, with the links to read
    /// them through ([`referrer_keys`]); `None` when the walk is done.
    pub(crate) fn next<D: NetabaseDefinitionTrait>(&mut self) -> Option<(Vec<u8>, Vec<Incoming>)> {
        let (model, key) = self.queue.pop_front()?;
        let across = &self.across;
        let links = self
            .links
            .entry(model)
            .or_insert_with(|| incoming::<D>(model, across))
            .clone();
        Some((key, links))
    }

    /// The records whose link `link` points at `target_key` (a removed record).
    pub(crate) fn referrers(
        &mut self,
        link: &Incoming,
        target_key: &[u8],
        referrers: Vec<Vec<u8>>,
    ) {
        let (referrer_model, index, link, show_referrer) = match link {
            Incoming::Within {
                referrer,
                index,
                link,
                show_referrer,
            } => (*referrer, *index, *link, *show_referrer),
            Incoming::Across {
                link,
                target,
                show_target,
            } => {
                // Restrict only: the records of another definition are not this
                // store's to remove or change.
                for referrer in referrers {
                    self.restricted.push(Restricted {
                        referrer: None,
                        model: link.model,
                        field: link.field,
                        target,
                        shown_referrer: crate::error::hex(&referrer),
                        shown_target: show_target(target_key),
                    });
                }
                return;
            }
        };
        for referrer in referrers {
            let id = (referrer_model, referrer);
            match link.on_delete {
                OnDelete::Cascade => {
                    if self.removed.insert(id.clone()) {
                        self.removal
                            .cascaded
                            .entry(id.0)
                            .or_default()
                            .push(id.1.clone());
                        self.queue.push_back(id);
                    }
                }
                OnDelete::SetNull => self
                    .removal
                    .nulls
                    .entry(id)
                    .or_default()
                    .push((index, target_key.to_vec())),
                OnDelete::Restrict => self.restricted.push(Restricted {
                    shown_referrer: show_referrer(&id.1),
                    shown_target: (link.show_target_key)(target_key),
                    model: id.0,
                    referrer: Some(id),
                    field: link.field,
                    target: link.target,
                }),
            }
        }
    }

    /// The removal the walk found.
    ///
    /// # Errors
    /// [`NetabaseError::StillReferenced`] when a `restrict` link points at a removed
    /// record from a record that stays.
    pub(crate) fn finish(self) -> Result<Removal> {
        if let Some(r) = self.restricted.iter().find(|r| {
            r.referrer
                .as_ref()
                .is_none_or(|id| !self.removed.contains(id))
        }) {
            return Err(NetabaseError::StillReferenced(Box::new(
                StillReferencedError {
                    target: r.target,
                    target_key: r.shown_target.clone(),
                    model: r.model,
                    field: r.field,
                    referrer_key: r.shown_referrer.clone(),
                },
            )));
        }
        let mut removal = self.removal;
        let removed = self.removed;
        removal.nulls.retain(|id, _| !removed.contains(id));
        Ok(removal)
    }
}

impl Removal {
    /// Plans the removal of the records of `M` at `pks`: follows every link to them,
    /// recursively through cascades.
    ///
    /// # Errors
    /// [`NetabaseError::StillReferenced`] when a `restrict` link points at a removed
    /// record from a record that stays; [`NetabaseError::Backend`] on engine failure.
    pub(crate) fn plan<D, M, T>(
        txn: &T,
        pks: &[Vec<u8>],
        across: Vec<Arc<CrossIncoming>>,
    ) -> Result<Removal>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
        T: ReadTxn + ?Sized,
    {
        let mut walk = RemovalWalk::new::<D, M>(pks, across);
        while let Some((key, links)) = walk.next::<D>() {
            for link in &links {
                let referrers = referrer_keys(txn, link.table(), &key)?;
                walk.referrers(link, &key, referrers);
            }
        }
        walk.finish()
    }

    /// The records cascaded per model, and the links cleared per record.
    pub(crate) fn into_parts(self) -> (CascadedRecords, NulledLinks) {
        (self.cascaded, self.nulls)
    }

    /// Whether the removal touches nothing beyond its own records.
    pub(crate) fn is_empty(&self) -> bool {
        self.cascaded.is_empty() && self.nulls.is_empty()
    }

    /// Writes the planned link clearings, then the cascaded removals, through `writer`.
    ///
    /// # Errors
    /// As the writes; a record that does not decode is a refusal.
    pub(crate) fn execute<D: NetabaseDefinitionTrait, B: Backend>(
        self,
        writer: &Writer<'_, B>,
    ) -> Result<()> {
        struct Run<'w, 's, B: Backend> {
            writer: &'w Writer<'s, B>,
            removal: Removal,
            removing: bool,
        }
        impl<D: NetabaseDefinitionTrait, B: Backend> ModelVisitor<D> for &mut Run<'_, '_, B> {
            type Output = Result<()>;

            fn visit<R: NetabaseModelTrait<D>>(self) -> Result<()> {
                let name = R::INFO.name;
                if self.removing {
                    if let Some(pks) = self.removal.cascaded.remove(name) {
                        let mut sink: Vec<Option<R>> = Vec::new();
                        for chunk in pks.chunks(1024) {
                            self.writer.remove_chunk::<D, R>(chunk, &mut sink)?;
                            sink.clear();
                        }
                    }
                    return Ok(());
                }
                let mut updated = Vec::new();
                for ((model, pk), links) in &self.removal.nulls {
                    if *model != name {
                        continue;
                    }
                    let Some(bytes) = self.writer.reader().get(R::INFO.table, pk)? else {
                        continue;
                    };
                    let mut record = decode_model::<D, R>(pk, &bytes)?;
                    for (link, target) in links {
                        record.unlink(*link, target);
                    }
                    updated.push(record);
                }
                for record in updated {
                    self.writer.put_checked::<D, R>(record, false)?;
                }
                Ok(())
            }
        }
        let mut run = Run {
            writer,
            removal: self,
            removing: false,
        };
        D::visit_models(&mut run)?;
        run.removing = true;
        D::visit_models(&mut run)
    }
}

/// The links of the model named `model` of `D`.
pub(crate) fn links_of<D: NetabaseDefinitionTrait>(model: &str) -> &'static [LinkInfo] {
    struct Links;
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Links {
        type Output = &'static [LinkInfo];

        fn visit<R: NetabaseModelTrait<D>>(self) -> &'static [LinkInfo] {
            R::LINKS
        }
    }
    visit_named::<D, _>(model, Links).unwrap_or(&[])
}

/// Rebuilds every link index of the model named `model` from its stored records (at
/// open: a new link, or records of an older model version).
///
/// # Errors
/// [`NetabaseError::Decode`] or [`NetabaseError::Version`] for a record that does not
/// decode; [`NetabaseError::Backend`] on engine failure.
pub(crate) fn build_link_indexes<D: NetabaseDefinitionTrait, B: Backend>(
    writer: &Writer<'_, B>,
    model: &str,
) -> Result<()> {
    struct Build<'w, 's, B: Backend> {
        writer: &'w Writer<'s, B>,
    }
    impl<D: NetabaseDefinitionTrait, B: Backend> ModelVisitor<D> for Build<'_, '_, B> {
        type Output = Result<()>;

        fn visit<R: NetabaseModelTrait<D>>(self) -> Result<()> {
            for link in R::LINKS {
                self.writer.clear_internal(link.table)?;
            }
            let mut plan = super::plan::WritePlan::default();
            self.writer.reader().for_each_in(
                R::INFO.table,
                RawRange::all(),
                Direction::Forward,
                &mut |pk, value| {
                    let record = decode_model::<D, R>(pk, value)?;
                    super::plan::plan_links::<D, R>(pk, None, Some(&record), &mut plan);
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            self.writer.write_internal(&plan.ops)
        }
    }
    visit_named::<D, _>(model, Build { writer }).unwrap_or(Ok(()))
}
