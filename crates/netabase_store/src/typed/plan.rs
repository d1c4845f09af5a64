//! Index maintenance as pure code.
//!
//! Given the stored version of a record (if any) and the new one, [`plan_put`] yields the
//! exact byte writes and deletes for every index table, plus the unique-key checks that
//! must pass before any of them is applied. [`plan_remove`] does the same for a removal.
//! The primary-table write is the executor's own: it learns the stored version from that
//! very write (engines hand back the value an insert replaced), so no lookup precedes it.
//! Nothing here touches a backend: `chunk.rs` calls these functions with what the engine
//! reported, and the executors only carry out the writes they decide.
//!
//! Index layout (DESIGN.md):
//! - non-unique: key `enc(secondary) ++ enc(primary)`, empty value;
//! - unique: key `enc(secondary)`, value `enc(primary)`.

use crate::backend::WriteOp;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyInfo};

/// A unique secondary key that the new record claims: the write may proceed only if the
/// index holds nothing at `key`, or holds this record's own primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueCheck {
    /// The unique index table.
    pub table: &'static str,
    /// The position of the secondary key in the model's `INFO.secondary_keys`.
    pub index: usize,
    /// The encoded secondary key.
    pub key: Vec<u8>,
}

/// The index writes of one put or remove, and the checks to run first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WritePlan {
    /// Checks that must all pass before `ops` are applied.
    pub checks: Vec<UniqueCheck>,
    /// Index writes, in the order of the model's secondary keys.
    pub ops: Vec<WriteOp<'static>>,
}

/// Adds to `plan` what keeps every index exact when `new` (whose encoded primary key is
/// `pk`) replaces `old`: an unchanged secondary value costs nothing, a changed one moves
/// its entry, and each unique value the record newly claims gets a check.
pub fn plan_put<D, M>(pk: &[u8], old: Option<&M>, new: &M, plan: &mut WritePlan)
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    plan_put_keys(
        M::INFO.secondary_keys,
        pk,
        old.map(|old| move |index: usize, out: &mut Vec<u8>| old.encode_secondary_key(index, out)),
        |index, out| new.encode_secondary_key(index, out),
        plan,
    );
    plan_links::<D, M>(pk, old, Some(new), plan);
}

/// [`plan_put`] for a model known by its secondary keys `fields` only: `old` and `new`
/// append the encoded secondary key at a position. Typed models and the models of a
/// [`crate::typed::dynamic::DynamicStore`] (a tool without the Rust types) share it.
pub fn plan_put_keys<O, N>(
    fields: &'static [SecondaryKeyInfo],
    pk: &[u8],
    old: Option<O>,
    new: N,
    plan: &mut WritePlan,
) where
    O: Fn(usize, &mut Vec<u8>),
    N: Fn(usize, &mut Vec<u8>),
{
    let mut new_key = Vec::new();
    let mut old_key = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        new_key.clear();
        new(index, &mut new_key);
        if let Some(old) = &old {
            old_key.clear();
            old(index, &mut old_key);
            if old_key == new_key {
                // Same secondary value, same primary key: the entry is already right.
                continue;
            }
            plan.ops.push(WriteOp::Delete {
                table: field.table,
                key: index_key(field.unique, &old_key, pk),
            });
        }
        if field.unique {
            plan.checks.push(UniqueCheck {
                table: field.table,
                index,
                key: new_key.clone(),
            });
        }
        plan.ops.push(WriteOp::Put {
            table: field.table,
            key: index_key(field.unique, &new_key, pk),
            value: if field.unique {
                pk.to_vec()
            } else {
                Vec::new()
            },
        });
    }
}

/// Adds to `plan` the link-index writes that move `old`'s links (if any) to `new`'s
/// (none for a removal): a link kept costs nothing. Link index layout: key
/// `enc(target key) ++ enc(primary key)`, empty value, one entry per linked record.
pub fn plan_links<D, M>(pk: &[u8], old: Option<&M>, new: Option<&M>, plan: &mut WritePlan)
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    if M::LINKS.is_empty() {
        return;
    }
    let mut old_keys = Vec::new();
    let mut new_keys = Vec::new();
    for (index, link) in M::LINKS.iter().enumerate() {
        if old.is_none()
            && let Some(new) = new
        {
            // The common case (a new record): its target key is encoded straight into
            // the index key, one allocation per entry. A record naming several targets
            // through one link (a `Vec`) takes the general path, which keeps one
            // entry per distinct target.
            let mut key = Vec::with_capacity(2 * pk.len());
            if !new.link_key(index, 0, &mut key) {
                continue;
            }
            if !new.link_key(index, 1, &mut Vec::new()) {
                key.extend_from_slice(pk);
                plan.ops.push(WriteOp::Put {
                    table: link.table,
                    key,
                    value: Vec::new(),
                });
                continue;
            }
        }
        old_keys.clear();
        new_keys.clear();
        if let Some(old) = old {
            old.link_keys(index, &mut old_keys);
        }
        if let Some(new) = new {
            new.link_keys(index, &mut new_keys);
        }
        plan_link_keys(link.table, pk, &old_keys, &new_keys, plan);
    }
}

/// [`plan_links`] for one link known by its index table and the encoded target keys
/// of the old and the new record: typed models and the models of a
/// [`crate::typed::dynamic::DynamicStore`] share it.
pub fn plan_link_keys(
    table: &'static str,
    pk: &[u8],
    old_keys: &[Vec<u8>],
    new_keys: &[Vec<u8>],
    plan: &mut WritePlan,
) {
    for key in old_keys.iter().filter(|k| !new_keys.contains(k)) {
        plan.ops.push(WriteOp::Delete {
            table,
            key: index_key(false, key, pk),
        });
    }
    for (i, key) in new_keys.iter().enumerate() {
        // A `Vec` link may name one record twice: one entry.
        if old_keys.contains(key) || new_keys[..i].contains(key) {
            continue;
        }
        plan.ops.push(WriteOp::Put {
            table,
            key: index_key(false, key, pk),
            value: Vec::new(),
        });
    }
}

/// Adds to `plan` the removal of every index entry of `old` (whose encoded primary key
/// is `pk`).
pub fn plan_remove<D, M>(pk: &[u8], old: &M, plan: &mut WritePlan)
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let mut key = Vec::new();
    for (index, field) in M::INFO.secondary_keys.iter().enumerate() {
        key.clear();
        old.encode_secondary_key(index, &mut key);
        plan.ops.push(WriteOp::Delete {
            table: field.table,
            key: index_key(field.unique, &key, pk),
        });
    }
    plan_links::<D, M>(pk, Some(old), None, plan);
}

/// The index-table key of a record: `enc(secondary)` for a unique index, and
/// `enc(secondary) ++ enc(primary)` otherwise.
pub fn index_key(unique: bool, secondary: &[u8], pk: &[u8]) -> Vec<u8> {
    if unique {
        secondary.to_vec()
    } else {
        let mut key = Vec::with_capacity(secondary.len() + pk.len());
        key.extend_from_slice(secondary);
        key.extend_from_slice(pk);
        key
    }
}
