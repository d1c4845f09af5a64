//! The storage worker's apply path for replicated models: signed records from several
//! authors, delivered in different orders to different workers, leave the same typed
//! store everywhere — the version rule decides keys and unique keys alike.

mod common;

use common::*;
use libp2p::PeerId;
use libp2p::identity::Keypair;
use libp2p::kad::Record;
use netabase::replication::{Replicated, Replication};
use netabase::worker::{InboundOutcome, StorageWorker};
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::{Backend, Direction, RawRange, WriteTxn, collect_range};
use netabase_store::kad::{
    DefinitionRecordExt, KadStore, KadStoreConfig, RECORDS_TABLE, REPLICAS_TABLE, RecordSigner,
    SignedRecordError, record_key, wall_millis,
};
use netabase_store::sync::{Hlc, VersionStamp};

type Worker = StorageWorker<BlogDefinition, MemoryBackend>;

fn replicating() -> TestResult<Worker> {
    let mut replication = Replication::default();
    replication.models = Replicated::All;
    Ok(Worker::spawn_replicating(
        MemoryBackend::new(),
        KadStoreConfig::default(),
        replication,
    )?)
}

fn signer() -> TestResult<RecordSigner> {
    Ok(RecordSigner::new(&Keypair::generate_ed25519())?)
}

/// `model` signed by `author` with a stamp `counter` ticks into the current
/// millisecond `now`.
fn sealed(
    author: &RecordSigner,
    model: BlogDefinition,
    now: u64,
    counter: u32,
) -> TestResult<Record> {
    let unsigned = model.to_record()?;
    let stamp = VersionStamp {
        hlc: Hlc {
            millis: now,
            counter,
        },
        writer: author.author(),
    };
    Ok(author
        .seal(unsigned.key, Some(unsigned.value), stamp)
        .to_record())
}

fn named(id: u64, email: &str) -> User {
    User {
        id,
        name: format!("user {id}"),
        email: email.into(),
    }
}

async fn deliver(worker: &Worker, records: &[Record]) -> TestResult<Vec<InboundOutcome>> {
    let mut outcomes = Vec::new();
    for record in records {
        outcomes.push(worker.store_inbound(record.clone()).await?);
    }
    Ok(outcomes)
}

#[tokio::test]
async fn every_order_of_delivery_gives_the_same_typed_store() -> TestResult {
    let (x, y) = (signer()?, signer()?);
    let now = wall_millis();
    // Two authors take the same unique email for different users; y's is newer.
    let by_x = sealed(&x, BlogDefinition::User(named(1, "same@x")), now, 0)?;
    let by_y = sealed(&y, BlogDefinition::User(named(2, "same@x")), now, 1)?;
    // An older version of user 2 (by x) arrives late on one side.
    let stale = sealed(&x, BlogDefinition::User(named(2, "old@x")), now, 0)?;

    let first = replicating()?;
    let outcomes = deliver(&first, &[by_x.clone(), by_y.clone(), stale.clone()]).await?;
    assert!(matches!(outcomes[0], InboundOutcome::Stored));
    assert!(matches!(outcomes[1], InboundOutcome::Stored));
    assert!(
        matches!(
            outcomes[2],
            InboundOutcome::Refused(SignedRecordError::Superseded { .. })
        ),
        "{:?}",
        outcomes[2]
    );
    let second = replicating()?;
    // The same records in the other order, one of them twice.
    deliver(&second, &[stale, by_y.clone(), by_x, by_y]).await?;

    for worker in [&first, &second] {
        let view = worker.view();
        // The newer version holds the email; the older holder was removed.
        assert_eq!(view.get::<User>(2)?, Some(named(2, "same@x")));
        assert_eq!(view.get::<User>(1)?, None);
        let holder = view
            .read()?
            .open_tree::<User>()
            .get_by_unique_key(UserEmailSecondaryKey("same@x".into()))?;
        assert_eq!(holder, Some(named(2, "same@x")));
        let version = view.version::<User>(2)?.ok_or("no version of user 2")?;
        assert_eq!(version.stamp.writer, y.author());
        assert_eq!(version.stamp.hlc.counter, 1);
        assert_eq!(view.read()?.open_tree::<User>().len()?, 1);
        worker.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_tombstone_removes_the_replicated_record() -> TestResult {
    let author = signer()?;
    let now = wall_millis();
    let put = sealed(&author, BlogDefinition::User(user(3)), now, 0)?;
    let key = record_key::<BlogDefinition, User>(&UserPrimaryKey(3));
    let stamp = VersionStamp {
        hlc: Hlc {
            millis: now,
            counter: 1,
        },
        writer: author.author(),
    };
    let tombstone = author.seal(key, None, stamp).to_record();
    let worker = replicating()?;
    deliver(&worker, &[put]).await?;
    assert_eq!(worker.view().get::<User>(3)?, Some(user(3)));
    let outcome = worker.store_inbound(tombstone).await?;
    assert!(matches!(outcome, InboundOutcome::Stored), "{outcome:?}");
    assert_eq!(worker.view().get::<User>(3)?, None);
    let version = worker.view().version::<User>(3)?.ok_or("no tombstone")?;
    assert!(version.tombstone);
    assert_eq!(version.stamp, stamp);
    worker.close().await;
    Ok(())
}

/// A worker replicating everything under these permissions.
fn guarded(permissions: netabase::Permissions) -> TestResult<Worker> {
    let mut replication = Replication::default();
    replication.models = Replicated::All;
    replication.permissions = permissions;
    Ok(Worker::spawn_replicating(
        MemoryBackend::new(),
        KadStoreConfig::default(),
        replication,
    )?)
}

/// `membership` signed by `author`, stamped `counter` ticks into `now`.
fn membership(
    author: &RecordSigner,
    membership: &netabase::Membership,
    now: u64,
    counter: u32,
) -> TestResult<Record> {
    let key = netabase::membership_key::<BlogDefinition>(&membership.group);
    let value = postcard::to_allocvec(membership)?;
    let stamp = VersionStamp {
        hlc: Hlc {
            millis: now,
            counter,
        },
        writer: author.author(),
    };
    Ok(author.seal(key, Some(value), stamp).to_record())
}

/// The apply path every inbound route shares (DHT puts, live updates, reconciliation)
/// enforces the permissions itself, whoever hands it the records.
#[tokio::test]
async fn the_apply_path_enforces_the_permissions() -> TestResult {
    let (admin, member, stranger) = (signer()?, signer()?, signer()?);
    let mut permissions = netabase::Permissions::default();
    permissions.models.insert(
        "Post".into(),
        netabase::WritePolicy::Group("writers".into()),
    );
    permissions
        .models
        .insert("User".into(), netabase::WritePolicy::AuthorOnly);
    permissions.admins.insert(admin.author());
    let worker = guarded(permissions)?;
    let now = wall_millis();
    let post = |id| {
        BlogDefinition::Post(Post {
            id,
            title: format!("post {id}"),
            author: 1,
        })
    };

    // Before any membership nobody writes posts.
    let early = worker
        .store_inbound(sealed(&member, post(1), now, 0)?)
        .await?;
    assert!(
        matches!(early, InboundOutcome::NotPermitted(_)),
        "{early:?}"
    );
    // A membership signed by a stranger is refused; the admin's is stored.
    let writers = netabase::Membership::new("writers", [member.author()]);
    let forged = worker
        .store_inbound(membership(&stranger, &writers, now, 1)?)
        .await?;
    assert!(
        matches!(forged, InboundOutcome::NotPermitted(_)),
        "{forged:?}"
    );
    let signed = worker
        .store_inbound(membership(&admin, &writers, now, 2)?)
        .await?;
    assert!(matches!(signed, InboundOutcome::Stored), "{signed:?}");
    // Now the member writes, the stranger still does not.
    let by_member = worker
        .store_inbound(sealed(&member, post(2), now, 3)?)
        .await?;
    assert!(matches!(by_member, InboundOutcome::Stored), "{by_member:?}");
    let by_stranger = worker
        .store_inbound(sealed(&stranger, post(3), now, 4)?)
        .await?;
    assert!(
        matches!(by_stranger, InboundOutcome::NotPermitted(_)),
        "{by_stranger:?}"
    );
    // Under `AuthorOnly` the first author keeps the key.
    let first = worker
        .store_inbound(sealed(&member, BlogDefinition::User(user(1)), now, 5)?)
        .await?;
    assert!(matches!(first, InboundOutcome::Stored), "{first:?}");
    let mut taken = user(1);
    taken.name = "taken".into();
    let takeover = worker
        .store_inbound(sealed(&stranger, BlogDefinition::User(taken), now, 6)?)
        .await?;
    assert!(
        matches!(takeover, InboundOutcome::NotPermitted(_)),
        "{takeover:?}"
    );

    let view = worker.view();
    assert_eq!(view.get::<Post>(1)?, None);
    assert!(view.get::<Post>(2)?.is_some());
    assert_eq!(view.get::<Post>(3)?, None);
    assert_eq!(view.get::<User>(1)?, Some(user(1)));
    worker.close().await;
    Ok(())
}

/// A replica keeps the signed copy of every record of a model it replicates, however
/// small the record store's limit (it holds the typed records anyway, and passes the
/// copies on); those copies are kept apart, so records of models it does not replicate
/// still have the whole limit, and meet it.
#[tokio::test]
async fn the_record_limit_does_not_cap_a_replica() -> TestResult {
    let worker = Worker::spawn_replicating(MemoryBackend::new(), two_records(), users_only())?;
    let author = signer()?;
    let now = wall_millis();
    let users: Vec<Record> = (1..=5)
        .map(|id| sealed(&author, BlogDefinition::User(user(id)), now, 0))
        .collect::<TestResult<_>>()?;
    for (id, outcome) in (1..=5).zip(deliver(&worker, &users).await?) {
        assert!(
            matches!(outcome, InboundOutcome::Stored),
            "user {id}: {outcome:?}"
        );
    }
    assert_eq!(worker.view().read()?.open_tree::<User>().len()?, 5);
    expect_two_posts_held(&worker, &author, now).await?;
    worker.close().await;
    Ok(())
}

/// A database written before replicas were kept apart holds a replica's copies among
/// the DHT's records: opened, the node moves them out of the limit's way, serves them,
/// and still compares a newer version with them.
#[tokio::test]
async fn a_replica_written_the_old_way_moves_its_copies_at_open() -> TestResult {
    let backend = MemoryBackend::new();
    let author = signer()?;
    let now = wall_millis();
    let users: Vec<Record> = (1..=5)
        .map(|id| sealed(&author, BlogDefinition::User(user(id)), now, 0))
        .collect::<TestResult<_>>()?;
    let worker =
        Worker::spawn_replicating(backend.clone(), KadStoreConfig::default(), users_only())?;
    deliver(&worker, &users).await?;
    worker.close().await;
    // The old layout: the copies among the DHT's records.
    {
        let txn = backend.begin_write()?;
        for (key, bytes) in
            collect_range(&txn, REPLICAS_TABLE, RawRange::all(), Direction::Forward)?
        {
            txn.put(RECORDS_TABLE, &key, &bytes)?;
            txn.delete(REPLICAS_TABLE, &key)?;
        }
        txn.commit()?;
    }
    let records = KadStore::new(backend.clone(), PeerId::random(), two_records());
    assert_eq!((records.replica_count()?, records.record_count()?), (0, 5));

    let worker = Worker::spawn_replicating(backend.clone(), two_records(), users_only())?;
    assert_eq!((records.replica_count()?, records.record_count()?), (5, 5));
    for user in &users {
        assert_eq!(
            records.try_get(&user.key)?.map(|r| r.value),
            Some(user.value.clone())
        );
    }
    // The version rule still meets the moved copies: an older version is superseded,
    // a newer one applied.
    let stale = sealed(
        &author,
        BlogDefinition::User(named(1, "stale@x")),
        now - 1,
        0,
    )?;
    let outcome = worker.store_inbound(stale).await?;
    assert!(
        matches!(
            outcome,
            InboundOutcome::Refused(SignedRecordError::Superseded { .. })
        ),
        "{outcome:?}"
    );
    let newer = sealed(&author, BlogDefinition::User(named(1, "newer@x")), now, 1)?;
    assert!(matches!(
        worker.store_inbound(newer).await?,
        InboundOutcome::Stored
    ));
    assert_eq!(worker.view().get::<User>(1)?, Some(named(1, "newer@x")));
    assert_eq!(records.replica_count()?, 5);
    expect_two_posts_held(&worker, &author, now).await?;
    worker.close().await;
    Ok(())
}

/// Replicates `User` only.
fn users_only() -> Replication {
    let mut replication = Replication::default();
    replication.models = Replicated::Models(["User".to_owned()].into_iter().collect());
    replication
}

/// A record store limit of two records.
fn two_records() -> KadStoreConfig {
    KadStoreConfig {
        max_records: 2,
        ..KadStoreConfig::default()
    }
}

/// Posts (not replicated) are held for the DHT up to the limit of two, then refused.
async fn expect_two_posts_held(worker: &Worker, author: &RecordSigner, now: u64) -> TestResult {
    let posts: Vec<Record> = (1..=3)
        .map(|id| {
            let post = Post {
                id,
                title: "held for the DHT".into(),
                author: 1,
            };
            sealed(author, BlogDefinition::Post(post), now, 0)
        })
        .collect::<TestResult<_>>()?;
    let outcomes = deliver(worker, &posts).await?;
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                InboundOutcome::Stored,
                InboundOutcome::Stored,
                InboundOutcome::StoreFull(_)
            ]
        ),
        "{outcomes:?}"
    );
    Ok(())
}
