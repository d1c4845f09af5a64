//! Following links: the records a link points at, the records that link to one, a
//! child's parent; and migrating a tree. Reads go through the link indexes that the
//! write pipeline keeps exact.

use crate::backend::{Backend, ReadTxn};
use crate::codec::key::KeyCodec;
use crate::error::Result;
use crate::rules::{Child, CrossLink, CrossTarget, Link};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::links::referrer_keys;
use super::migrate::{self, MigrateProgress};
use super::read::get_raw;
use super::store::NetabaseStore;
use super::tree::Tree;
use super::txn::{TreeView, ViewTxn};
use super::write::Writer;

/// The records of `R` (a model of definition `RD`) whose links point at the record
/// with encoded primary key `target` of the primary table `target_table`, each once, in
/// primary-key order.
fn referrers_of<RD, R, T>(txn: &T, target_table: &str, target: &[u8]) -> Result<Vec<R>>
where
    RD: NetabaseDefinitionTrait,
    R: NetabaseModelTrait<RD>,
    T: ReadTxn + ?Sized,
{
    let mut keys = Vec::new();
    for link in R::LINKS.iter().filter(|l| l.target_table == target_table) {
        keys.extend(referrer_keys(txn, link.table, target)?);
    }
    keys.sort();
    keys.dedup();
    records_at::<RD, R, T>(txn, keys)
}

/// The records of `R` (a model of definition `RD`) at the encoded primary keys `keys`,
/// in the same order; a key without a record is passed over.
fn records_at<RD, R, T>(txn: &T, keys: Vec<Vec<u8>>) -> Result<Vec<R>>
where
    RD: NetabaseDefinitionTrait,
    R: NetabaseModelTrait<RD>,
    T: ReadTxn + ?Sized,
{
    let mut out = Vec::with_capacity(keys.len());
    for pk in keys {
        if let Some(record) = get_raw::<RD, R, T>(txn, &pk)? {
            out.push(record);
        }
    }
    Ok(out)
}

impl<D, M, T> TreeView<'_, D, M, T>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ViewTxn,
{
    /// Every record of `R` that links to the record of this model with primary key
    /// `key`, through any of `R`'s `#[link(..)]` fields, in primary-key order (a record
    /// linking through two fields is returned once).
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn referrers<R: NetabaseModelTrait<D>>(
        &self,
        key: impl Into<M::PrimaryKey>,
    ) -> Result<Vec<R>> {
        referrers_of::<D, R, _>(self.txn().raw(), M::INFO.table, &key.into().to_key_bytes())
    }

    /// The records that link `L` (a generated link type, e.g. `PostAuthorIdLink`) of
    /// `record` points at: one for a plain link, none or one for an `Option`, one per
    /// key of a `Vec`, in the field's order.
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn follow<L: Link<D, From = M>>(&self, record: &M) -> Result<Vec<L::To>> {
        let mut keys = Vec::new();
        record.link_keys(L::INDEX, &mut keys);
        records_at::<D, L::To, _>(self.txn().raw(), keys)
    }

    /// The parent of `record` (a model declared `#[netabase(Def, parent = Parent)]`).
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn parent(&self, record: &M) -> Result<Option<M::Parent>>
    where
        M: Child<D>,
    {
        Ok(self.follow::<M::ParentLink>(record)?.into_iter().next())
    }

    /// [`TreeView::referrers`] for a model `R` of another definition held in the same
    /// database (`#[link(this_module::Model)]` in `R`): every record of `R` that links
    /// to the record of this model with primary key `key`, in primary-key order.
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn referrers_across<R>(&self, key: impl Into<M::PrimaryKey>) -> Result<Vec<R>>
    where
        R: CrossTarget + NetabaseModelTrait<<R as CrossTarget>::Definition>,
    {
        referrers_of::<R::Definition, R, _>(
            self.txn().raw(),
            M::INFO.table,
            &key.into().to_key_bytes(),
        )
    }

    /// [`TreeView::follow`] for a link into another definition held in the same
    /// database (`L` a generated link type of a `#[link(other_module::Model)]` field).
    ///
    /// # Errors
    /// As [`TreeView::get`].
    pub fn follow_across<L: CrossLink<D, From = M>>(&self, record: &M) -> Result<Vec<L::To>> {
        let mut keys = Vec::new();
        record.link_keys(L::INDEX, &mut keys);
        records_at::<<L::To as CrossTarget>::Definition, L::To, _>(self.txn().raw(), keys)
    }

    /// How many records were written by another version of the model than the code's
    /// (they are upgraded when read; [`TreeView::migrate`] rewrites them).
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] for a value whose header does not decode;
    /// [`crate::NetabaseError::Backend`] on engine failure.
    pub fn outdated(&self) -> Result<u64> {
        migrate::count_outdated::<D, M, T::Raw>(self.txn().raw())
    }
}

impl<'s, D, M, B> TreeView<'_, D, M, Writer<'s, B>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    /// Rewrites every record written by an older version of the model at the code's
    /// version, through the write pipeline; returns how many. `progress` is called
    /// before the first record and after every chunk.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Version`] naming the model, both versions and the key
    /// for a value newer than the code or without an upgrade path; any refusal of the
    /// pipeline (an upgraded record that fails a validator). All or nothing within the
    /// transaction: every record is upgraded and checked before the first is written,
    /// so such a refusal writes nothing and the transaction stays usable; a failure
    /// after records were written poisons the transaction, whose commit then fails
    /// with [`crate::NetabaseError::Poisoned`] and applies nothing.
    pub fn migrate(&self, mut progress: impl FnMut(MigrateProgress)) -> Result<u64> {
        migrate::migrate_model::<D, M, B>(self.txn(), &mut progress)
    }
}

impl<D, M, B> Tree<D, M, B>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    /// [`TreeView::referrers`] in a read transaction of its own.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn referrers<R: NetabaseModelTrait<D>>(
        &self,
        key: impl Into<M::PrimaryKey>,
    ) -> Result<Vec<R>> {
        self.read(|view| view.referrers::<R>(key))
    }

    /// [`TreeView::follow`] in a read transaction of its own.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn follow<L: Link<D, From = M>>(&self, record: &M) -> Result<Vec<L::To>> {
        self.read(|view| view.follow::<L>(record))
    }

    /// [`TreeView::referrers_across`] in a read transaction of its own.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn referrers_across<R>(&self, key: impl Into<M::PrimaryKey>) -> Result<Vec<R>>
    where
        R: CrossTarget + NetabaseModelTrait<<R as CrossTarget>::Definition>,
    {
        self.read(|view| view.referrers_across::<R>(key))
    }

    /// [`TreeView::follow_across`] in a read transaction of its own.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn follow_across<L: CrossLink<D, From = M>>(&self, record: &M) -> Result<Vec<L::To>> {
        self.read(|view| view.follow_across::<L>(record))
    }

    /// [`TreeView::parent`] in a read transaction of its own.
    ///
    /// # Errors
    /// As [`Tree::get`].
    pub fn parent(&self, record: &M) -> Result<Option<M::Parent>>
    where
        M: Child<D>,
    {
        self.read(|view| view.parent(record))
    }

    /// [`TreeView::outdated`] in a read transaction of its own.
    ///
    /// # Errors
    /// As [`TreeView::outdated`].
    pub fn outdated(&self) -> Result<u64> {
        self.read(|view| view.outdated())
    }

    /// [`TreeView::migrate`] in one write transaction: every outdated record is
    /// rewritten, or none.
    ///
    /// # Examples
    /// See `examples/schema_evolution.rs`.
    ///
    /// # Errors
    /// As [`TreeView::migrate`]; nothing is applied then.
    pub fn migrate(&self, mut progress: impl FnMut(MigrateProgress)) -> Result<u64> {
        self.write(|w| migrate::migrate_model::<D, M, B>(w, &mut progress))
    }
}

impl<D, B> NetabaseStore<D, B>
where
    D: NetabaseDefinitionTrait,
    B: Backend,
{
    /// [`Tree::migrate`] for every model of the definition, in one write transaction;
    /// returns how many records were rewritten.
    ///
    /// # Errors
    /// As [`TreeView::migrate`]; nothing is applied then.
    pub fn migrate(&self, mut progress: impl FnMut(MigrateProgress)) -> Result<u64> {
        self.write_with(|w| migrate::migrate_all::<D, B>(w, &mut progress))
    }
}
