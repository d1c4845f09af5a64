//! A misbehaving peer (a raw libp2p Kademlia client) cannot get bad records stored.

mod common;

use std::collections::HashMap;

use common::*;
use futures::StreamExt;
use libp2p::kad::{self, Quorum, Record, store::MemoryStore};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, SwarmBuilder, noise, tcp, yamux};
use netabase::{NetabaseEvent, RefusalKind};
use netabase_store::kad::{DefinitionRecordExt, KadStoreConfig, record_key};

fn record_of(model: BlogDefinition) -> TestResult<Record> {
    Ok(model.to_record()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_refused_counted_and_never_stored() -> TestResult {
    let limits = KadStoreConfig {
        max_value_bytes: 1024,
        ..KadStoreConfig::default()
    };
    let victim = start(config().with_store_limits(limits)).await?;
    let honest = start(config()).await?;
    mesh(&[victim.clone(), honest.clone()]).await?;
    honest.put_record(user(7)).await?;
    let mut events = victim.subscribe_to_broadcasts();

    let mut attacker = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let mut config = kad::Config::new(netabase::KAD_PROTOCOL);
            config.set_max_packet_size(1 << 20);
            let id = key.public().to_peer_id();
            kad::Behaviour::with_config(id, MemoryStore::new(id), config)
        })?
        .build();
    let me = *attacker.local_peer_id();
    let signed = |mut record: Record, publisher: PeerId| {
        record.publisher = Some(publisher);
        record
    };

    let undecodable = Record::new(
        record_key::<BlogDefinition, User>(&UserPrimaryKey(100)),
        vec![
            1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    let mut under_post_key = record_of(BlogDefinition::User(user(101)))?;
    under_post_key.key = record_key::<BlogDefinition, Post>(&PostPrimaryKey(101));
    let mut under_other_user = record_of(BlogDefinition::User(user(8)))?;
    under_other_user.key = record_key::<BlogDefinition, User>(&UserPrimaryKey(7));
    let mut big = user(102);
    big.name = "x".repeat(2000);
    let oversized = record_of(BlogDefinition::User(big))?;
    let forged = signed(
        record_of(BlogDefinition::User(user(103)))?,
        honest.peer_id(),
    );
    let fine = record_of(BlogDefinition::User(user(104)))?;

    let bad = [
        undecodable,
        under_post_key,
        under_other_user,
        oversized,
        forged,
    ];
    let mut to_send: Vec<Record> = bad
        .into_iter()
        .map(|r| {
            if r.publisher.is_some() {
                r
            } else {
                signed(r, me)
            }
        })
        .collect();
    to_send.push(signed(fine.clone(), me));

    let target = victim.peer_id();
    let address = first_addr(&victim).await?;
    attacker
        .behaviour_mut()
        .add_address(&target, address.clone());
    attacker.dial(address)?;
    let driver = tokio::spawn(async move {
        let mut sent = false;
        loop {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                attacker.select_next_some().await
                && peer_id == target
                && !sent
            {
                sent = true;
                for record in to_send.drain(..) {
                    attacker.behaviour_mut().put_record_to(
                        record,
                        std::iter::once(target),
                        Quorum::One,
                    );
                }
            }
        }
    });

    let mut refused: HashMap<RefusalKind, usize> = HashMap::new();
    let mut stored = false;
    let waited = wait_for(&mut events, "five refusals and one accepted record", |e| {
        match e {
            NetabaseEvent::RecordRefused { kind, source, .. } if *source == Some(me) => {
                *refused.entry(*kind).or_default() += 1;
            }
            NetabaseEvent::RecordStored { key, source } if *source == me => {
                stored |= *key == fine.key;
            }
            _ => {}
        }
        (refused.values().sum::<usize>() >= 5 && stored).then_some(())
    })
    .await;
    driver.abort();
    waited?;

    let count = |kind| refused.get(&kind).copied().unwrap_or(0);
    assert_eq!(count(RefusalKind::TooLarge), 1);
    assert_eq!(count(RefusalKind::ForgedPublisher), 1);
    assert_eq!(
        count(RefusalKind::Undecodable) + count(RefusalKind::KeyMismatch),
        3
    );
    assert!(count(RefusalKind::KeyMismatch) >= 1);
    let stats = victim.stats();
    assert_eq!(stats.records_refused(), 5);
    assert_eq!(stats.refused_too_large, 1);
    assert_eq!(stats.refused_forged_publisher, 1);

    // Nothing of the refused records reached the store; the honest ones are intact.
    let held = victim.query_local_records(100).await?;
    let ids: Vec<u64> = held
        .iter()
        .filter_map(|d| match d {
            BlogDefinition::User(u) => Some(u.id),
            _ => None,
        })
        .collect();
    assert!(ids.contains(&7) && ids.contains(&104), "held {ids:?}");
    for bad in [8, 100, 101, 102, 103] {
        assert!(!ids.contains(&bad), "refused record {bad} was stored");
    }
    let seven: Option<User> = victim.get_record(UserPrimaryKey(7)).await?;
    assert_eq!(seven, Some(user(7)));
    let post: Option<Post> = victim.get_record(PostPrimaryKey(101)).await?;
    assert_eq!(post, None);

    close_all(&[victim, honest]).await;
    Ok(())
}
