//! Three nodes replicating a definition: a put (and a remove) on one reaches the typed
//! stores of the others — `get`, secondary-key queries, `watch` — with the stamp of the
//! signed record, through live updates and the DHT.

mod common;

use std::collections::HashSet;

use common::*;
use netabase::{NetabaseEvent, NodeView};
use netabase_store::Subscription;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::kad::DefinitionRecordExt;
use netabase_store::watch::{DefinitionChange, Event, Filter};

/// `n` started nodes replicating every model of the definition, connected to each
/// other, each having seen every other join its live updates.
async fn replicas(n: usize) -> TestResult<Vec<Node>> {
    let nodes = start_many(n, || config().replicate_all()).await?;
    let mut events: Vec<_> = nodes.iter().map(|n| n.subscribe_to_broadcasts()).collect();
    mesh(&nodes).await?;
    for receiver in &mut events {
        let mut joined = HashSet::new();
        wait_for(receiver, "every replica joined", |event| match event {
            NetabaseEvent::ReplicaJoined { peer } => {
                joined.insert(*peer);
                (joined.len() == n - 1).then_some(())
            }
            _ => None,
        })
        .await?;
    }
    Ok(nodes)
}

type Changes = Subscription<DefinitionChange<BlogDefinition>>;

/// A subscription to the changes of `User` and `Post` in the typed store of `view`.
fn watch(view: &NodeView<BlogDefinition, RedbBackend>) -> Changes {
    view.watch()
        .model::<User>(Filter::all())
        .model::<Post>(Filter::all())
        .subscribe()
}

/// Waits (blocking, off the runtime) for the next commit `subscription` matches, up to
/// [`WAIT`].
async fn next_change(subscription: Changes) -> TestResult<Vec<DefinitionChange<BlogDefinition>>> {
    Ok(
        tokio::task::spawn_blocking(move || subscription.recv_timeout(WAIT))
            .await??
            .map(|event| match event {
                Event::Commit(commit) => commit.changes,
                Event::Lagged(_) => Vec::new(),
            })
            .ok_or("timed out waiting for a watch event")?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_on_one_replica_is_visible_on_the_others() -> TestResult {
    let nodes = replicas(3).await?;
    let (a, others) = (&nodes[0], &nodes[1..]);
    // Subscribed before the put: the changes cannot be missed.
    let watches: Vec<_> = others
        .iter()
        .map(|node| tokio::spawn(next_change(watch(&node.view()))))
        .collect();
    a.put_record(user(1)).await?;
    for watch in watches {
        let changes = watch.await??;
        assert!(
            changes.iter().any(|c| matches!(
                c,
                DefinitionChange::Put { new: BlogDefinition::User(u), .. } if *u == user(1)
            )),
            "{changes:?}"
        );
    }
    let signed_stamp = a.view().version::<User>(1)?.ok_or("no version on A")?.stamp;
    assert_eq!(signed_stamp.writer, a.author());
    for node in others {
        let view = node.view();
        assert_eq!(view.get::<User>(1)?, Some(user(1)));
        let by_email = view
            .read()?
            .open_tree::<User>()
            .get_by_unique_key(UserEmailSecondaryKey(user(1).email))?;
        assert_eq!(by_email, Some(user(1)));
        // The live update arrives (the DHT put may have come first).
        wait_until("the live update is counted", || async {
            Ok(node.stats().live_updates_accepted >= 1)
        })
        .await?;
        // One notion of version: the replica holds the signed record's stamp.
        let version = view.version::<User>(1)?.ok_or("no version")?;
        assert_eq!(version.stamp, signed_stamp);
        assert!(!version.tombstone);
    }

    // A non-unique secondary key, from another node.
    let post = Post {
        id: 7,
        title: "replicated".into(),
        author: 1,
    };
    let watches: Vec<_> = [&nodes[0], &nodes[2]]
        .into_iter()
        .map(|node| tokio::spawn(next_change(watch(&node.view()))))
        .collect();
    nodes[1].put_record(post.clone()).await?;
    for watch in watches {
        watch.await??;
    }
    for node in [&nodes[0], &nodes[2]] {
        let found = node
            .view()
            .read()?
            .open_tree::<Post>()
            .get_by_secondary_key(PostAuthorSecondaryKey(1))?;
        assert_eq!(found, vec![post.clone()]);
    }
    for node in &nodes {
        node.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_propagates_as_a_tombstone() -> TestResult {
    let nodes = replicas(3).await?;
    let a = &nodes[0];
    a.put_record(user(2)).await?;
    for node in &nodes[1..] {
        let view = node.view();
        wait_until("the put arrived", || {
            let view = view.clone();
            async move { Ok(view.get::<User>(2)?.is_some()) }
        })
        .await?;
    }
    let watches: Vec<_> = nodes[1..]
        .iter()
        .map(|node| tokio::spawn(next_change(watch(&node.view()))))
        .collect();
    assert!(a.remove_record::<User>(UserPrimaryKey(2)).await?);
    let tombstone = a.view().version::<User>(2)?.ok_or("no tombstone on A")?;
    assert!(tombstone.tombstone);
    for watch in watches {
        let changes = watch.await??;
        assert!(
            changes.iter().any(|c| matches!(
                c,
                DefinitionChange::Removed { old: BlogDefinition::User(u) } if *u == user(2)
            )),
            "{changes:?}"
        );
    }
    for node in &nodes[1..] {
        let view = node.view();
        assert_eq!(view.get::<User>(2)?, None);
        let version = view.version::<User>(2)?.ok_or("no tombstone")?;
        assert!(version.tombstone);
        assert_eq!(version.stamp, tombstone.stamp);
        // The unique key is free again on every replica.
        let by_email = view
            .read()?
            .open_tree::<User>()
            .get_by_unique_key(UserEmailSecondaryKey(user(2).email))?;
        assert_eq!(by_email, None);
    }
    for node in &nodes {
        // Live updates keep each replica's sync metadata in step with its records.
        node.view().sync_check()?;
        node.close().await;
    }
    Ok(())
}

/// Replicas announce themselves in the DHT under their definition's replicas key, so
/// nodes that only share a bootstrap peer (which does not replicate) find each other:
/// every node's lookup returns exactly the replicas, and a put on one reaches the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_find_each_other_through_a_peer_that_does_not_replicate() -> TestResult {
    let hub = start(config()).await?;
    let hub_addr = first_addr(&hub).await?;
    let replica = || {
        config()
            .replicate_all()
            .with_sync_interval(Some(std::time::Duration::from_millis(200)))
            .with_bootstrap_peer(hub.peer_id(), hub_addr.clone())
    };
    let a = start(replica()).await?;
    let c = start(replica()).await?;
    let expected: HashSet<_> = [a.peer_id(), c.peer_id()].into_iter().collect();
    wait_until("the hub knows both replicas", || async {
        Ok(hub.replicas().await.is_ok_and(|found| found == expected))
    })
    .await?;
    wait_until("each replica finds the other", || async {
        let from_a = a.replicas().await.unwrap_or_default();
        let from_c = c.replicas().await.unwrap_or_default();
        Ok(from_a.contains(&c.peer_id()) && from_c.contains(&a.peer_id()))
    })
    .await?;
    // Neither list names the hub: it replicates nothing.
    assert!(!a.replicas().await?.contains(&hub.peer_id()));
    a.put_record(user(5)).await?;
    wait_until("the put reaches the other replica", || async {
        Ok(c.view().get::<User>(5)? == Some(user(5)))
    })
    .await?;
    close_all(&[a, c, hub]).await;
    Ok(())
}

/// A replica holding more replicated records than the record store's limit serves them
/// (to itself, and through the DHT to a node that does not replicate), republishes
/// them, and still holds DHT records of a model it does not replicate, up to the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_over_the_record_limit_serves_and_republishes_its_copies() -> TestResult {
    let limits = netabase_store::kad::KadStoreConfig {
        max_records: 2,
        ..netabase_store::kad::KadStoreConfig::default()
    };
    let replica = start(
        config()
            .replicate(["User"])
            .with_store_limits(limits)
            .with_publication_interval(Some(std::time::Duration::from_secs(1)))
            .with_replication_interval(Some(std::time::Duration::from_secs(1))),
    )
    .await?;
    for id in 1..=4 {
        // Alone, the replica keeps each record (no peer to reach the quorum).
        match replica.put_record(user(id)).await {
            Ok(_) | Err(netabase::Error::QuorumFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Posts (not replicated) sent by a peer: two held, the third refused.
    let mut client = kad_client()?;
    let posts = (1..=3)
        .map(|id| {
            let post = Post {
                id,
                title: "held for the DHT".into(),
                author: 1,
            };
            BlogDefinition::Post(post).to_record()
        })
        .collect::<Result<Vec<_>, _>>()?;
    send_records(
        &mut client,
        replica.peer_id(),
        first_addr(&replica).await?,
        posts,
    )
    .await?;
    wait_until("the posts are decided", || async {
        let stats = replica.stats();
        Ok(stats.records_accepted + stats.refused_store_full >= 3)
    })
    .await?;
    let stats = replica.stats();
    assert_eq!((stats.records_accepted, stats.refused_store_full), (2, 1));
    let held = replica.query_local_records(100).await?;
    let held_posts = held
        .iter()
        .filter(|d| matches!(d, BlogDefinition::Post(_)))
        .count();
    assert_eq!((held.len(), held_posts), (6, 2));

    // A newcomer that replicates nothing finds every user through the DHT, and the
    // replica republishes its copies to it.
    let reader = start(config()).await?;
    let mut reader_events = reader.subscribe_to_broadcasts();
    mesh(&[replica.clone(), reader.clone()]).await?;
    for id in 1..=4 {
        let found: Option<User> = reader.get_record(UserPrimaryKey(id)).await?;
        assert_eq!(found, Some(user(id)));
        let own: Option<User> = replica.get_record(UserPrimaryKey(id)).await?;
        assert_eq!(own, Some(user(id)));
    }
    let from = replica.peer_id();
    let user_key = netabase_store::kad::record_key::<BlogDefinition, User>(&UserPrimaryKey(4));
    wait_for(
        &mut reader_events,
        "the replica to republish",
        |e| match e {
            NetabaseEvent::RecordStored { source, key } if *source == from && *key == user_key => {
                Some(())
            }
            _ => None,
        },
    )
    .await?;
    close_all(&[replica, reader]).await;
    Ok(())
}
