//! Replicated models and write permissions.
//!
//! A node that **replicates** a model ([`NetabaseConfig::replicate`](crate::NetabaseConfig::replicate))
//! applies every valid signed record of that model it receives — from a DHT put, from a
//! live update of another replica, from reconciliation — to its typed store, through
//! the write pipeline, with the record's own version stamp
//! ([`TreeView::put_stamped`](netabase_store::TreeView::put_stamped)): indexes stay
//! exact, `watch` subscribers see the change, and the greatest stamp wins on keys and
//! unique keys alike, identically on every replica. The node's own puts of a
//! replicated model are stamped with the stamp of the signed record they publish, so
//! the typed store and the DHT agree on one version per key.
//!
//! **Permissions** say who may write what: a [`WritePolicy`] for the definition with
//! per-model overrides ([`Permissions`]), plus any [`WriteRule`] of the application
//! ([`Netabase::set_write_rule`](crate::Netabase::set_write_rule)). They are checked on
//! every inbound path and on the node's own writes. Group membership is data: a
//! [`Membership`] record, signed by one of the declared admin keys, versioned like any
//! record (the newest wins) and carried like any record (DHT, live updates); it lives
//! under a reserved record key ([`membership_key`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use libp2p::kad::{Record, RecordKey};
use netabase_store::backend::{Backend, ReadTxn, WriteTxn};
use netabase_store::codec::key::KeyCodec;
use netabase_store::kad::{DefinitionRecordExt, KadStore, KadStoreError, parse_record_key};
use netabase_store::schema::{
    DiscriminantTrait, ModelVisitor, NetabaseDefinitionTrait, NetabaseModelTrait,
};
use netabase_store::sync::{StampedWrite, VersionStamp, WriterId};
use netabase_store::{OpenOptions, ReadWrite, TxnGuard};
use serde::{Deserialize, Serialize};

/// The model name of membership records in their reserved record keys.
pub const MEMBERS_MODEL: &str = "__netabase/members";

/// Which models of the definition a node replicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replicated {
    /// None: the typed store holds the node's own puts only.
    #[default]
    None,
    /// Every model of the definition.
    All,
    /// The models with these names.
    Models(BTreeSet<String>),
}

impl Replicated {
    /// Whether the model `name` is replicated.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Replicated::None => false,
            Replicated::All => true,
            Replicated::Models(names) => names.contains(name),
        }
    }

    /// Whether no model is replicated.
    pub fn is_none(&self) -> bool {
        match self {
            Replicated::None => true,
            Replicated::All => false,
            Replicated::Models(names) => names.is_empty(),
        }
    }

    /// The options the node's store is opened with: sync on for the replicated models
    /// (recorded in the database), stamped with the node's author id.
    pub(crate) fn open_options(&self, author: Option<WriterId>) -> OpenOptions {
        let mut options = match self {
            Replicated::None => return OpenOptions::default(),
            Replicated::All => OpenOptions::default().sync_all(),
            Replicated::Models(names) => names
                .iter()
                .fold(OpenOptions::default(), |o, name| o.sync_model(name.clone())),
        };
        if let Some(author) = author {
            options = options.writer_id(author);
        }
        options
    }
}

/// Who may write (put, update or remove) the records of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WritePolicy {
    /// Anyone with a valid signature.
    #[default]
    Open,
    /// The first author of a key, then only the author of the version held (record or
    /// tombstone): nobody updates or removes someone else's record.
    AuthorOnly,
    /// Only these authors (ed25519 public keys).
    Members(BTreeSet<WriterId>),
    /// Only the members listed by the newest [`Membership`] record of this group,
    /// signed by an admin ([`Permissions::admins`]); nobody while there is none.
    Group(String),
}

/// The write permissions of a node's definition: a policy for the definition, per-model
/// overrides, and the admin keys whose signatures may change group memberships.
///
/// Every replica of a definition must be configured with the same permissions: each
/// enforces them on what it receives, independently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Permissions {
    /// The policy of models without an override ([`WritePolicy::Open`] by default).
    pub default: WritePolicy,
    /// Per-model overrides, by model name.
    pub models: BTreeMap<String, WritePolicy>,
    /// The authors allowed to sign [`Membership`] records.
    pub admins: BTreeSet<WriterId>,
}

impl Permissions {
    /// The policy of the model `name`.
    pub fn policy_of(&self, name: &str) -> &WritePolicy {
        self.models.get(name).unwrap_or(&self.default)
    }

    /// Whether every write is allowed without looking at it (no policy but `Open`).
    pub(crate) fn is_open(&self) -> bool {
        self.default == WritePolicy::Open && self.models.values().all(|p| *p == WritePolicy::Open)
    }
}

/// The members of a group: the value of a membership record. Sign it with an admin key
/// and publish it with [`Netabase::set_members`](crate::Netabase::set_members); the
/// newest version (greatest stamp) is the membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Membership {
    /// The group.
    pub group: String,
    /// Its members.
    pub members: BTreeSet<WriterId>,
}

impl Membership {
    /// The membership of `group`: `members`.
    pub fn new(group: impl Into<String>, members: impl IntoIterator<Item = WriterId>) -> Self {
        Membership {
            group: group.into(),
            members: members.into_iter().collect(),
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// The reserved record key of the membership of `group` in definition `D`: laid out as
/// a model record key (definition, [`MEMBERS_MODEL`], group), so it never collides with
/// a model's key.
pub fn membership_key<D: NetabaseDefinitionTrait>(group: &str) -> RecordKey {
    let parts = (
        D::NAME.to_owned(),
        MEMBERS_MODEL.to_owned(),
        group.as_bytes().to_vec(),
    );
    RecordKey::from(parts.to_key_bytes())
}

/// The reserved model name of the key under which the replicas of a definition announce
/// themselves as providers (see [`replicas_key`]).
pub const REPLICAS_MODEL: &str = "__replicas";

/// The DHT key under which every node that replicates models of definition `D` announces
/// itself as a provider, so that replicas find each other through any peer of the DHT,
/// not only over the connections they already have.
pub fn replicas_key<D: NetabaseDefinitionTrait>() -> RecordKey {
    let parts = (
        D::NAME.to_owned(),
        REPLICAS_MODEL.to_owned(),
        Vec::<u8>::new(),
    );
    RecordKey::from(parts.to_key_bytes())
}

/// The group whose membership record `key` is, if it is one of definition `D`.
pub(crate) fn membership_group<D: NetabaseDefinitionTrait>(key: &RecordKey) -> Option<String> {
    let parts = parse_record_key(key).ok()?;
    (parts.definition == D::NAME && parts.model == MEMBERS_MODEL)
        .then(|| String::from_utf8(parts.primary_key).ok())
        .flatten()
}

/// Checks a record with a membership key before it reaches the worker: the value (if
/// not a tombstone) decodes as the membership of the group its key names.
pub(crate) fn check_membership_value(group: &str, value: Option<&[u8]>) -> Result<(), String> {
    let Some(value) = value else {
        return Ok(());
    };
    let membership = Membership::decode(value).map_err(|e| format!("not a membership: {e}"))?;
    if membership.group != group {
        return Err(format!(
            "a membership of group `{}` under the key of group `{group}`",
            membership.group
        ));
    }
    Ok(())
}

/// A write a [`WriteRule`] decides on.
#[derive(Debug)]
#[non_exhaustive]
pub struct WriteRequest<'a, D> {
    /// The record key.
    pub key: &'a RecordKey,
    /// The model's name.
    pub model: &'a str,
    /// The record written, or `None` for a removal (a tombstone).
    pub value: Option<&'a D>,
    /// Its author (who signed it).
    pub author: WriterId,
    /// The author of the version held for the key, if any (record or tombstone).
    pub held_author: Option<WriterId>,
}

/// What a [`WriteRule`] may read: the records this node holds (DHT records, whoever
/// wrote them, as the transaction deciding sees them) and group memberships.
pub trait PolicyReader<D> {
    /// The live record held under `key`, decoded (`None` if absent, removed or not a
    /// model of `D`).
    fn record(&self, key: &RecordKey) -> Option<D>;
    /// The author of the version held under `key` (record or tombstone), if any.
    fn author(&self, key: &RecordKey) -> Option<WriterId>;
    /// The members of `group` by its newest membership record (empty without one).
    fn members(&self, group: &str) -> BTreeSet<WriterId>;
}

impl<D: NetabaseDefinitionTrait> dyn PolicyReader<D> + '_ {
    /// The live record of model `M` with primary key `key`, if held.
    pub fn get<M: NetabaseModelTrait<D>>(&self, key: impl Into<M::PrimaryKey>) -> Option<M> {
        let key = netabase_store::kad::record_key::<D, M>(&key.into());
        M::try_from_definition(self.record(&key)?).ok()
    }

    /// The author of the version of model `M` held under primary key `key`, if any.
    pub fn author_of<M: NetabaseModelTrait<D>>(
        &self,
        key: impl Into<M::PrimaryKey>,
    ) -> Option<WriterId> {
        self.author(&netabase_store::kad::record_key::<D, M>(&key.into()))
    }
}

/// An application's write permission for the records of a model, checked after its
/// [`WritePolicy`] on every inbound path and on local writes: `Err` with a sentence
/// refuses the write. Closures `Fn(&WriteRequest<D>, &dyn PolicyReader<D>) ->
/// Result<(), String>` are rules.
///
/// It must decide from the request and the store alone, the same way on every node.
pub trait WriteRule<D>: Send + Sync + 'static {
    /// Allows (`Ok`) or refuses (`Err`, why) `write`.
    ///
    /// # Errors
    /// Why the write is refused.
    fn check(&self, write: &WriteRequest<'_, D>, store: &dyn PolicyReader<D>)
    -> Result<(), String>;
}

impl<D, F> WriteRule<D> for F
where
    F: Fn(&WriteRequest<'_, D>, &dyn PolicyReader<D>) -> Result<(), String> + Send + Sync + 'static,
{
    fn check(
        &self,
        write: &WriteRequest<'_, D>,
        store: &dyn PolicyReader<D>,
    ) -> Result<(), String> {
        self(write, store)
    }
}

/// The replication configuration of a node ([`NetabaseConfig::replication`](crate::NetabaseConfig)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replication {
    /// The models replicated.
    pub models: Replicated,
    /// Who may write what.
    pub permissions: Permissions,
}

impl Replication {
    /// Whether records need more than the record store's checks: a model replicated, a
    /// policy other than open, or an admin declared.
    pub(crate) fn is_active(&self) -> bool {
        !self.models.is_none() || !self.permissions.is_open() || !self.permissions.admins.is_empty()
    }
}

/// What the storage worker enforces: the configuration and the application's rules.
pub(crate) struct Enforcer<D> {
    pub(crate) config: Replication,
    /// The permissions of the node's configuration, which
    /// [`Netabase::set_permissions`](crate::Netabase::set_permissions) overrides.
    pub(crate) configured: Permissions,
    rules: HashMap<String, Arc<dyn WriteRule<D>>>,
}

/// Why a write is not allowed, or that the store failed while deciding.
pub(crate) enum Denied {
    /// The policy (or a rule) refuses it.
    NotPermitted(String),
    /// The store failed.
    Store(KadStoreError),
}

impl From<KadStoreError> for Denied {
    fn from(e: KadStoreError) -> Self {
        Denied::Store(e)
    }
}

/// Reads for rules and group policies, inside the deciding transaction.
struct TxnReader<'a, 't, D: NetabaseDefinitionTrait, B: Backend> {
    records: &'a KadStore<Arc<B>>,
    txn: &'a TxnGuard<'t, D, B, ReadWrite>,
}

impl<D: NetabaseDefinitionTrait, B: Backend> PolicyReader<D> for TxnReader<'_, '_, D, B> {
    fn record(&self, key: &RecordKey) -> Option<D> {
        let held = self.records.held_in(self.txn, key).ok()??;
        if held.tombstone {
            return None;
        }
        D::from_record(&Record::new(key.clone(), held.value)).ok()
    }

    fn author(&self, key: &RecordKey) -> Option<WriterId> {
        let held = self.records.held_in(self.txn, key).ok()??;
        Some(held.stamp.writer)
    }

    fn members(&self, group: &str) -> BTreeSet<WriterId> {
        members_in(self.records, self.txn, group).unwrap_or_default()
    }
}

fn members_in<D: NetabaseDefinitionTrait, B: Backend>(
    records: &KadStore<Arc<B>>,
    txn: &TxnGuard<'_, D, B, ReadWrite>,
    group: &str,
) -> Result<BTreeSet<WriterId>, KadStoreError> {
    let Some(held) = records.held_in(txn, &membership_key::<D>(group))? else {
        return Ok(BTreeSet::new());
    };
    if held.tombstone {
        return Ok(BTreeSet::new());
    }
    Ok(Membership::decode(&held.value)
        .map(|m| m.members)
        .unwrap_or_default())
}

impl<D: NetabaseDefinitionTrait> Enforcer<D> {
    pub(crate) fn new(config: Replication, configured: Permissions) -> Self {
        Enforcer {
            config,
            configured,
            rules: HashMap::new(),
        }
    }

    /// Adds `rule` for the model `model`.
    pub(crate) fn add_rule(&mut self, model: String, rule: Arc<dyn WriteRule<D>>) {
        self.rules.insert(model, rule);
    }

    /// Whether the worker must look at records one by one (policy, rules, typed apply).
    pub(crate) fn is_active(&self) -> bool {
        self.config.is_active() || !self.rules.is_empty()
    }

    /// Whether `author` may write `value` (`None`: remove) under `key`, as the
    /// transaction `txn` sees the store.
    pub(crate) fn check<B: Backend>(
        &self,
        records: &KadStore<Arc<B>>,
        txn: &TxnGuard<'_, D, B, ReadWrite>,
        key: &RecordKey,
        value: Option<&[u8]>,
        author: WriterId,
    ) -> Result<(), Denied> {
        let permissions = &self.config.permissions;
        if let Some(group) = membership_group::<D>(key) {
            if !permissions.admins.contains(&author) {
                return Err(Denied::NotPermitted(format!(
                    "the membership of group `{group}` may be changed by an admin only, \
                     not by {author:?}"
                )));
            }
            return check_membership_value(&group, value).map_err(Denied::NotPermitted);
        }
        let parts = parse_record_key(key).ok();
        let model = parts.as_ref().map_or("", |p| p.model.as_str());
        let policy = permissions.policy_of(model);
        let rule = self.rules.get(model);
        if *policy == WritePolicy::Open && rule.is_none() {
            return Ok(());
        }
        if parts.is_none() {
            return Err(Denied::NotPermitted(
                "not a record key of a model, which the write policy requires".into(),
            ));
        }
        let held_author = records.held_in(txn, key)?.map(|h| h.stamp.writer);
        match policy {
            WritePolicy::Open => {}
            WritePolicy::AuthorOnly => {
                if let Some(held) = held_author
                    && held != author
                {
                    return Err(Denied::NotPermitted(format!(
                        "`{model}` records may be changed by their author only: \
                         {held:?}, not {author:?}"
                    )));
                }
            }
            WritePolicy::Members(members) => {
                if !members.contains(&author) {
                    return Err(Denied::NotPermitted(format!(
                        "{author:?} is not a member allowed to write `{model}`"
                    )));
                }
            }
            WritePolicy::Group(group) => {
                if !members_in(records, txn, group)?.contains(&author) {
                    return Err(Denied::NotPermitted(format!(
                        "{author:?} is not a member of group `{group}`, which writes `{model}`"
                    )));
                }
            }
        }
        if let Some(rule) = rule {
            let decoded = match value {
                Some(value) => Some(
                    D::from_record(&Record::new(key.clone(), value.to_vec()))
                        .map_err(|e| Denied::NotPermitted(e.to_string()))?,
                ),
                None => None,
            };
            let request = WriteRequest {
                key,
                model,
                value: decoded.as_ref(),
                author,
                held_author,
            };
            rule.check(&request, &TxnReader { records, txn })
                .map_err(Denied::NotPermitted)?;
        }
        Ok(())
    }
}

/// Applies a signed record version of a replicated model to the typed store inside
/// `txn`, with its stamp: `value` is the model (`None`: a removal of `primary_key`).
pub(crate) fn apply_typed<D: NetabaseDefinitionTrait, B: Backend>(
    txn: &TxnGuard<'_, D, B, ReadWrite>,
    model: &str,
    primary_key: &[u8],
    value: Option<D>,
    stamp: VersionStamp,
) -> netabase_store::Result<Option<StampedWrite>> {
    let Some(discriminant) = D::Discriminant::from_name(model) else {
        return Ok(None);
    };
    D::visit_model(
        discriminant,
        ApplyTyped {
            txn,
            primary_key,
            value,
            stamp,
        },
    )
    .map(Some)
}

struct ApplyTyped<'a, 't, D: NetabaseDefinitionTrait, B: Backend> {
    txn: &'a TxnGuard<'t, D, B, ReadWrite>,
    primary_key: &'a [u8],
    value: Option<D>,
    stamp: VersionStamp,
}

impl<D: NetabaseDefinitionTrait, B: Backend> ModelVisitor<D> for ApplyTyped<'_, '_, D, B> {
    type Output = netabase_store::Result<StampedWrite>;

    fn visit<M: NetabaseModelTrait<D>>(self) -> Self::Output {
        let tree = self.txn.open_tree::<M>();
        match self.value {
            Some(value) => match M::try_from_definition(value) {
                Ok(model) => tree.put_stamped(model, self.stamp),
                Err(_) => Err(netabase_store::NetabaseError::decode(
                    M::INFO.table,
                    self.primary_key,
                    "the record holds another model than its key names",
                )),
            },
            None => {
                let key = M::PrimaryKey::from_key_bytes(self.primary_key).map_err(|e| {
                    netabase_store::NetabaseError::decode(M::INFO.table, self.primary_key, e)
                })?;
                tree.remove_stamped(key, self.stamp)
            }
        }
    }
}

// ----- permissions set at run time, kept across restarts ------------------------------

/// Where [`Netabase::set_permissions`](crate::Netabase::set_permissions) keeps its
/// permissions, in the node's own table ([`NODE_TABLE`](crate::NODE_TABLE)).
const PERMISSIONS_KEY: &[u8] = b"permissions";

/// The format of the stored permissions (the first byte of the value).
const PERMISSIONS_FORMAT: u8 = 1;

/// Permissions set at run time, with the configured ones they replaced: they hold
/// across restarts for as long as the node is configured as it was when they were set.
#[derive(Serialize, Deserialize)]
struct StoredPermissions {
    configured: Permissions,
    set: Permissions,
}

/// The permissions a node starts with: those set at run time and stored, if the node
/// is still configured with the permissions they replaced (`configured`); else the
/// configured ones, and a stored override of an older configuration is dropped (the
/// operator changed the configuration since: it wins).
///
/// # Errors
/// [`Error::StoredPermissions`](crate::Error::StoredPermissions) if the stored
/// permissions do not decode; [`Error::Store`](crate::Error::Store) on engine failure.
pub(crate) fn stored_permissions<B: Backend>(
    backend: &B,
    configured: &Permissions,
) -> crate::Result<Option<Permissions>> {
    let Some(bytes) = backend
        .begin_read()?
        .get(crate::NODE_TABLE, PERMISSIONS_KEY)?
    else {
        return Ok(None);
    };
    let stored = match bytes.split_first() {
        Some((&PERMISSIONS_FORMAT, body)) => postcard::from_bytes::<StoredPermissions>(body)
            .map_err(|e| crate::Error::StoredPermissions(e.to_string()))?,
        Some((format, _)) => {
            return Err(crate::Error::StoredPermissions(format!(
                "unknown format {format}"
            )));
        }
        None => return Err(crate::Error::StoredPermissions("empty value".into())),
    };
    if stored.configured == *configured {
        return Ok(Some(stored.set));
    }
    let txn = backend.begin_write()?;
    txn.delete(crate::NODE_TABLE, PERMISSIONS_KEY)?;
    txn.commit()?;
    Ok(None)
}

/// Keeps `set` as the node's permissions across restarts (while it stays configured
/// with `configured`); setting the configured permissions again removes the override.
///
/// # Errors
/// [`Error::Store`](crate::Error::Store) on engine failure.
pub(crate) fn store_permissions<B: Backend>(
    backend: &B,
    configured: &Permissions,
    set: &Permissions,
) -> crate::Result<()> {
    let txn = backend.begin_write()?;
    if set == configured {
        txn.delete(crate::NODE_TABLE, PERMISSIONS_KEY)?;
    } else {
        let stored = StoredPermissions {
            configured: configured.clone(),
            set: set.clone(),
        };
        let mut bytes = vec![PERMISSIONS_FORMAT];
        bytes.extend(
            postcard::to_allocvec(&stored)
                .map_err(|e| netabase_store::NetabaseError::encode("permissions", e))?,
        );
        txn.put(crate::NODE_TABLE, PERMISSIONS_KEY, &bytes)?;
    }
    txn.commit()?;
    Ok(())
}
