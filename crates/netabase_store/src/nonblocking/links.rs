//! Links between models on the asynchronous path: the same rules as the synchronous
//! executor, from the same pieces (`typed/links.rs` decides, `typed/plan.rs` and
//! `typed/chunk.rs` plan the index writes), with the reads and writes awaited.
//!
//! A put is checked before anything of it is written: every link's target must exist
//! ([`LinkTargets`]). A removal of a record that others link to is planned before its
//! first write ([`RemovalWalk`], reading the link indexes): a `restrict` link refuses it
//! and nothing is applied; otherwise the `set_null` clearings and the cascaded removals
//! are written, then the removal itself, in the same transaction.
//!
//! The typed steps of a cascade or a clearing (decoding the record, planning its index
//! writes) need the Rust type of a model known here by its name: a
//! [`ModelVisitor`] finds it and runs the pure step, between two awaited engine calls.

use crate::backend::{Direction, RawRange, WriteOp};
use crate::codec::value::{decode_model, encode_value};
use crate::error::{NetabaseError, Result, UniqueViolation};
use crate::schema::{ModelVisitor, visit_named};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};
use crate::typed::changes::Change;
use crate::typed::chunk::{Decisions, RemoveChunk};
use std::sync::Arc;

use crate::typed::links::{
    CrossIncoming, LinkTargets, Removal, RemovalWalk, dangling, links_into_marker,
    links_into_prefix, links_of, parse_cross,
};
use crate::typed::meta::META_TABLE;
use crate::typed::plan::{WritePlan, plan_links, plan_put};
use crate::typed::write::CHUNK;

use super::backend::AsyncWriteTxn;
use super::write::AsyncWriter;

impl<W: AsyncWriteTxn> AsyncWriter<W> {
    /// Refuses `models` (all written by one call) if a link points at a record that
    /// neither the store nor the call holds.
    pub(crate) async fn check_links<D, M>(&self, models: &[M]) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        for (index, key) in LinkTargets::of::<D, M>(models).pending {
            let table = M::LINKS[index].target_table;
            if self.reader().get(table, &key).await?.is_none() {
                return Err(dangling::<D, M>(index, &key));
            }
        }
        Ok(())
    }

    /// Every link of another definition into `D` that the meta table records
    /// ([`crate::typed::links::links_into`]), read in this transaction.
    pub(crate) async fn links_into<D: NetabaseDefinitionTrait>(
        &self,
    ) -> Result<Vec<Arc<CrossIncoming>>> {
        let mut out = Vec::new();
        let marker = links_into_marker(D::NAME);
        if self.reader().get(META_TABLE, &marker).await?.is_none() {
            return Ok(out);
        }
        let prefix = links_into_prefix(D::NAME);
        for (_, value) in self
            .reader()
            .range(
                META_TABLE,
                RawRange::prefix(prefix.as_bytes()),
                Direction::Forward,
                None,
            )
            .await?
        {
            parse_cross(&value, &mut out);
        }
        Ok(out)
    }

    /// Everything the removal of the records of `M` at `pks` implies through links.
    ///
    /// # Errors
    /// [`NetabaseError::StillReferenced`] when a `restrict` link refuses it.
    pub(crate) async fn plan_removal<D, M>(
        &self,
        pks: &[Vec<u8>],
        across: Vec<Arc<CrossIncoming>>,
    ) -> Result<Removal>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let mut walk = RemovalWalk::new::<D, M>(pks, across);
        while let Some((key, links)) = walk.next::<D>() {
            for link in &links {
                let referrers = self
                    .reader()
                    .range_keys(link.table(), RawRange::prefix(&key), None)
                    .await?
                    .into_iter()
                    .map(|entry| entry[key.len()..].to_vec())
                    .collect();
                walk.referrers(link, &key, referrers);
            }
        }
        walk.finish()
    }

    /// Writes a planned removal's link clearings, then its cascaded removals.
    pub(crate) async fn execute_removal<D: NetabaseDefinitionTrait>(
        &self,
        removal: Removal,
    ) -> Result<()> {
        let (cascaded, nulls) = removal.into_parts();
        for ((model, pk), links) in nulls {
            let Some(table) = table_of::<D>(model) else {
                continue;
            };
            let Some(bytes) = self.reader().get(table, &pk).await? else {
                continue;
            };
            let step = Unlink {
                pk: &pk,
                bytes: &bytes,
                links: &links,
            };
            let Some(step) = visit_named::<D, _>(model, step) else {
                continue;
            };
            let (value, plan) = step?;
            let key = pk.clone();
            let new = value.clone();
            let txn = self.reader();
            txn.put_each(table, vec![(key, value)]).await?;
            for check in &plan.checks {
                if let Some(holder) = txn.get(check.table, &check.key).await?
                    && holder != pk
                {
                    return Err(unique_violation::<D>(
                        model,
                        check.index,
                        &check.key,
                        holder,
                    ));
                }
            }
            self.apply_by_table(plan.ops).await?;
            self.log(|| {
                vec![Change::Put {
                    model,
                    table,
                    key: pk,
                    old: Some(bytes),
                    new,
                }]
            });
        }
        for (model, pks) in cascaded {
            let Some(table) = table_of::<D>(model) else {
                continue;
            };
            for chunk in pks.chunks(CHUNK) {
                let olds = self.reader().delete_each(table, chunk.to_vec()).await?;
                let step = Cascade {
                    pks: chunk,
                    olds: &olds,
                    logging: self.logging(),
                };
                if let Some(step) = visit_named::<D, _>(model, step) {
                    let (ops, changes) = step?;
                    self.apply_by_table(ops).await?;
                    self.log(|| changes);
                }
            }
        }
        Ok(())
    }

    /// Builds every link index of the model named `model` from its stored records (at
    /// open: a new link, or records of an older model version).
    pub(crate) async fn build_link_indexes<D: NetabaseDefinitionTrait>(
        &self,
        model: &'static str,
    ) -> Result<()> {
        let Some(table) = table_of::<D>(model) else {
            return Ok(());
        };
        for link in links_of::<D>(model) {
            self.clear_internal(link.table).await?;
        }
        let records = self
            .reader()
            .range(table, RawRange::all(), Direction::Forward, None)
            .await?;
        let plan = match visit_named::<D, _>(model, BuildLinks { records: &records }) {
            Some(plan) => plan?,
            None => WritePlan::default(),
        };
        self.write_internal(plan.ops).await
    }
}

/// The primary table of the model named `model` of `D`.
fn table_of<D: NetabaseDefinitionTrait>(model: &str) -> Option<&'static str> {
    struct Table;
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Table {
        type Output = &'static str;

        fn visit<R: NetabaseModelTrait<D>>(self) -> &'static str {
            R::INFO.table
        }
    }
    visit_named::<D, _>(model, Table)
}

/// A unique key that a clearing would take from another record.
fn unique_violation<D: NetabaseDefinitionTrait>(
    model: &'static str,
    index: usize,
    key: &[u8],
    holder: Vec<u8>,
) -> NetabaseError {
    struct Field(usize);
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Field {
        type Output = Option<&'static str>;

        fn visit<R: NetabaseModelTrait<D>>(self) -> Option<&'static str> {
            R::INFO.secondary_keys.get(self.0).map(|f| f.field)
        }
    }
    NetabaseError::UniqueViolation(Box::new(UniqueViolation {
        model,
        field: visit_named::<D, _>(model, Field(index))
            .flatten()
            .unwrap_or(""),
        value: crate::error::hex(key),
        holder: crate::error::hex(&holder),
        holder_key: holder,
    }))
}

/// The typed step of a `set_null` clearing: the record without its links to removed
/// targets, encoded, and the index writes that follow.
struct Unlink<'a> {
    pk: &'a [u8],
    bytes: &'a [u8],
    links: &'a [(usize, Vec<u8>)],
}

impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Unlink<'_> {
    type Output = Result<(Vec<u8>, WritePlan)>;

    fn visit<R: NetabaseModelTrait<D>>(self) -> Self::Output {
        let old = decode_model::<D, R>(self.pk, self.bytes)?;
        let mut record = old.clone();
        for (link, target) in self.links {
            record.unlink(*link, target);
        }
        let value = encode_value(R::INFO.name, R::INFO.version, &record)?;
        let mut plan = WritePlan::default();
        plan_put::<D, R>(self.pk, Some(&old), &record, &mut plan);
        Ok((value, plan))
    }
}

/// The typed step of a cascade: the index writes (and changes) of records removed.
struct Cascade<'a> {
    pks: &'a [Vec<u8>],
    olds: &'a [Option<Vec<u8>>],
    logging: bool,
}

impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Cascade<'_> {
    type Output = Result<(Vec<WriteOp<'static>>, Vec<Change>)>;

    fn visit<R: NetabaseModelTrait<D>>(self) -> Self::Output {
        let chunk = RemoveChunk::new(self.pks, self.logging);
        let mut decisions = Decisions::default();
        for (i, old) in self.olds.iter().enumerate() {
            chunk.removed::<D, R>(&mut decisions, i, old.as_deref())?;
        }
        let (ops, olds) = decisions.index_writes();
        let changes = chunk.changes::<D, R>(olds, self.pks.len());
        Ok((ops, changes))
    }
}

/// The typed step of building link indexes: the entries of every stored record.
struct BuildLinks<'a> {
    records: &'a [(Vec<u8>, Vec<u8>)],
}

impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for BuildLinks<'_> {
    type Output = Result<WritePlan>;

    fn visit<R: NetabaseModelTrait<D>>(self) -> Self::Output {
        let mut plan = WritePlan::default();
        for (pk, value) in self.records {
            let record = decode_model::<D, R>(pk, value)?;
            plan_links::<D, R>(pk, None, Some(&record), &mut plan);
        }
        Ok(plan)
    }
}
