//! Write permissions on replicating nodes: a non-member's write, an update of someone
//! else's record under `AuthorOnly` and a membership change not signed by an admin are
//! refused and counted on every honest node; a membership change signed by the admin
//! lets a new member write. A rogue node (configured to allow itself everything) makes
//! the forged writes, so they reach the network.

mod common;

use std::collections::HashSet;

use common::*;
use libp2p::kad::RecordKey;
use netabase::{
    Error, NetabaseEvent, Permissions, PolicyReader, RecordOrigin, RefusalKind, StorageConfig,
    WritePolicy, WriteRequest, membership_key,
};
use netabase_store::kad::record_key;
use netabase_store::sync::WriterId;
use tokio::sync::broadcast;

const WRITERS: &str = "writers";

/// The permissions every honest node enforces: users are changed by their author only,
/// posts by the members of `writers`, whose membership `admin` signs.
fn honest(admin: WriterId) -> Permissions {
    let mut permissions = Permissions::default();
    permissions
        .models
        .insert("User".into(), WritePolicy::AuthorOnly);
    permissions
        .models
        .insert("Post".into(), WritePolicy::Group(WRITERS.into()));
    permissions.admins.insert(admin);
    permissions
}

/// A rogue node's permissions: anything goes, and it calls itself an admin.
fn rogue(itself: WriterId) -> Permissions {
    let mut permissions = Permissions::default();
    permissions.admins.insert(itself);
    permissions
}

fn post(id: u64) -> Post {
    Post {
        id,
        title: format!("post {id}"),
        author: 1,
    }
}

/// Waits until `events` reports the refusal of `key` for missing permission.
async fn refused(events: &mut broadcast::Receiver<NetabaseEvent>, key: &RecordKey) -> TestResult {
    wait_for(
        events,
        "a refusal for missing permission",
        |event| match event {
            NetabaseEvent::RecordRefused {
                key: refused,
                kind: RefusalKind::NotPermitted,
                origin,
                ..
            } if refused == key => {
                assert!(matches!(
                    origin,
                    RecordOrigin::LiveUpdate | RecordOrigin::InboundPut
                ));
                Some(())
            }
            _ => None,
        },
    )
    .await
}

/// Waits until every node of `nodes` holds the record of `M` under `id`.
async fn held_by<M>(nodes: &[Node], id: u64, what: &str) -> TestResult
where
    M: netabase_store::schema::NetabaseModelTrait<BlogDefinition>,
    u64: Into<M::PrimaryKey>,
{
    for node in nodes {
        let view = node.view();
        wait_until(what, || {
            let view = view.clone();
            async move { Ok(view.get::<M>(id)?.is_some()) }
        })
        .await?;
    }
    Ok(())
}

/// Waits until `events` reports `key` stored.
async fn stored(events: &mut broadcast::Receiver<NetabaseEvent>, key: &RecordKey) -> TestResult {
    wait_for(events, "the record stored", |event| match event {
        NetabaseEvent::RecordStored { key: stored, .. } if stored == key => Some(()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_follow_the_permissions_on_every_node() -> TestResult {
    // admin, member, newcomer, rogue.
    let nodes = start_many(4, || config().replicate_all()).await?;
    let (admin, member, newcomer, rogue_node) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let honest_nodes = [admin, member, newcomer];
    for node in honest_nodes {
        node.set_permissions(honest(admin.author())).await?;
    }
    rogue_node
        .set_permissions(rogue(rogue_node.author()))
        .await?;
    let mut events: Vec<_> = nodes.iter().map(|n| n.subscribe_to_broadcasts()).collect();
    mesh(&nodes).await?;
    for receiver in &mut events {
        let mut joined = HashSet::new();
        wait_for(receiver, "every replica joined", |event| match event {
            NetabaseEvent::ReplicaJoined { peer } => {
                joined.insert(*peer);
                (joined.len() == 3).then_some(())
            }
            _ => None,
        })
        .await?;
    }

    // The admin makes `writers` = {admin, member}.
    let members_key = membership_key::<BlogDefinition>(WRITERS);
    admin
        .set_members(WRITERS, [admin.author(), member.author()])
        .await?;
    // (The rogue refuses it: it trusts no admin but itself.)
    for receiver in &mut events[1..3] {
        stored(receiver, &members_key).await?;
    }

    // A member writes a post: every node takes it.
    member.put_record(post(1)).await?;
    held_by::<Post>(&nodes, 1, "the member's post arrived").await?;

    // A non-member's post is refused by the honest nodes (the newcomer's own node
    // refuses it locally).
    let refused_local = newcomer.put_record(post(2)).await;
    assert!(
        matches!(refused_local, Err(Error::NotPermitted { .. })),
        "{refused_local:?}"
    );
    rogue_node.put_record(post(3)).await?;
    let key = record_key::<BlogDefinition, Post>(&PostPrimaryKey(3));
    for receiver in &mut events[..3] {
        refused(receiver, &key).await?;
    }

    // Under `AuthorOnly`, the rogue cannot overwrite the member's user.
    member.put_record(user(5)).await?;
    held_by::<User>(&nodes, 5, "the member's user arrived").await?;
    let mut hijacked = user(5);
    hijacked.name = "hijacked".into();
    // An honest node refuses it locally.
    let local = newcomer.put_record(hijacked.clone()).await;
    assert!(
        matches!(local, Err(Error::NotPermitted { .. })),
        "{local:?}"
    );
    rogue_node.put_record(hijacked).await?;
    let key = record_key::<BlogDefinition, User>(&UserPrimaryKey(5));
    for receiver in &mut events[..3] {
        refused(receiver, &key).await?;
    }
    // Nor remove it.
    rogue_node.remove_record::<User>(UserPrimaryKey(5)).await?;
    for receiver in &mut events[..3] {
        refused(receiver, &key).await?;
    }

    // The rogue signs a membership that lets it in: refused, it is no admin.
    rogue_node
        .set_members(WRITERS, [admin.author(), rogue_node.author()])
        .await?;
    for receiver in &mut events[..3] {
        refused(receiver, &members_key).await?;
    }

    for node in honest_nodes {
        let view = node.view();
        assert_eq!(view.get::<Post>(2)?, None);
        assert_eq!(view.get::<Post>(3)?, None);
        assert_eq!(view.get::<User>(5)?, Some(user(5)));
        let stats = node.stats();
        // Post 3, user 5 twice, the membership: at least once each (live update and
        // DHT put may both bring them).
        assert!(stats.refused_not_permitted >= 4, "{stats:?}");
    }

    // The admin lets the newcomer in; then its post is taken everywhere.
    admin
        .set_members(
            WRITERS,
            [admin.author(), member.author(), newcomer.author()],
        )
        .await?;
    stored(&mut events[2], &members_key).await?;
    newcomer.put_record(post(4)).await?;
    held_by::<Post>(&nodes, 4, "the new member's post arrived").await?;
    for node in &nodes {
        node.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_rule_decides_with_the_store() -> TestResult {
    // A post may be written only by the author of the user it names.
    let rule = |write: &WriteRequest<'_, BlogDefinition>,
                store: &dyn PolicyReader<BlogDefinition>|
     -> Result<(), String> {
        let Some(BlogDefinition::Post(post)) = write.value else {
            return Ok(());
        };
        match store.author_of::<User>(post.author) {
            Some(owner) if owner == write.author => Ok(()),
            Some(_) => Err(format!("user {} belongs to someone else", post.author)),
            None => Err(format!("user {} is not known", post.author)),
        }
    };
    let nodes = start_many(3, || config().replicate_all()).await?;
    // The third node runs without the rule: its writes reach the network.
    for node in &nodes[..2] {
        node.set_write_rule::<Post>(rule).await?;
    }
    let mut events: Vec<_> = nodes.iter().map(|n| n.subscribe_to_broadcasts()).collect();
    mesh(&nodes).await?;
    for receiver in &mut events {
        let mut joined = HashSet::new();
        wait_for(receiver, "every replica joined", |event| match event {
            NetabaseEvent::ReplicaJoined { peer } => {
                joined.insert(*peer);
                (joined.len() == 2).then_some(())
            }
            _ => None,
        })
        .await?;
    }
    let (owner, other, outsider) = (&nodes[0], &nodes[1], &nodes[2]);
    owner.put_record(user(1)).await?;
    held_by::<User>(&nodes, 1, "the user arrived").await?;
    // Refused locally for someone else's user.
    let local = other.put_record(post(1)).await;
    assert!(
        matches!(local, Err(Error::NotPermitted { .. })),
        "{local:?}"
    );
    // Refused by the nodes with the rule when it comes from the network.
    outsider.put_record(post(2)).await?;
    let key = record_key::<BlogDefinition, Post>(&PostPrimaryKey(2));
    for receiver in &mut events[..2] {
        refused(receiver, &key).await?;
    }
    // The owner's post is taken.
    owner.put_record(post(3)).await?;
    held_by::<Post>(&nodes[..2], 3, "the owner's post arrived").await?;
    for node in &nodes[..2] {
        assert_eq!(node.view().get::<Post>(2)?, None);
        assert!(node.stats().refused_not_permitted >= 1);
    }
    for node in &nodes {
        node.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_set_at_run_time_survive_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("node.redb");
    let durable = |admin: Option<WriterId>| {
        let config = config()
            .replicate(["User", "Post"])
            .with_storage(StorageConfig::Redb(path.clone()));
        match admin {
            Some(admin) => config.with_admin(admin),
            None => config,
        }
    };
    let configured = Permissions::default();
    // Only someone else may write users: this node's own puts are refused.
    let mut set = Permissions::default();
    set.models.insert(
        "User".into(),
        WritePolicy::Members([WriterId([9; 32])].into_iter().collect()),
    );
    let refused = |result: Result<netabase::PutOutcome, Error>| {
        matches!(result, Err(Error::NotPermitted { .. }))
    };

    let node = start(durable(None)).await?;
    node.set_permissions(set.clone()).await?;
    assert!(refused(node.put_record(user(1)).await));
    node.close().await;
    drop(node);

    // Restarted with the same configuration: enforced from the start.
    let node = start(durable(None)).await?;
    assert_eq!(node.permissions().await?, set);
    assert!(refused(node.put_record(user(2)).await));
    assert_eq!(node.view().get::<User>(2)?, None);
    node.close().await;
    drop(node);

    // Restarted with another configuration: the configuration wins, and the permissions
    // set for the old one are dropped.
    let admin = WriterId([7; 32]);
    let node = start(durable(Some(admin))).await?;
    let mut reconfigured = Permissions::default();
    reconfigured.admins.insert(admin);
    assert_eq!(node.permissions().await?, reconfigured);
    // Stored here (no peer to reach: a failed quorum is expected).
    let put = node.put_record(user(3)).await;
    assert!(
        matches!(put, Ok(_) | Err(Error::QuorumFailed { .. })),
        "{put:?}"
    );
    assert_eq!(node.view().get::<User>(3)?, Some(user(3)));
    node.close().await;
    drop(node);
    let node = start(durable(None)).await?;
    assert_eq!(node.permissions().await?, configured);

    // Setting the configured permissions again removes an override.
    node.set_permissions(set).await?;
    node.set_permissions(configured.clone()).await?;
    node.close().await;
    drop(node);
    let node = start(durable(None)).await?;
    assert_eq!(node.permissions().await?, configured);
    node.close().await;
    Ok(())
}
