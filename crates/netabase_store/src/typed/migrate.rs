//! Eager migration: rewriting every value written by an older model version at the
//! code's version, through the write pipeline.
//!
//! Reads upgrade old values on the fly (`decode_model` and the model's
//! `decode_older` chain), so a migration is never required; it makes the stored bytes
//! current, after which no read pays for an upgrade. Each rewritten record is a put of
//! the upgraded model: validators and links are checked and the indexes stay exact
//! (they describe the upgraded records already: the store rebuilds a model's indexes
//! when it opens a database written by another version of the model).

use std::ops::ControlFlow;

use crate::backend::{Backend, Direction, RawRange, ReadTxn};
use crate::codec::value::{decode_model, split_header};
use crate::error::Result;
use crate::schema::{ModelVisitor, visit_named};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

use super::write::Writer;

/// Progress of a migration, reported before the first record and after every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateProgress {
    /// The model being migrated.
    pub model: &'static str,
    /// Records of the model rewritten so far.
    pub done: u64,
    /// Records of the model that were written by another version.
    pub total: u64,
}

/// Records rewritten per call of the pipeline (and per progress report).
const STEP: usize = 256;

/// The encoded keys and values of the records of `M` not written by the code's version.
fn outdated_entries<D, M, T>(txn: &T) -> Result<Vec<(Vec<u8>, Vec<u8>)>>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    let mut out = Vec::new();
    txn.for_each_in(
        M::INFO.table,
        RawRange::all(),
        Direction::Forward,
        &mut |pk, value| {
            let (version, _) = split_header(M::INFO.table, pk, value)?;
            if version != M::INFO.version {
                out.push((pk.to_vec(), value.to_vec()));
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// How many records of `M` were written by another version than the code's.
pub(crate) fn count_outdated<D, M, T>(txn: &T) -> Result<u64>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    T: ReadTxn + ?Sized,
{
    let mut count = 0u64;
    txn.for_each_in(
        M::INFO.table,
        RawRange::all(),
        Direction::Forward,
        &mut |pk, value| {
            let (version, _) = split_header(M::INFO.table, pk, value)?;
            count += u64::from(version != M::INFO.version);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(count)
}

/// Rewrites every outdated record of `M` at the code's version; returns how many. All
/// or nothing within the writer's transaction: a refusal writes nothing, and a failure
/// after the first write poisons the transaction.
///
/// # Errors
/// [`crate::NetabaseError::Version`] naming the model, both versions and the key for a
/// value newer than the code or with no upgrade path; any error of the pipeline
/// (a validator the upgraded record fails, a dangling link).
pub(crate) fn migrate_model<D, M, B>(
    writer: &Writer<'_, B>,
    progress: &mut dyn FnMut(MigrateProgress),
) -> Result<u64>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    let entries = outdated_entries::<D, M, _>(writer.reader())?;
    let total = entries.len() as u64;
    progress(MigrateProgress {
        model: M::INFO.name,
        done: 0,
        total,
    });
    // Every record is upgraded, then checked, before the first is written: a value
    // without an upgrade path or an upgraded record that a rule refuses refuses the
    // whole migration with nothing written, and the transaction stays usable.
    let models = entries
        .iter()
        .map(|(pk, value)| decode_model::<D, M>(pk, value))
        .collect::<Result<Vec<M>>>()?;
    drop(entries);
    let mut done = 0u64;
    writer.put_all::<D, M>(&models, STEP, &mut |written| {
        done += written as u64;
        progress(MigrateProgress {
            model: M::INFO.name,
            done,
            total,
        });
    })?;
    Ok(total)
}

/// [`migrate_model`] for every model of `D`; returns how many records were rewritten.
pub(crate) fn migrate_all<D, B>(
    writer: &Writer<'_, B>,
    progress: &mut dyn FnMut(MigrateProgress),
) -> Result<u64>
where
    D: NetabaseDefinitionTrait,
    B: Backend,
{
    struct All<'w, 's, 'p, B: Backend> {
        writer: &'w Writer<'s, B>,
        progress: &'p mut dyn FnMut(MigrateProgress),
        total: u64,
    }
    impl<D: NetabaseDefinitionTrait, B: Backend> ModelVisitor<D> for &mut All<'_, '_, '_, B> {
        type Output = Result<()>;

        fn visit<M: NetabaseModelTrait<D>>(self) -> Result<()> {
            self.total += migrate_model::<D, M, B>(self.writer, self.progress)?;
            Ok(())
        }
    }
    let mut all = All {
        writer,
        progress,
        total: 0,
    };
    D::visit_models(&mut all)?;
    Ok(all.total)
}

/// Whether the model named `model` of `D` reads values written by `version` (through
/// its `from` chain).
pub(crate) fn has_upgrade<D: NetabaseDefinitionTrait>(model: &str, version: u16) -> bool {
    struct Upgrade(u16);
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for Upgrade {
        type Output = bool;

        fn visit<M: NetabaseModelTrait<D>>(self) -> bool {
            // The hook answers `None` exactly when no upgrade exists; the empty body
            // only makes a decoding attempt fail.
            M::decode_older(self.0, &[]).is_some()
        }
    }
    visit_named::<D, _>(model, Upgrade(version)).unwrap_or(false)
}
