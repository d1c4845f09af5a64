//! `ChangeSet`: what one committed write transaction changed, produced at the one commit
//! point ([`super::write::Writer::commit`]).
//!
//! Every typed write records its change as it is applied: the model, the encoded primary
//! key, and the old and new encoded values (header included, as stored). At commit the
//! record is reduced to one change per record, so a transaction that writes a key twice
//! reports where the record started and where it ended, and a record created and removed
//! in the same transaction reports nothing. Subscriptions and synchronisation consume
//! this; nothing else observes writes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::codec::value::decode_model;
use crate::error::Result;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait};

/// One change to one record (or one whole model, for [`Change::Cleared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A record was stored: created (`old` is `None`) or replaced.
    Put {
        /// The model's name.
        model: &'static str,
        /// The model's primary table.
        table: &'static str,
        /// The encoded primary key.
        key: Vec<u8>,
        /// The value it replaced, as stored.
        old: Option<Vec<u8>>,
        /// The value stored, as stored.
        new: Vec<u8>,
    },
    /// A record was removed.
    Removed {
        /// The model's name.
        model: &'static str,
        /// The model's primary table.
        table: &'static str,
        /// The encoded primary key.
        key: Vec<u8>,
        /// The value removed, as stored.
        old: Vec<u8>,
    },
    /// Every record of a model was removed. Changes listed after it were made after the
    /// clear.
    Cleared {
        /// The model's name.
        model: &'static str,
        /// The model's primary table.
        table: &'static str,
    },
}

impl Change {
    /// The name of the model the change concerns.
    pub fn model(&self) -> &'static str {
        match self {
            Change::Put { model, .. }
            | Change::Removed { model, .. }
            | Change::Cleared { model, .. } => model,
        }
    }

    /// The model's primary table.
    pub fn table(&self) -> &'static str {
        match self {
            Change::Put { table, .. }
            | Change::Removed { table, .. }
            | Change::Cleared { table, .. } => table,
        }
    }

    /// The encoded primary key, or `None` for [`Change::Cleared`].
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Change::Put { key, .. } | Change::Removed { key, .. } => Some(key),
            Change::Cleared { .. } => None,
        }
    }

    /// The change decoded as model `M`, or `None` when it concerns another model.
    ///
    /// # Errors
    /// [`crate::NetabaseError::Decode`] or [`crate::NetabaseError::Version`] when the
    /// recorded bytes do not decode as `M`.
    pub fn decode<D, M>(&self) -> Result<Option<TypedChange<D, M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        if self.table() != M::INFO.table {
            return Ok(None);
        }
        let decode_key = |key: &[u8]| {
            <M::PrimaryKey as crate::codec::key::KeyCodec>::from_key_bytes(key)
                .map_err(|e| crate::NetabaseError::decode(M::INFO.table, key, e))
        };
        Ok(Some(match self {
            Change::Put { key, old, new, .. } => TypedChange::Put {
                key: decode_key(key)?,
                old: old
                    .as_deref()
                    .map(|old| decode_model::<D, M>(key, old))
                    .transpose()?,
                new: decode_model::<D, M>(key, new)?,
            },
            Change::Removed { key, old, .. } => TypedChange::Removed {
                key: decode_key(key)?,
                old: decode_model::<D, M>(key, old)?,
            },
            Change::Cleared { .. } => TypedChange::Cleared,
        }))
    }
}

/// A [`Change`] decoded as model `M` ([`Change::decode`]).
#[derive(Debug, Clone)]
pub enum TypedChange<D: NetabaseDefinitionTrait, M: NetabaseModelTrait<D>> {
    /// A record was stored.
    Put {
        /// Its primary key.
        key: M::PrimaryKey,
        /// The record it replaced.
        old: Option<M>,
        /// The record stored.
        new: M,
    },
    /// A record was removed.
    Removed {
        /// Its primary key.
        key: M::PrimaryKey,
        /// The record removed.
        old: M,
    },
    /// Every record of the model was removed.
    Cleared,
}

impl<D, M> PartialEq for TypedChange<D, M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D> + PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                TypedChange::Put { key, old, new },
                TypedChange::Put {
                    key: k,
                    old: o,
                    new: n,
                },
            ) => key == k && old == o && new == n,
            (TypedChange::Removed { key, old }, TypedChange::Removed { key: k, old: o }) => {
                key == k && old == o
            }
            (TypedChange::Cleared, TypedChange::Cleared) => true,
            _ => false,
        }
    }
}

/// What one committed write transaction changed: one [`Change`] per record, in the
/// order the records were first written, with a [`Change::Cleared`] where a model was
/// cleared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    changes: Vec<Change>,
}

impl ChangeSet {
    /// Reduces the log of a transaction's writes, in the order they were made, to one
    /// change per record.
    pub(crate) fn from_log(log: Vec<Change>) -> Self {
        // A record can appear twice only if a later write found it already there (an
        // old value) or a model was cleared; without either, the log is the answer.
        let repeats = log.iter().any(|c| match c {
            Change::Put { old, .. } => old.is_some(),
            Change::Removed { .. } | Change::Cleared { .. } => true,
        });
        if !repeats {
            return ChangeSet { changes: log };
        }
        // First pass, over borrowed keys: which earlier entry each one continues
        // (`leader`), and which entries a later clear of their model superseded.
        let mut leader: Vec<usize> = (0..log.len()).collect();
        let mut superseded = vec![false; log.len()];
        {
            let mut first: HashMap<(&str, &[u8]), usize> = HashMap::with_capacity(log.len());
            for (i, change) in log.iter().enumerate() {
                match change {
                    Change::Cleared { table, .. } => {
                        for (j, earlier) in log[..i].iter().enumerate() {
                            if earlier.table() == *table {
                                superseded[j] = true;
                            }
                        }
                        first.retain(|(t, _), _| t != table);
                    }
                    Change::Put { table, key, .. } | Change::Removed { table, key, .. } => {
                        match first.entry((table, key.as_slice())) {
                            Entry::Occupied(at) => leader[i] = *at.get(),
                            Entry::Vacant(slot) => {
                                slot.insert(i);
                            }
                        }
                    }
                }
            }
        }
        // Second pass: move each entry into its record's slot, merging as it goes.
        let mut out: Vec<Option<Change>> = Vec::with_capacity(log.len());
        let mut slot = vec![usize::MAX; log.len()];
        for (i, change) in log.into_iter().enumerate() {
            if superseded[i] {
                continue;
            }
            if leader[i] == i {
                slot[i] = out.len();
                out.push(Some(change));
            } else if let Some(at) = out.get_mut(slot[leader[i]]) {
                let first = at.take();
                *at = merge(first, change);
            }
        }
        ChangeSet {
            changes: out.into_iter().flatten().collect(),
        }
    }

    /// The changes, one per record.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The changes, owned.
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    /// The number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the transaction changed nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes of model `M`, decoded.
    ///
    /// # Errors
    /// As [`Change::decode`].
    pub fn decode<D, M>(&self) -> Result<Vec<TypedChange<D, M>>>
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        self.changes
            .iter()
            .filter_map(|c| c.decode::<D, M>().transpose())
            .collect()
    }
}

impl<'a> IntoIterator for &'a ChangeSet {
    type Item = &'a Change;
    type IntoIter = std::slice::Iter<'a, Change>;

    fn into_iter(self) -> Self::IntoIter {
        self.changes.iter()
    }
}

/// The net change of a record changed by `first` and then by `then`; `None` when it
/// ends as it started (created and removed).
fn merge(first: Option<Change>, then: Change) -> Option<Change> {
    let original = match first {
        Some(Change::Put { old, .. }) => old,
        Some(Change::Removed { old, .. }) => Some(old),
        Some(Change::Cleared { .. }) | None => return Some(then),
    };
    match (then, original) {
        (
            Change::Put {
                model,
                table,
                key,
                new,
                ..
            },
            old,
        ) => Some(Change::Put {
            model,
            table,
            key,
            old,
            new,
        }),
        (
            Change::Removed {
                model, table, key, ..
            },
            Some(old),
        ) => Some(Change::Removed {
            model,
            table,
            key,
            old,
        }),
        (Change::Removed { .. }, None) => None,
        (cleared @ Change::Cleared { .. }, _) => Some(cleared),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: u8, old: Option<u8>, new: u8) -> Change {
        Change::Put {
            model: "M",
            table: "D/M",
            key: vec![key],
            old: old.map(|o| vec![o]),
            new: vec![new],
        }
    }

    fn removed(key: u8, old: u8) -> Change {
        Change::Removed {
            model: "M",
            table: "D/M",
            key: vec![key],
            old: vec![old],
        }
    }

    #[test]
    fn one_change_per_record() {
        let set = ChangeSet::from_log(vec![
            put(1, None, 10),
            put(2, Some(5), 20),
            put(1, Some(10), 11),
            removed(2, 20),
            put(3, None, 30),
            removed(3, 30),
            removed(4, 40),
            put(4, None, 41),
        ]);
        assert_eq!(
            set.changes(),
            &[put(1, None, 11), removed(2, 5), put(4, Some(40), 41)]
        );
    }

    #[test]
    fn a_clear_supersedes_what_came_before() {
        let cleared = Change::Cleared {
            model: "M",
            table: "D/M",
        };
        let set = ChangeSet::from_log(vec![put(1, None, 10), cleared.clone(), put(1, None, 12)]);
        assert_eq!(set.changes(), &[cleared, put(1, None, 12)]);
    }
}
