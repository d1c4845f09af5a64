//! Signed, versioned records on six nodes: replication by any peer, refusal of forged
//! records, one winner per key, and deletions that stick.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::raw_peer::{self, badly_signed, signed, stolen, tampered, value_of};
use common::*;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use netabase::{NetabaseConfig, NetabaseEvent};
use netabase_store::kad::{DefinitionRecordExt, RecordSigner, record_key};

/// Six-node tests replicate every second, so a replication round is quick to wait for.
fn replicating() -> NetabaseConfig {
    config().with_replication_interval(Some(Duration::from_secs(1)))
}

async fn holds_user(node: &Node, id: u64) -> TestResult<bool> {
    Ok(node
        .query_local_records(100)
        .await?
        .iter()
        .any(|d| matches!(d, BlogDefinition::User(u) if u.id == id)))
}

async fn addresses(nodes: &[Node]) -> TestResult<Vec<(PeerId, Multiaddr)>> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        out.push((node.peer_id(), first_addr(node).await?));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_outlives_its_publisher_through_replication_by_other_peers() -> TestResult {
    let nodes = start_many(6, replicating).await?;
    mesh(&nodes).await?;
    let author = nodes[0].peer_id();
    let outcome = nodes[0].put_record(user(1)).await?;
    assert_eq!(outcome.stored_on, 3);

    // The three peers that stored it, and the two that did not.
    async fn holders(nodes: &[Node]) -> TestResult<Vec<usize>> {
        let mut out = Vec::new();
        for (i, node) in nodes.iter().enumerate().skip(1) {
            if holds_user(node, 1).await? {
                out.push(i);
            }
        }
        Ok(out)
    }
    wait_until("three peers hold the record", || async {
        Ok(holders(&nodes).await?.len() == 3)
    })
    .await?;
    let holders = holders(&nodes).await?;
    let others: Vec<usize> = (1..6).filter(|i| !holders.contains(i)).collect();
    let keeper = holders[2];
    let mut other_events: Vec<_> = others
        .iter()
        .map(|&i| nodes[i].subscribe_to_broadcasts())
        .collect();

    // The publisher and two of the holders go offline: only `keeper` still has it.
    nodes[0].close().await;
    nodes[holders[0]].close().await;
    nodes[holders[1]].close().await;

    // The keeper replicates the author's record to the peers now closest to its key,
    // which accept it from a peer that is not its author.
    let key = record_key::<BlogDefinition, User>(&UserPrimaryKey(1));
    for events in &mut other_events {
        wait_for(events, "a replica from a third peer", |e| match e {
            NetabaseEvent::RecordStored { key: k, source } if *k == key && *source != author => {
                Some(())
            }
            _ => None,
        })
        .await?;
    }
    for &i in &others {
        assert!(holds_user(&nodes[i], 1).await?, "node {i} holds no replica");
    }

    // Now the keeper goes too: the record lives on in the replicas.
    nodes[keeper].close().await;
    for &i in &others {
        let found: Option<User> = nodes[i].get_record(UserPrimaryKey(1)).await?;
        assert_eq!(found, Some(user(1)), "node {i}");
        assert_eq!(nodes[i].stats().records_refused(), 0);
    }
    for &i in &others {
        nodes[i].close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_badly_signed_and_stolen_records_are_refused_by_every_node() -> TestResult {
    let nodes = start_many(6, config).await?;
    mesh(&nodes).await?;

    let keypair = Keypair::generate_ed25519();
    let signer = RecordSigner::new(&keypair)?;
    let attacker = keypair.public().to_peer_id();
    let sealed = |id: u64| -> TestResult<_> {
        Ok(signed(&signer, BlogDefinition::User(user(id)).to_record()?))
    };
    let bad = vec![
        tampered(&sealed(201)?)?,
        badly_signed(&sealed(202)?)?,
        stolen(&sealed(203)?, &nodes[0].peer_id(), &keypair)?,
    ];
    let driver = raw_peer::send_to_each(
        raw_peer::swarm(keypair.clone())?,
        addresses(&nodes).await?,
        bad,
    )?;
    let counted = async {
        for (i, node) in nodes.iter().enumerate() {
            wait_until(&format!("node {i} refuses the three records"), || async {
                let stats = node.stats();
                Ok(stats.refused_tampered == 1
                    && stats.refused_bad_signature == 1
                    && stats.refused_stolen_author == 1)
            })
            .await?;
        }
        TestResult::Ok(())
    }
    .await;
    driver.abort();
    counted?;

    for (i, node) in nodes.iter().enumerate() {
        let stats = node.stats();
        assert_eq!(stats.records_refused(), 3, "node {i}: {stats:?}");
        for id in [201, 202, 203] {
            assert!(!holds_user(node, id).await?, "node {i} stored record {id}");
        }
    }
    // The victim of the stolen claim never wrote user 203, and nobody serves it.
    let found: Option<User> = nodes[5].get_record(UserPrimaryKey(203)).await?;
    assert_eq!(found, None);
    assert_ne!(attacker, nodes[0].peer_id());
    close_all(&nodes).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_key_converge_on_one_winner_everywhere() -> TestResult {
    let nodes = start_many(6, replicating).await?;
    mesh(&nodes).await?;
    let mut from_a = user(5);
    from_a.name = "written by a".into();
    let mut from_b = user(5);
    from_b.name = "written by b".into();

    let (a, b) = tokio::join!(
        nodes[0].put_record(from_a.clone()),
        nodes[1].put_record(from_b.clone())
    );
    a?;
    b?;

    // Each writer holds its own model in its typed store; the network agrees on one.
    async fn answers(nodes: &[Node]) -> TestResult<HashSet<Option<String>>> {
        let mut out = HashSet::new();
        for node in nodes {
            let found: Option<User> = node.get_record(UserPrimaryKey(5)).await?;
            out.insert(found.map(|u| u.name));
        }
        Ok(out)
    }
    wait_until("every node returns the same winner", || async {
        Ok(answers(&nodes).await?.len() == 1)
    })
    .await?;
    let name = answers(&nodes)
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or("no winner")?;
    let winner = if name == from_a.name {
        from_a.clone()
    } else {
        from_b.clone()
    };
    assert!(name == from_a.name || name == from_b.name, "{name}");

    // Stable: the loser's later republications and the replication rounds do not
    // change it, and the loser's copy is refused wherever the winner is held.
    let loser = if winner == from_a {
        &nodes[1]
    } else {
        &nodes[0]
    };
    let again: Option<User> = loser.get_record(UserPrimaryKey(5)).await?;
    assert_eq!(again, Some(winner.clone()));
    for node in &nodes {
        let found: Option<User> = node.get_record(UserPrimaryKey(5)).await?;
        assert_eq!(found.as_ref(), Some(&winner));
    }
    close_all(&nodes).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_absent_everywhere_and_an_older_copy_does_not_resurrect() -> TestResult {
    let nodes = start_many(6, replicating).await?;
    mesh(&nodes).await?;
    nodes[0].put_record(user(9)).await?;

    // A raw peer keeps the signed original, to re-publish it after the delete.
    let keypair = Keypair::generate_ed25519();
    let replayer = keypair.public().to_peer_id();
    let mut raw = raw_peer::swarm(keypair)?;
    let targets = addresses(&nodes).await?;
    let key = record_key::<BlogDefinition, User>(&UserPrimaryKey(9));
    let original = raw_peer::fetch(&mut raw, &targets, key.clone()).await?;
    let model_bytes = BlogDefinition::User(user(9)).to_record()?.value;
    assert_eq!(value_of(&original), Some(model_bytes));

    // Another node reads the model, then deletes it.
    let read: Option<User> = nodes[2].get_record(UserPrimaryKey(9)).await?;
    assert_eq!(read, Some(user(9)));
    nodes[2].remove_record::<User>(UserPrimaryKey(9)).await?;
    for (i, node) in nodes.iter().enumerate() {
        wait_until(&format!("node {i} sees the delete"), || async {
            Ok(node.get_record::<User>(UserPrimaryKey(9)).await?.is_none())
        })
        .await?;
    }

    // The older copy is re-published to every node. Its author (node 0) never hears of
    // it: libp2p drops inbound records that name the receiver as their publisher.
    let mut events: Vec<_> = nodes[1..]
        .iter()
        .map(|n| n.subscribe_to_broadcasts())
        .collect();
    let driver = raw_peer::send_to_each(raw, targets, vec![original])?;
    let handled = async {
        for (i, events) in events.iter_mut().enumerate() {
            let what = format!("node {} to handle the replay", i + 1);
            wait_for(events, &what, |e| match e {
                NetabaseEvent::RecordStored { source, .. } if *source == replayer => Some(()),
                NetabaseEvent::RecordRefused {
                    source: Some(source),
                    ..
                } if *source == replayer => Some(()),
                _ => None,
            })
            .await?;
        }
        TestResult::Ok(())
    }
    .await;
    driver.abort();
    handled?;

    // Every node that holds the tombstone refused it; no node returns the model.
    let superseded: u64 = nodes.iter().map(|n| n.stats().refused_superseded).sum();
    assert!(
        superseded >= 3,
        "only {superseded} nodes refused the old copy"
    );
    for (i, node) in nodes.iter().enumerate() {
        let found: Option<User> = node.get_record(UserPrimaryKey(9)).await?;
        assert_eq!(found, None, "node {i} resurrected the deleted model");
    }
    close_all(&nodes).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_expires_after_the_configured_age() -> TestResult {
    use futures::StreamExt;
    use libp2p::kad::Quorum;

    let ttl = Duration::from_secs(2);
    let nodes = start_many(2, || config().with_tombstone_ttl(ttl)).await?;
    mesh(&nodes).await?;
    nodes[0].put_record(user(11)).await?;
    let keypair = Keypair::generate_ed25519();
    let replayer = keypair.public().to_peer_id();
    let mut raw = raw_peer::swarm(keypair)?;
    let targets = addresses(&nodes).await?;
    let key = record_key::<BlogDefinition, User>(&UserPrimaryKey(11));
    let original = raw_peer::fetch(&mut raw, &targets, key).await?;
    nodes[0].remove_record::<User>(UserPrimaryKey(11)).await?;
    let gone: Option<User> = nodes[1].get_record(UserPrimaryKey(11)).await?;
    assert_eq!(gone, None);

    // The old copy is offered to node 1 again and again: refused while the tombstone
    // lives, accepted once it has expired.
    let mut events = nodes[1].subscribe_to_broadcasts();
    let target = nodes[1].peer_id();
    raw.behaviour_mut()
        .add_address(&target, targets[1].1.clone());
    let driver = tokio::spawn(async move {
        let mut offer = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = offer.tick() => {
                    let to = std::iter::once(target);
                    raw.behaviour_mut().put_record_to(original.clone(), to, Quorum::One);
                }
                _ = raw.select_next_some() => {}
            }
        }
    });
    let refused = wait_for(&mut events, "the replay to be refused", |e| match e {
        NetabaseEvent::RecordRefused {
            source: Some(s), ..
        } if *s == replayer => Some(()),
        _ => None,
    })
    .await;
    let accepted = wait_for(&mut events, "the replay to be accepted", |e| match e {
        NetabaseEvent::RecordStored { source, .. } if *source == replayer => Some(()),
        _ => None,
    })
    .await;
    driver.abort();
    refused?;
    accepted?;
    assert!(nodes[1].stats().refused_superseded >= 1);
    let back: Option<User> = nodes[1].get_record(UserPrimaryKey(11)).await?;
    assert_eq!(back, Some(user(11)));
    close_all(&nodes).await;
    Ok(())
}
