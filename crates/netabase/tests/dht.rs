//! Records and providers across several nodes on loopback.

mod common;

use std::time::Duration;

use common::*;
use libp2p::kad::Mode;
use netabase::{NetabaseEvent, StorageConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_put_on_one_node_is_found_typed_on_another() -> TestResult {
    let nodes = start_many(5, config).await?;
    mesh(&nodes).await?;
    let (a, e) = (&nodes[0], &nodes[4]);

    let outcome = a.put_record(user(7)).await?;
    assert!(
        outcome.stored_on >= 1,
        "stored on {} peers",
        outcome.stored_on
    );
    let found: Option<User> = e.get_record(UserPrimaryKey(7)).await?;
    assert_eq!(found, Some(user(7)));
    let missing: Option<User> = e.get_record(UserPrimaryKey(8)).await?;
    assert_eq!(missing, None);
    // Same primary key value, other model: another record.
    let post: Option<Post> = e.get_record(PostPrimaryKey(7)).await?;
    assert_eq!(post, None);

    // The publisher's typed store holds the model for local queries.
    assert_eq!(a.view().get::<User>(UserPrimaryKey(7))?, Some(user(7)));

    a.start_providing::<User>(UserPrimaryKey(7)).await?;
    // Kademlia's ADD_PROVIDER has no reply: the announcement reaches the closest peers
    // some time after `start_providing` returns, so wait for it to be found.
    wait_until("a is found as a provider", || async {
        Ok(e.get_providers::<User>(UserPrimaryKey(7))
            .await?
            .contains(&a.peer_id()))
    })
    .await?;
    a.stop_providing::<User>(UserPrimaryKey(7)).await?;

    close_all(&nodes).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_identity_and_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("node.redb");
    let durable = || {
        config()
            .with_storage(StorageConfig::Redb(path.clone()))
            .with_publication_interval(Some(Duration::from_secs(1)))
            .with_replication_interval(Some(Duration::from_secs(1)))
    };

    let a = start(durable()).await?;
    let before = a.peer_id();
    let b = start(config()).await?;
    mesh(&[a.clone(), b.clone()]).await?;
    a.put_record(user(1)).await?;
    a.close().await;
    b.close().await;
    drop(a);

    let a = start(durable()).await?;
    assert_eq!(a.peer_id(), before);
    let held = a.query_local_records(10).await?;
    assert!(
        held.iter()
            .any(|d| matches!(d, BlogDefinition::User(u) if *u == user(1)))
    );

    // A newcomer that never saw the put finds the record on the restarted node, which
    // also republishes it to the newcomer.
    let c = start(config()).await?;
    let mut c_events = c.subscribe_to_broadcasts();
    mesh(&[a.clone(), c.clone()]).await?;
    let found: Option<User> = c.get_record(UserPrimaryKey(1)).await?;
    assert_eq!(found, Some(user(1)));
    let from = a.peer_id();
    wait_for(
        &mut c_events,
        "the restarted node to republish",
        |e| match e {
            NetabaseEvent::RecordStored { source, .. } if *source == from => Some(()),
            _ => None,
        },
    )
    .await?;

    close_all(&[a, c]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_churn() -> TestResult {
    let nodes = start_many(6, config).await?;
    mesh(&nodes).await?;
    let outcome = nodes[0].put_record(user(42)).await?;
    assert_eq!(outcome.stored_on, 3);
    nodes[0].close().await;
    nodes[1].close().await;
    for reader in &nodes[2..] {
        let found: Option<User> = reader.get_record(UserPrimaryKey(42)).await?;
        assert_eq!(found, Some(user(42)));
    }
    close_all(&nodes[2..]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_reports_the_failed_quorum_but_keeps_the_record() -> TestResult {
    let node = start(config()).await?;
    let refused = node.put_record(user(3)).await;
    assert!(matches!(
        refused,
        Err(netabase::Error::QuorumFailed { stored_on: 0, .. })
    ));
    let found: Option<User> = node.get_record(UserPrimaryKey(3)).await?;
    assert_eq!(found, Some(user(3)));
    // The tombstone is stored locally and reaches no peer: the same honest report.
    let removed = node.remove_record::<User>(UserPrimaryKey(3)).await;
    assert!(matches!(
        removed,
        Err(netabase::Error::QuorumFailed { stored_on: 0, .. })
    ));
    let gone: Option<User> = node.get_record(UserPrimaryKey(3)).await?;
    assert_eq!(gone, None);
    node.close().await;
    // Commands after close fail cleanly.
    assert!(matches!(node.mode().await, Err(netabase::Error::Stopped)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_feeds_kademlia_and_subscriptions_work_before_start() -> TestResult {
    let a = Node::create(config())?;
    let mut a_events = a.subscribe_to_broadcasts();
    a.start().await?;
    wait_for(&mut a_events, "the first listen address", |e| {
        matches!(e, NetabaseEvent::ListeningOn { .. }).then_some(())
    })
    .await?;
    assert_eq!(a.mode().await?, Mode::Server);

    // B only knows A; A learns B's listen address through Identify.
    let b = start(config()).await?;
    b.add_address(a.peer_id(), first_addr(&a).await?).await?;
    let b_id = b.peer_id();
    wait_for(&mut a_events, "A to route to B", |e| match e {
        NetabaseEvent::RoutingUpdated { peer } if *peer == b_id => Some(()),
        _ => None,
    })
    .await?;
    b.bootstrap().await?;

    b.set_mode(Some(Mode::Client)).await?;
    assert_eq!(b.mode().await?, Mode::Client);
    close_all(&[a, b]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_refuse_extra_connections() -> TestResult {
    let limits = netabase::ConnectionLimits::default().with_max_established_incoming(Some(2));
    let limited = start(config().with_connection_limits(limits)).await?;
    let mut events = limited.subscribe_to_broadcasts();
    let dialers = start_many(4, config).await?;
    let addr = first_addr(&limited).await?;
    for dialer in &dialers {
        dialer.add_address(limited.peer_id(), addr.clone()).await?;
    }
    let mut refused = 0;
    wait_for(&mut events, "two refused connections", |e| {
        if let NetabaseEvent::ConnectionRefused { inbound: true, .. } = e {
            refused += 1;
        }
        (refused >= 2).then_some(())
    })
    .await?;
    assert!(limited.connected_peers().await?.len() <= 2);
    assert!(limited.stats().connections_refused >= 2);
    close_all(&dialers).await;
    limited.close().await;
    Ok(())
}
