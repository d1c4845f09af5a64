//! Links between models through the asynchronous API: the rules of the model-rules
//! suite (dangling links refused, `restrict`, `set_null`, cascades through several
//! levels and cycles, `clear`), with the link indexes checked exact after each, on
//! every asynchronous backend.
//!
//! A test file calls `async_links_suite!(test_attribute, async fn making a store)`.

#![allow(dead_code)]

use std::collections::BTreeSet;

use netabase_store::backend::{Direction, RawRange};
use netabase_store::nonblocking::{AsyncBackend, AsyncReadTxn, AsyncStore};
use netabase_store::prelude::*;

#[path = "../model_rules/schema.rs"]
pub mod schema;
use schema::rules::*;

pub type Rules<B> = AsyncStore<RulesDefinition, B>;
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.into(),
        email: format!("{name}{id}@example.com"),
        age: 30,
        org: None,
    }
}

fn post(id: u64, author: u64) -> Post {
    Post {
        id,
        author,
        editor: None,
        tags: Vec::new(),
        reply_to: None,
        title: format!("post {id}"),
    }
}

/// The link index entries the stored records of `M` imply, compared with each link
/// index table.
async fn assert_links_exact<B, M>(store: &Rules<B>) -> TestResult
where
    B: AsyncBackend,
    M: NetabaseModelTrait<RulesDefinition>,
{
    let records = store.open_tree::<M>().iter().await?;
    let txn = store.raw_backend().begin_read().await?;
    for (index, link) in M::LINKS.iter().enumerate() {
        let mut expected = BTreeSet::new();
        for (_, record) in &records {
            let mut keys = Vec::new();
            record.link_keys(index, &mut keys);
            for mut entry in keys {
                entry.extend(record.primary_key().to_key_bytes());
                expected.insert(entry);
            }
        }
        let actual: BTreeSet<Vec<u8>> = txn
            .range(link.table, RawRange::all(), Direction::Forward, None)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(actual, expected, "link index `{}` is not exact", link.table);
    }
    Ok(())
}

async fn assert_all_exact<B: AsyncBackend>(store: &Rules<B>) -> TestResult {
    assert_links_exact::<B, User>(store).await?;
    assert_links_exact::<B, Post>(store).await?;
    assert_links_exact::<B, Team>(store).await?;
    assert_links_exact::<B, Member>(store).await?;
    assert_links_exact::<B, Node>(store).await
}

pub async fn dangling_links_are_refused<B: AsyncBackend>(store: Rules<B>) -> TestResult {
    let posts = store.open_tree::<Post>();
    let refused = posts.put(post(1, 9)).await;
    assert!(
        matches!(&refused, Err(NetabaseError::DanglingLink(e)) if e.field == "author"),
        "{refused:?}"
    );
    store.open_tree::<User>().put(user(9, "ada")).await?;
    // A link to a record of the same call counts (a reply put with its post).
    posts
        .put_many([
            Post {
                reply_to: Some(1),
                ..post(2, 9)
            },
            post(1, 9),
        ])
        .await?;
    // Refused in a batch and in a transaction, which stays usable; nothing applied.
    let mut batch = posts.create_batch();
    batch.put(post(3, 9))?;
    batch.put(Post {
        tags: vec![7],
        ..post(4, 9)
    })?;
    assert!(matches!(
        batch.commit().await,
        Err(NetabaseError::DanglingLink(_))
    ));
    let txn = store.write().await?;
    let view = txn.open_tree::<Post>();
    assert!(matches!(
        view.put(post(5, 8)).await,
        Err(NetabaseError::DanglingLink(_))
    ));
    view.put(post(6, 9)).await?;
    txn.commit().await?;
    let ids: Vec<u64> = posts.iter().await?.into_iter().map(|(_, p)| p.id).collect();
    assert_eq!(ids, [1, 2, 6]);
    assert_all_exact(&store).await
}

pub async fn restrict_refuses_and_applies_nothing<B: AsyncBackend>(store: Rules<B>) -> TestResult {
    let users = store.open_tree::<User>();
    users.put_many([user(1, "ada"), user(2, "bob")]).await?;
    store.open_tree::<Post>().put(post(10, 1)).await?;
    match users.remove(UserPrimaryKey(1)).await {
        Err(NetabaseError::StillReferenced(e)) => {
            assert_eq!((e.target, e.model, e.field), ("User", "Post", "author"));
        }
        other => return Err(format!("expected StillReferenced, got {other:?}").into()),
    }
    assert!(matches!(
        users
            .remove_many([UserPrimaryKey(2), UserPrimaryKey(1)])
            .await,
        Err(NetabaseError::StillReferenced(_))
    ));
    assert_eq!(users.len().await?, 2);
    let txn = store.write().await?;
    assert!(matches!(
        txn.open_tree::<User>().remove(UserPrimaryKey(1)).await,
        Err(NetabaseError::StillReferenced(_))
    ));
    txn.open_tree::<Post>().remove(PostPrimaryKey(10)).await?;
    txn.open_tree::<User>().remove(UserPrimaryKey(1)).await?;
    txn.commit().await?;
    assert_eq!(users.get(UserPrimaryKey(1)).await?, None);
    assert_all_exact(&store).await
}

pub async fn set_null_clears_optional_and_many_links<B: AsyncBackend>(
    store: Rules<B>,
) -> TestResult {
    store
        .open_tree::<User>()
        .put_many([user(1, "ada"), user(2, "bob")])
        .await?;
    let tags = store.open_tree::<Tag>();
    tags.put_many([Tag { id: 1 }, Tag { id: 2 }, Tag { id: 3 }])
        .await?;
    let posts = store.open_tree::<Post>();
    posts
        .put_many([
            Post {
                editor: Some(2),
                tags: vec![1, 2, 3],
                ..post(10, 1)
            },
            Post {
                tags: vec![2],
                ..post(11, 1)
            },
        ])
        .await?;
    let txn = store.write().await?;
    txn.open_tree::<Tag>().remove(TagPrimaryKey(2)).await?;
    let changes = txn.commit().await?;
    assert_eq!(changes.len(), 3, "the tag and the two posts it left");
    let get = |id| posts.get(PostPrimaryKey(id));
    assert_eq!(get(10).await?.map(|p| p.tags), Some(vec![1, 3]));
    assert_eq!(get(11).await?.map(|p| p.tags), Some(vec![]));
    store.open_tree::<User>().remove(UserPrimaryKey(2)).await?;
    assert_eq!(get(10).await?.and_then(|p| p.editor), None);
    assert_eq!(posts.len().await?, 2);
    assert_all_exact(&store).await
}

/// Organizations 1 and 2, teams 10, 11 (of 1) and 20 (of 2), members with mentors
/// across teams.
async fn hierarchy<B: AsyncBackend>(store: &Rules<B>) -> TestResult {
    store
        .open_tree::<Organization>()
        .put_many([
            Organization {
                id: 1,
                name: "acme".into(),
            },
            Organization {
                id: 2,
                name: "other".into(),
            },
        ])
        .await?;
    let team = |id, organization| Team { id, organization };
    store
        .open_tree::<Team>()
        .put_many([team(10, 1), team(11, 1), team(20, 2)])
        .await?;
    let member = |id, team, mentors: Vec<u64>| Member { id, team, mentors };
    store
        .open_tree::<Member>()
        .put_many([
            member(100, 10, vec![]),
            member(101, 10, vec![100]),
            member(110, 11, vec![100, 101]),
            member(200, 20, vec![100, 110]),
        ])
        .await?;
    Ok(())
}

pub async fn cascade_goes_several_levels_deep<B: AsyncBackend>(store: Rules<B>) -> TestResult {
    hierarchy(&store).await?;
    let txn = store.write().await?;
    txn.open_tree::<Organization>()
        .remove(OrganizationPrimaryKey(1))
        .await?;
    let changes = txn.commit().await?;
    // Organization 1, its two teams, their three members; member 200 (another
    // organization) loses the mentors that went.
    assert_eq!(changes.len(), 1 + 2 + 3 + 1, "{changes:?}");
    assert_eq!(store.open_tree::<Team>().len().await?, 1);
    let left: Vec<Member> = store
        .open_tree::<Member>()
        .iter()
        .await?
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        left,
        [Member {
            id: 200,
            team: 20,
            mentors: vec![]
        }]
    );
    assert_all_exact(&store).await
}

pub async fn cascade_refused_deep_down_applies_nothing<B: AsyncBackend>(
    store: Rules<B>,
) -> TestResult {
    hierarchy(&store).await?;
    // A user of organization 1 (cascade) wrote a post (restrict).
    store
        .open_tree::<User>()
        .put(User {
            org: Some(1),
            ..user(1, "ada")
        })
        .await?;
    store.open_tree::<Post>().put(post(5, 1)).await?;
    let orgs = store.open_tree::<Organization>();
    assert!(matches!(
        orgs.remove(OrganizationPrimaryKey(1)).await,
        Err(NetabaseError::StillReferenced(_))
    ));
    assert!(matches!(
        orgs.clear().await,
        Err(NetabaseError::StillReferenced(_))
    ));
    assert_eq!(orgs.len().await?, 2);
    assert_eq!(store.open_tree::<Team>().len().await?, 3);
    assert_eq!(store.open_tree::<Member>().len().await?, 4);
    store.open_tree::<Post>().remove(PostPrimaryKey(5)).await?;
    orgs.remove(OrganizationPrimaryKey(1)).await?;
    assert!(store.open_tree::<User>().is_empty().await?);
    // `clear` follows the same policies.
    orgs.clear().await?;
    assert!(store.open_tree::<Team>().is_empty().await?);
    assert!(store.open_tree::<Member>().is_empty().await?);
    assert_all_exact(&store).await
}

pub async fn cascade_cycles_end<B: AsyncBackend>(store: Rules<B>) -> TestResult {
    let nodes = store.open_tree::<Node>();
    let node = |id, next| Node { id, next };
    nodes
        .put_many([
            node(1, Some(2)),
            node(2, Some(3)),
            node(3, Some(1)),
            node(4, Some(4)),
            node(5, None),
        ])
        .await?;
    nodes.remove(NodePrimaryKey(2)).await?;
    let left: Vec<u64> = nodes.iter().await?.into_iter().map(|(_, n)| n.id).collect();
    assert_eq!(left, [4, 5]);
    nodes.remove(NodePrimaryKey(4)).await?;
    assert_eq!(nodes.len().await?, 1);
    assert_all_exact(&store).await
}

/// Links across definitions through the asynchronous API: a second store of another
/// definition on the same backend (a clone of the handle); its dangling links are
/// refused, and `restrict` holds from the target's store on every removal path.
pub async fn cross_links_hold_both_ways<B: AsyncBackend + Clone>(store: Rules<B>) -> TestResult {
    use schema::library::{Book, BookPrimaryKey, LibraryDefinition};
    let library: AsyncStore<LibraryDefinition, B> =
        AsyncStore::open(store.raw_backend().clone()).await?;
    let books = library.open_tree::<Book>();
    let book = |id, author| Book {
        id,
        author,
        publisher: None,
        reviewers: Vec::new(),
        borrower: None,
    };
    match books.put(book(10, 1)).await {
        Err(NetabaseError::DanglingLink(e)) => {
            assert_eq!((e.model, e.field, e.target), ("Book", "author", "User"));
        }
        other => return Err(format!("expected DanglingLink, got {other:?}").into()),
    }
    let users = store.open_tree::<User>();
    users.put_many([user(1, "ada"), user(2, "bob")]).await?;
    books.put(book(10, 1)).await?;
    match users.remove(UserPrimaryKey(1)).await {
        Err(NetabaseError::StillReferenced(e)) => {
            assert_eq!((e.target, e.model, e.field), ("User", "Book", "author"));
        }
        other => return Err(format!("expected StillReferenced, got {other:?}").into()),
    }
    assert!(matches!(
        users
            .remove_many([UserPrimaryKey(2), UserPrimaryKey(1)])
            .await,
        Err(NetabaseError::StillReferenced(_))
    ));
    assert!(matches!(
        users.clear().await,
        Err(NetabaseError::StillReferenced(_))
    ));
    assert_eq!(
        users.len().await?,
        2,
        "nothing of a refused removal is applied"
    );
    books.remove(BookPrimaryKey(10)).await?;
    users.remove(UserPrimaryKey(1)).await?;
    assert_eq!(users.len().await?, 1);
    Ok(())
}

/// Expands to one test per check, each with the test attribute `$attr` (`tokio::test`,
/// `wasm_bindgen_test`) and a fresh store from the async fn `$make`.
#[macro_export]
macro_rules! async_links_suite {
    ($attr:meta, $make:expr) => {
        $crate::async_links_suite!(@tests $attr, $make;
            dangling_links_are_refused,
            restrict_refuses_and_applies_nothing,
            set_null_clears_optional_and_many_links,
            cascade_goes_several_levels_deep,
            cascade_refused_deep_down_applies_nothing,
            cascade_cycles_end,
        );
    };
    (@tests $attr:meta, $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[$attr]
            async fn $name() {
                let outcome = match ($make)().await {
                    Ok(store) => async_links::$name(store).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    panic!("{}: {e}", stringify!($name));
                }
            }
        )+
    };
}
