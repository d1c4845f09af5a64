//! Writes that carry their own version stamp: a record version made elsewhere (by
//! another replica, or signed by a node's identity) written through the write pipeline
//! with the stamp it already has, so that every replica records the same version.
//!
//! The greatest stamp wins, on the record's key and on its unique keys alike, whatever
//! order the versions arrive in: a version older than (or equal to) the one held is
//! ignored; a version whose unique key is held by another record wins the key if its
//! stamp is greater (the holder is removed) and loses it otherwise (it is not written).
//! Either way the loser's key keeps the same tombstone, stamped with the successor of
//! the loser's stamp ([`VersionStamp::successor`]): it beats the loser offered again
//! and nothing newer, and depends on the loser alone, not on which version beat it or
//! in which order they came. Every replica that receives the same two versions
//! therefore ends with the same records and the same sync entries.

use crate::backend::Backend;
use crate::codec::key::KeyCodec;
use crate::error::{NetabaseError, Result, SyncProblem, UniqueViolation};
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};
use crate::typed::write::Writer;

use super::stamp::VersionStamp;
use super::state::{SyncWrite, SyncedModel};
use super::tree;

/// What a stamped write did ([`TreeView::put_stamped`](crate::TreeView::put_stamped),
/// [`TreeView::remove_stamped`](crate::TreeView::remove_stamped)).
#[derive(Debug)]
#[non_exhaustive]
pub enum StampedWrite {
    /// Written: the record (or its removal) is the version held now, with its stamp.
    Applied {
        /// The unique keys it took from older records, which were removed (a local
        /// write that must not displace anyone rolls its transaction back on these);
        /// each removed record's tombstone has the successor of its own stamp.
        displaced: Vec<UniqueViolation>,
    },
    /// Not written: the version held for the key has this stamp, equal or greater.
    Superseded {
        /// The stamp of the version held.
        held: VersionStamp,
    },
    /// Not written: a unique key of the record is held by another record whose version
    /// has a greater (or equal) stamp. The record's key gets a tombstone instead,
    /// stamped with the successor of the record's stamp ([`VersionStamp::successor`];
    /// an older record there is removed): the tombstone a replica that received this
    /// version before the holder's wrote when the holder displaced it, so that both
    /// replicas end with identical sync state whatever the order.
    UniqueKeyHeld {
        /// The unique key and the record that holds it.
        violation: Box<UniqueViolation>,
        /// The stamp of the holder's version.
        held: VersionStamp,
    },
}

impl StampedWrite {
    /// Whether the write was applied.
    pub fn is_applied(&self) -> bool {
        matches!(self, StampedWrite::Applied { .. })
    }
}

/// The writer's sync state and its synced model `M`, or why it has none.
fn synced_model<'w, D, M, B>(w: &'w Writer<'_, B>) -> Result<(&'w SyncWrite, &'w SyncedModel)>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
    B: Backend,
{
    w.sync()
        .and_then(|sync| Some((sync, sync.state.model(M::INFO.table)?)))
        .ok_or_else(|| {
            NetabaseError::sync(
                D::NAME,
                Some(M::INFO.name),
                SyncProblem::NotSynced,
                "a stamped write needs sync metadata: open the store with \
                 `OpenOptions::sync_model(..)` or `sync_all()`",
            )
        })
}

/// The stamp of the version held at `key` (record or tombstone), if any.
fn held<B: Backend>(
    w: &Writer<'_, B>,
    model: &SyncedModel,
    key: &[u8],
) -> Result<Option<VersionStamp>> {
    // A version written earlier in this transaction is not in the sync tables yet.
    if let Some(stamp) = w.sync().and_then(|s| s.pending(model.info.table, key)) {
        return Ok(Some(stamp));
    }
    Ok(tree::entry(w.reader(), &model.tables, key)?.map(|e| e.stamp))
}

/// The most unique-key holders a stamped put displaces: one per unique key of the
/// model at most, so a bound only guards against a loop.
const MAX_DISPLACED: usize = 64;

impl<B: Backend> Writer<'_, B> {
    /// Writes `model` with `stamp` if that stamp is greater than the version held for
    /// its key; unique-key conflicts are decided by the same rule.
    pub(crate) fn put_stamped<D, M>(&self, model: M, stamp: VersionStamp) -> Result<StampedWrite>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let (sync, synced) = synced_model::<D, M, B>(self)?;
        let key = model.primary_key().to_key_bytes();
        if let Some(held) = held(self, synced, &key)?
            && held >= stamp
        {
            return Ok(StampedWrite::Superseded { held });
        }
        sync.state.clock.observe(stamp.hlc);
        let mut displaced = Vec::new();
        for _ in 0..MAX_DISPLACED {
            sync.stamp(M::INFO.table, key.clone(), stamp, false);
            match self.put_many::<D, M>(std::iter::once(model.clone())) {
                Ok(()) => return Ok(StampedWrite::Applied { displaced }),
                Err(NetabaseError::UniqueViolation(violation)) => {
                    sync.forget(M::INFO.table, &key);
                    let holder = violation.holder_key.clone();
                    let held = held(self, synced, &holder)?;
                    match held {
                        Some(held) if held >= stamp => {
                            // This version loses the key. A replica that received it
                            // before the holder removed it when the holder came; this
                            // one records the very same tombstone, so both end with
                            // identical sync state.
                            self.remove_encoded_stamped::<D, M>(&key, stamp.successor())?;
                            return Ok(StampedWrite::UniqueKeyHeld { violation, held });
                        }
                        // The newer version takes the key: the holder goes. Its
                        // tombstone beats the holder's version and nothing newer (the
                        // successor of its stamp), whichever newer version took the
                        // key, so every replica that sees both removes it the same way
                        // and a later version of the holder's key still wins.
                        Some(held) => {
                            self.remove_encoded_stamped::<D, M>(&holder, held.successor())?;
                            displaced.push(*violation);
                        }
                        // A holder without sync metadata (not reached: every record of
                        // a synced model has an entry) goes with the winner's stamp.
                        None => {
                            self.remove_encoded_stamped::<D, M>(&holder, stamp)?;
                            displaced.push(*violation);
                        }
                    }
                }
                Err(e) => {
                    sync.forget(M::INFO.table, &key);
                    return Err(e);
                }
            }
        }
        Err(NetabaseError::sync(
            D::NAME,
            Some(M::INFO.name),
            SyncProblem::Protocol,
            "a stamped put kept meeting unique-key holders",
        ))
    }

    /// Removes the record at `key` with `stamp` (its tombstone's) if that stamp is
    /// greater than the version held; a tombstone is kept even when nothing is stored.
    pub(crate) fn remove_stamped<D, M>(
        &self,
        key: &M::PrimaryKey,
        stamp: VersionStamp,
    ) -> Result<StampedWrite>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let (sync, synced) = synced_model::<D, M, B>(self)?;
        let key = key.to_key_bytes();
        if let Some(held) = held(self, synced, &key)?
            && held >= stamp
        {
            return Ok(StampedWrite::Superseded { held });
        }
        sync.state.clock.observe(stamp.hlc);
        self.remove_encoded_stamped::<D, M>(&key, stamp)?;
        Ok(StampedWrite::Applied {
            displaced: Vec::new(),
        })
    }

    fn remove_encoded_stamped<D, M>(&self, key: &[u8], stamp: VersionStamp) -> Result<()>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        let Some(sync) = self.sync() else {
            return Ok(());
        };
        sync.stamp(M::INFO.table, key.to_vec(), stamp, true);
        match self.remove_encoded::<D, M>(&[key.to_vec()]) {
            Ok(_) => Ok(()),
            Err(e) => {
                sync.forget(M::INFO.table, key);
                Err(e)
            }
        }
    }
}
