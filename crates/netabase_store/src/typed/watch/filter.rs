//! `Filter`: which changes of a model a subscription receives, decided on encoded keys.

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use crate::backend::RawRange;
use crate::codec::key::KeyCodec;
use crate::codec::value::decode_model;
use crate::schema::{NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyField};
use crate::typed::changes::Change;
use crate::typed::read::primary_bounds;

/// Which changes of model `M` a subscription receives: every change, those of one
/// primary key, of a primary-key range, or of records whose secondary key has a value
/// or lies in a range.
///
/// Every filter receives [`Change::Cleared`] of its model (a clear removes every record
/// it covers). A secondary-key filter matches a change when the old **or** the new
/// record matches, so an update that moves a record out of the filtered range is
/// reported too.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct User {
/// #         #[primary_key] pub id: u64,
/// #         #[secondary_key] pub age: u32,
/// #     }
/// # }
/// # use app::*;
/// use netabase_store::watch::Filter;
///
/// let every: Filter<AppDefinition, User> = Filter::all();
/// let one = Filter::<AppDefinition, User>::key(7);
/// let some = Filter::<AppDefinition, User>::range(10..20);
/// let thirty = Filter::<AppDefinition, User>::secondary(UserAgeSecondaryKey(30));
/// let adults = Filter::<AppDefinition, User>::secondary_range(UserAgeSecondaryKey(18)..);
/// ```
pub struct Filter<D, M> {
    pub(super) rule: Rule,
    _types: PhantomData<fn() -> (D, M)>,
}

impl<D, M> Clone for Filter<D, M> {
    fn clone(&self) -> Self {
        Filter {
            rule: self.rule.clone(),
            _types: PhantomData,
        }
    }
}

impl<D, M> std::fmt::Debug for Filter<D, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Filter").field(&self.rule).finish()
    }
}

/// A filter with its types erased: what the publisher tests, on encoded bytes.
#[derive(Debug, Clone)]
pub(super) enum Rule {
    /// Every change of the model.
    All,
    /// Changes whose encoded primary key lies in the range.
    Keys(RawRange),
    /// Changes whose old or new record has its secondary key `index` (encoded) in the
    /// range.
    Secondary { index: usize, range: RawRange },
}

impl<D, M> Filter<D, M>
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    fn new(rule: Rule) -> Self {
        Filter {
            rule,
            _types: PhantomData,
        }
    }

    /// Every change of the model.
    pub fn all() -> Self {
        Self::new(Rule::All)
    }

    /// The changes of the record with primary key `key` (the key newtype or its value:
    /// `key(7)`).
    pub fn key(key: impl Into<M::PrimaryKey>) -> Self {
        let key = key.into().to_key_bytes();
        Self::new(Rule::Keys(RawRange {
            start: Bound::Included(key.clone()),
            end: Bound::Included(key),
        }))
    }

    /// The changes of records whose primary key lies in `range` (of key newtypes or of
    /// their values: `range(10..20)`, `range(..=5)`).
    pub fn range<K>(range: impl RangeBounds<K>) -> Self
    where
        K: Into<M::PrimaryKey> + Clone,
    {
        Self::new(Rule::Keys(primary_bounds::<M::PrimaryKey, K>(&range)))
    }

    /// The changes of records whose secondary key `K` equals `value`, before or after
    /// the change.
    pub fn secondary<K: SecondaryKeyField<D, M>>(value: K) -> Self {
        let value = value.to_key_bytes();
        Self::new(Rule::Secondary {
            index: K::INDEX,
            range: RawRange {
                start: Bound::Included(value.clone()),
                end: Bound::Included(value),
            },
        })
    }

    /// The changes of records whose secondary key `K` lies in `range`, before or after
    /// the change.
    pub fn secondary_range<K: SecondaryKeyField<D, M>>(range: impl RangeBounds<K>) -> Self {
        // The key encoding preserves order, so the encoded bounds bound the encoded
        // values exactly.
        let encode = |b: Bound<&K>| b.map(KeyCodec::to_key_bytes);
        Self::new(Rule::Secondary {
            index: K::INDEX,
            range: RawRange {
                start: encode(range.start_bound()),
                end: encode(range.end_bound()),
            },
        })
    }
}

/// The filters of one model in a subscription, with the test that knows the model's
/// type (a secondary-key rule decodes records).
pub(super) struct Watched {
    /// The model's primary table, which every change names.
    pub(super) table: &'static str,
    /// The rules; a change matches when one of them does.
    pub(super) rules: Vec<Rule>,
    /// Tests a change of this model against `rules`.
    pub(super) test: fn(&[Rule], &Change) -> bool,
}

impl Watched {
    /// The model `M`, filtered by `rules`.
    pub(super) fn model<D, M>(rules: Vec<Rule>) -> Self
    where
        D: NetabaseDefinitionTrait,
        M: NetabaseModelTrait<D>,
    {
        Watched {
            table: M::INFO.table,
            rules,
            test: matches::<D, M>,
        }
    }

    /// Whether every change of the model matches.
    pub(super) fn takes_all(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Rule::All))
    }
}

/// Whether `change` (of model `M`) matches one of `rules`.
fn matches<D, M>(rules: &[Rule], change: &Change) -> bool
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    let (key, old, new) = match change {
        Change::Put { key, old, new, .. } => (key, old.as_deref(), Some(new.as_slice())),
        Change::Removed { key, old, .. } => (key, Some(old.as_slice()), None),
        Change::Cleared { .. } => return true,
    };
    rules.iter().any(|rule| match rule {
        Rule::All => true,
        Rule::Keys(range) => range.contains(key),
        Rule::Secondary { index, range } => [old, new]
            .into_iter()
            .flatten()
            .any(|value| secondary_in::<D, M>(key, value, *index, range)),
    })
}

/// Whether the record stored as `value` has its secondary key `index` in `range`. A
/// value that does not decode matches, so that the reader sees its decoding error.
fn secondary_in<D, M>(key: &[u8], value: &[u8], index: usize, range: &RawRange) -> bool
where
    D: NetabaseDefinitionTrait,
    M: NetabaseModelTrait<D>,
{
    match decode_model::<D, M>(key, value) {
        Ok(model) => {
            let mut encoded = Vec::new();
            model.encode_secondary_key(index, &mut encoded);
            range.contains(&encoded)
        }
        Err(_) => true,
    }
}
