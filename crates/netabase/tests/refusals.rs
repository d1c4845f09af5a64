//! A misbehaving peer (a raw libp2p Kademlia client) cannot get bad records stored.

mod common;

use std::collections::HashMap;

use common::raw_peer::{self, badly_signed, signed, stolen, tampered};
use common::*;
use libp2p::identity::Keypair;
use libp2p::kad::Record;
use netabase::{NetabaseEvent, RefusalKind};
use netabase_store::kad::{DefinitionRecordExt, KadStoreConfig, RecordSigner, record_key};
use netabase_store::sync::{Hlc, VersionStamp};

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

    // The attacker signs with its own key: its records pass the signature checks and
    // meet the model checks, unless the test breaks the signature on purpose.
    let keypair = Keypair::generate_ed25519();
    let signer = RecordSigner::new(&keypair)?;
    let me = keypair.public().to_peer_id();
    let attacker = raw_peer::swarm(keypair.clone())?;

    let undecodable = signed(
        &signer,
        Record::new(
            record_key::<BlogDefinition, User>(&UserPrimaryKey(100)),
            vec![
                1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
    );
    let mut under_post_key = record_of(BlogDefinition::User(user(101)))?;
    under_post_key.key = record_key::<BlogDefinition, Post>(&PostPrimaryKey(101));
    let under_post_key = signed(&signer, under_post_key);
    let mut under_other_user = record_of(BlogDefinition::User(user(8)))?;
    under_other_user.key = record_key::<BlogDefinition, User>(&UserPrimaryKey(7));
    let under_other_user = signed(&signer, under_other_user);
    let mut big = user(102);
    big.name = "x".repeat(2000);
    let oversized = signed(&signer, record_of(BlogDefinition::User(big))?);
    let unsigned = record_of(BlogDefinition::User(user(103)))?;
    let fine = signed(&signer, record_of(BlogDefinition::User(user(104)))?);
    let altered = tampered(&signed(
        &signer,
        record_of(BlogDefinition::User(user(105)))?,
    ))?;
    let damaged = badly_signed(&signed(
        &signer,
        record_of(BlogDefinition::User(user(106)))?,
    ))?;
    let honest_id = honest.peer_id();
    let claimed = stolen(
        &signed(&signer, record_of(BlogDefinition::User(user(107)))?),
        &honest_id,
        &keypair,
    )?;

    // Stamped at the end of time: it would win its key forever.
    let far = VersionStamp {
        hlc: Hlc {
            millis: u64::MAX,
            counter: u32::MAX,
        },
        writer: signer.author(),
    };
    let user_108 = record_of(BlogDefinition::User(user(108)))?;
    let future = signer
        .seal(user_108.key, Some(user_108.value), far)
        .to_record();

    let to_send = vec![
        future,
        undecodable,
        under_post_key,
        under_other_user,
        oversized,
        unsigned,
        altered,
        damaged,
        claimed,
        fine.clone(),
    ];
    let target = victim.peer_id();
    let driver = raw_peer::send_to_each(
        attacker,
        vec![(target, first_addr(&victim).await?)],
        to_send,
    )?;

    let mut refused: HashMap<RefusalKind, usize> = HashMap::new();
    let mut stored = false;
    let waited = wait_for(&mut events, "nine refusals and one accepted record", |e| {
        match e {
            NetabaseEvent::RecordRefused { kind, source, .. } if *source == Some(me) => {
                *refused.entry(*kind).or_default() += 1;
            }
            NetabaseEvent::RecordStored { key, source } if *source == me => {
                stored |= *key == fine.key;
            }
            _ => {}
        }
        (refused.values().sum::<usize>() >= 9 && stored).then_some(())
    })
    .await;
    driver.abort();
    waited?;

    let count = |kind| refused.get(&kind).copied().unwrap_or(0);
    assert_eq!(count(RefusalKind::TooLarge), 1);
    assert_eq!(count(RefusalKind::Unsigned), 1);
    assert_eq!(count(RefusalKind::TamperedValue), 1);
    assert_eq!(count(RefusalKind::BadSignature), 1);
    assert_eq!(count(RefusalKind::StolenAuthor), 1);
    assert_eq!(count(RefusalKind::FutureStamp), 1);
    assert_eq!(
        count(RefusalKind::Undecodable) + count(RefusalKind::KeyMismatch),
        3
    );
    assert!(count(RefusalKind::KeyMismatch) >= 1);
    let stats = victim.stats();
    assert_eq!(stats.records_refused(), 9);
    assert_eq!(stats.refused_future_stamp, 1);
    assert_eq!(stats.refused_too_large, 1);
    assert_eq!(stats.refused_unsigned, 1);
    assert_eq!(stats.refused_tampered, 1);
    assert_eq!(stats.refused_bad_signature, 1);
    assert_eq!(stats.refused_stolen_author, 1);

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
    for bad in [8, 100, 101, 102, 103, 105, 106, 107, 108] {
        assert!(!ids.contains(&bad), "refused record {bad} was stored");
    }
    let seven: Option<User> = victim.get_record(UserPrimaryKey(7)).await?;
    assert_eq!(seven, Some(user(7)));
    let post: Option<Post> = victim.get_record(PostPrimaryKey(101)).await?;
    assert_eq!(post, None);

    close_all(&[victim, honest]).await;
    Ok(())
}
