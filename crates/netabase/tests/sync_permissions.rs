//! Permissions on the catch-up path: a node that was apart while a group's membership
//! changed learns the change when it reconnects (memberships travel first in a
//! session), then accepts the new member's write and refuses the removed member's,
//! both delivered to it by reconciliation only, and counts the refusal as the other
//! routes count theirs.

mod common;

use common::*;
use libp2p::kad::RecordKey;
use netabase::{
    NetabaseEvent, Permissions, RecordOrigin, RefusalKind, WritePolicy, membership_key,
};
use netabase_store::kad::record_key;
use netabase_store::sync::WriterId;
use tokio::sync::broadcast;

const WRITERS: &str = "writers";

/// Posts may be written by the members of `writers`, whose membership `admin` signs.
fn honest(admin: WriterId) -> Permissions {
    let mut permissions = Permissions::default();
    permissions
        .models
        .insert("Post".into(), WritePolicy::Group(WRITERS.into()));
    permissions.admins.insert(admin);
    permissions
}

fn post(id: u64) -> Post {
    Post {
        id,
        title: format!("post {id}"),
        author: 1,
    }
}

async fn stored(events: &mut broadcast::Receiver<NetabaseEvent>, key: &RecordKey) -> TestResult {
    wait_for(events, "the record stored", |event| match event {
        NetabaseEvent::RecordStored { key: stored, .. } if stored == key => Some(()),
        _ => None,
    })
    .await
}

async fn part(a: &Node, b: &Node) -> TestResult {
    a.disconnect(b.peer_id()).await?;
    b.disconnect(a.peer_id()).await?;
    wait_until("the nodes are apart", || async {
        Ok(!a.connected_peers().await?.contains(&b.peer_id())
            && !b.connected_peers().await?.contains(&a.peer_id()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_apart_during_a_membership_change_learns_it_on_reconnect() -> TestResult {
    // admin, member (removed later), newcomer (added later), apart (offline meanwhile).
    let nodes = start_many(4, || config().replicate_all().with_sync_interval(None)).await?;
    let (admin, member, newcomer, apart) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    for node in &nodes {
        node.set_permissions(honest(admin.author())).await?;
    }
    let mut apart_events = apart.subscribe_to_broadcasts();
    let mut member_events = member.subscribe_to_broadcasts();
    let mut newcomer_events = newcomer.subscribe_to_broadcasts();

    // `writers` = {admin, member}, signed before anyone is connected: the others learn
    // it from the memberships exchanged at the start of their sessions.
    admin
        .set_members(WRITERS, [admin.author(), member.author()])
        .await
        .ok();
    mesh(&nodes).await?;
    member.put_record(post(1)).await?;
    let view = apart.view();
    wait_until("the member's post reached every node", || {
        let view = view.clone();
        async move { Ok(view.get::<Post>(1)?.is_some()) }
    })
    .await?;

    // Apart: the membership changes to {admin, newcomer}.
    for other in &nodes[..3] {
        part(apart, other).await?;
    }
    let members_key = membership_key::<BlogDefinition>(WRITERS);
    admin
        .set_members(WRITERS, [admin.author(), newcomer.author()])
        .await?;
    stored(&mut member_events, &members_key).await?;
    stored(&mut newcomer_events, &members_key).await?;
    // The new member writes; the removed member's node, made to enforce nothing,
    // writes too (the honest nodes it reaches refuse it).
    newcomer.put_record(post(2)).await?;
    member.set_permissions(Permissions::default()).await?;
    member.put_record(post(3)).await.ok();
    assert_eq!(apart.view().get::<Post>(2)?, None);
    assert_eq!(apart.view().get::<Post>(3)?, None);
    let before = apart.stats().refused_not_permitted;

    // Back: a session with the admin brings the membership, then the new member's
    // post; one with the removed member offers its post, which is refused.
    apart
        .add_address(admin.peer_id(), first_addr(admin).await?)
        .await?;
    let view = apart.view();
    wait_until("the new member's post reached the node", || {
        let view = view.clone();
        async move { Ok(view.get::<Post>(2)?.is_some()) }
    })
    .await?;
    apart
        .add_address(member.peer_id(), first_addr(member).await?)
        .await?;
    apart.sync_with(member.peer_id()).await?;
    let refused_key = record_key::<BlogDefinition, Post>(&PostPrimaryKey(3));
    wait_for(
        &mut apart_events,
        "the removed member's post refused",
        |event| match event {
            NetabaseEvent::RecordRefused {
                key,
                kind: RefusalKind::NotPermitted,
                origin: RecordOrigin::Sync,
                ..
            } if *key == refused_key => Some(()),
            _ => None,
        },
    )
    .await?;
    assert_eq!(apart.view().get::<Post>(3)?, None);
    assert_eq!(apart.view().get::<Post>(2)?, Some(post(2)));
    assert!(apart.stats().refused_not_permitted > before);
    // The session's own count follows once its step is reported.
    wait_until("the session counted the refusal", || async {
        Ok(apart.stats().sync_records_refused >= 1)
    })
    .await?;
    close_all(&nodes).await;
    Ok(())
}
