//! The decisions of one chunk of writes, apart from the engine that carries them out.
//!
//! An executor only moves bytes between a chunk and the engine, in this order:
//! 1. write the chunk's primary [`entries`](PutChunk::entries) (or delete its keys),
//!    reporting each value the engine replaced or removed to [`Decisions::replaced`];
//! 2. when that step fails, [`Decisions::abandon`] says what to put back and which index
//!    writes of the records before the failure stand;
//! 3. for every [`Decisions::checks`], read the unique index and ask
//!    [`PutChunk::refusal`] whether the write must be refused (and undone);
//! 4. apply [`Decisions::index_writes`] and log [`PutChunk::changes`] /
//!    [`RemoveChunk::changes`].
//!
//! Every decision (decoding the old record, planning index writes, what a failure or a
//! refusal leaves, what the change set records) is made here, so the synchronous
//! executor (`write.rs`) and an asynchronous one that awaits each step make the same
//! writes.

use crate::backend::WriteOp;
use crate::codec::key::KeyCodec;
use crate::codec::value::decode_model;
use crate::error::{NetabaseError, Result, UniqueViolation};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyEnum};

use super::changes::Change;
use super::plan::{self, UniqueCheck, WritePlan};

/// What the engine reported for a chunk so far, and the index writes planned from it.
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    plan: WritePlan,
    /// The value each write replaced or removed, where it is kept (for the log, and to
    /// undo a write that a unique check refuses).
    olds: Vec<Option<Vec<u8>>>,
    /// A stored record that a write replaced or removed but could not decode: the
    /// write's position in the chunk and the bytes to put back.
    undecodable: Option<(usize, Vec<u8>)>,
}

/// What is left to do after a chunk's primary writes failed.
#[derive(Debug)]
pub(crate) struct Abandon {
    /// Put these bytes back at this key of the primary table (an undecodable record the
    /// failed write replaced).
    pub(crate) restore: Option<(Vec<u8>, Vec<u8>)>,
    /// The index writes of the records before the failure, which stand.
    pub(crate) index_writes: Vec<WriteOp<'static>>,
    /// How many records of the chunk stand.
    pub(crate) stand: usize,
    /// The values the standing writes replaced or removed, where they are kept.
    pub(crate) olds: Vec<Option<Vec<u8>>>,
}

/// A write that a unique check refused: the error, and the primary value to put back
/// (`None`: remove the key, the write created it).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) key: Vec<u8>,
    pub(crate) restore: Option<Vec<u8>>,
    pub(crate) error: NetabaseError,
}

impl Decisions {
    /// The unique keys the chunk's records claim, to check before the index writes.
    pub(crate) fn checks(&self) -> &[UniqueCheck] {
        &self.plan.checks
    }

    /// Ends a chunk whose primary writes failed. When a stored record did not decode,
    /// its bytes go back and the writes before it stand, with their index writes, as
    /// writing them one by one would have left them; after any other failure nothing of
    /// the chunk stands (the transaction is poisoned anyway).
    pub(crate) fn abandon(self, pks: &[impl AsRef<[u8]>]) -> Abandon {
        match self.undecodable {
            Some((at, bytes)) if at < pks.len() => Abandon {
                restore: Some((pks[at].as_ref().to_vec(), bytes)),
                index_writes: self.plan.ops,
                stand: at,
                olds: self.olds,
            },
            _ => Abandon {
                restore: None,
                index_writes: Vec::new(),
                stand: 0,
                olds: Vec::new(),
            },
        }
    }

    /// The index writes, once every check passed.
    pub(crate) fn index_writes(self) -> (Vec<WriteOp<'static>>, Vec<Option<Vec<u8>>>) {
        (self.plan.ops, self.olds)
    }

    /// Decodes the record that write `at` replaced or removed; when it does not decode,
    /// keeps its bytes so that the write can be undone.
    fn decode_old<D, M>(&mut self, at: usize, pk: &[u8], bytes: &[u8]) -> Result<M>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        decode_model::<D, M>(pk, bytes)
            .inspect_err(|_| self.undecodable = Some((at, bytes.to_vec())))
    }
}

/// A chunk of puts of model `M`: the models, their encoded keys and values.
pub(crate) struct PutChunk<'m, M> {
    models: &'m [M],
    pks: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    keep_olds: bool,
}

impl<'m, M> PutChunk<'m, M> {
    /// A chunk writing `models` as `values` (encoded, header included); `logging`
    /// keeps the replaced values for the change set.
    pub(crate) fn new<D>(models: &'m [M], values: Vec<Vec<u8>>, logging: bool) -> Self
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        PutChunk {
            models,
            pks: models
                .iter()
                .map(|m| m.primary_key().to_key_bytes())
                .collect(),
            values,
            keep_olds: logging || M::INFO.secondary_keys.iter().any(|k| k.unique),
        }
    }

    /// The encoded primary keys.
    pub(crate) fn pks(&self) -> &[Vec<u8>] {
        &self.pks
    }

    /// The primary-table entries to write, in order.
    pub(crate) fn entries(&self) -> Vec<(&[u8], &[u8])> {
        self.pks
            .iter()
            .zip(&self.values)
            .map(|(pk, value)| (pk.as_slice(), value.as_slice()))
            .collect()
    }

    /// Step 1: write `i` replaced `old` (`None` for a new key). Plans the index writes
    /// that move the old record's entries to the new one's.
    ///
    /// # Errors
    /// [`NetabaseError::Decode`] or [`NetabaseError::Version`] when the old record
    /// cannot be read: the write must be undone ([`Decisions::abandon`]).
    pub(crate) fn replaced<D>(
        &self,
        decisions: &mut Decisions,
        i: usize,
        old: Option<&[u8]>,
    ) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let (pk, model) = (&self.pks[i], &self.models[i]);
        match old {
            // Without secondary keys or links there is nothing to plan, and nothing to read.
            Some(_) if M::INFO.secondary_keys.is_empty() && M::LINKS.is_empty() => {}
            Some(bytes) => {
                let old_model = decisions.decode_old::<D, M>(i, pk, bytes)?;
                plan::plan_put::<D, M>(pk, Some(&old_model), model, &mut decisions.plan);
            }
            None => plan::plan_put::<D, M>(pk, None, model, &mut decisions.plan),
        }
        decisions
            .olds
            .push(old.filter(|_| self.keep_olds).map(<[u8]>::to_vec));
        Ok(())
    }

    /// Step 3: whether `check` fails now that the unique index holds `holder` at its
    /// key. A model with a unique key is written one record per chunk, so the check
    /// concerns the chunk's only record.
    pub(crate) fn refusal<D>(
        &self,
        decisions: &Decisions,
        check: &UniqueCheck,
        holder: Option<Vec<u8>>,
    ) -> Option<Refusal>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let pk = self.pks.first()?;
        let holder = holder.filter(|h| h != pk)?;
        Some(Refusal {
            key: pk.clone(),
            restore: decisions.olds.first().cloned().flatten(),
            error: unique_violation::<D, M>(self.models.first()?, check, holder),
        })
    }

    /// Step 4: the changes of the first `n` records, moving their keys and values.
    pub(crate) fn changes<D>(self, olds: Vec<Option<Vec<u8>>>, n: usize) -> Vec<Change>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.pks
            .into_iter()
            .zip(olds)
            .zip(self.values)
            .take(n)
            .map(|((key, old), new)| Change::Put {
                model: M::INFO.name,
                table: M::INFO.table,
                key,
                old,
                new,
            })
            .collect()
    }
}

/// A chunk of removals of model `M` by encoded primary key.
pub(crate) struct RemoveChunk<'k> {
    pks: &'k [Vec<u8>],
    logging: bool,
}

impl<'k> RemoveChunk<'k> {
    /// A chunk removing the records at `pks`; `logging` keeps the removed values for
    /// the change set.
    pub(crate) fn new(pks: &'k [Vec<u8>], logging: bool) -> Self {
        RemoveChunk { pks, logging }
    }

    /// The keys to delete, in order.
    pub(crate) fn keys(&self) -> Vec<&'k [u8]> {
        self.pks.iter().map(Vec::as_slice).collect()
    }

    /// Step 1: removal `i` removed `old` (`None`: the key was absent). Plans the
    /// removal of the record's index entries and returns the record.
    ///
    /// # Errors
    /// As [`PutChunk::replaced`].
    pub(crate) fn removed<D, M>(
        &self,
        decisions: &mut Decisions,
        i: usize,
        old: Option<&[u8]>,
    ) -> Result<Option<M>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let pk = &self.pks[i];
        let old_model = match old {
            Some(bytes) => Some(decisions.decode_old::<D, M>(i, pk, bytes)?),
            None => None,
        };
        if let Some(old_model) = &old_model {
            plan::plan_remove::<D, M>(pk, old_model, &mut decisions.plan);
        }
        decisions
            .olds
            .push(old.filter(|_| self.logging).map(<[u8]>::to_vec));
        Ok(old_model)
    }

    /// Step 4: the changes of the first `n` removals that found a record.
    pub(crate) fn changes<D, M>(&self, olds: Vec<Option<Vec<u8>>>, n: usize) -> Vec<Change>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.pks
            .iter()
            .zip(olds)
            .take(n)
            .filter_map(|(key, old)| {
                Some(Change::Removed {
                    model: M::INFO.name,
                    table: M::INFO.table,
                    key: key.clone(),
                    old: old?,
                })
            })
            .collect()
    }
}

/// The tables a `clear` of `M` empties: its primary table, then each secondary index
/// and each link index.
pub(crate) fn cleared_tables<D, M>() -> impl Iterator<Item = &'static str>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    std::iter::once(M::INFO.table)
        .chain(M::INFO.secondary_keys.iter().map(|f| f.table))
        .chain(M::LINKS.iter().map(|l| l.table))
}

/// The change a `clear` of `M` records.
pub(crate) fn cleared<D, M>() -> Vec<Change>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    vec![Change::Cleared {
        model: M::INFO.name,
        table: M::INFO.table,
    }]
}

/// The error of a unique check that found another record's primary key `holder`.
fn unique_violation<D, M>(model: &M, check: &UniqueCheck, holder: Vec<u8>) -> NetabaseError
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let field = M::INFO.secondary_keys[check.index].field;
    let value = model
        .secondary_keys()
        .into_iter()
        .find(|k| k.index() == check.index)
        .map_or_else(|| crate::error::hex(&check.key), |k| format!("{k:?}"));
    let shown = match M::PrimaryKey::from_key_bytes(&holder) {
        Ok(key) => format!("{key:?}"),
        Err(_) => crate::error::hex(&holder),
    };
    NetabaseError::UniqueViolation(Box::new(UniqueViolation {
        model: M::INFO.name,
        field,
        value,
        holder: shown,
        holder_key: holder,
    }))
}
