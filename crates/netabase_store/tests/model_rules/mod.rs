//! The model-rules suite: validators, links and migrations, on every backend.
//!
//! A backend test file calls `model_rules_suite!(|| <a fresh shared backend>)`, which
//! expands to one `#[test]` per check below. Migrations open the same backend with
//! several versions of one schema, as a program upgraded between runs would.

#![allow(dead_code)]

pub mod cross;
pub mod paths;
pub mod schema;

// The suite macro names every check as `model_rules::<check>`.
#[allow(unused_imports)]
pub use cross::*;
#[allow(unused_imports)]
pub use paths::*;

use std::collections::BTreeSet;
use std::sync::Arc;

use netabase_store::backend::{Backend, Direction, RawRange, WriteTxn, collect_range};
use netabase_store::codec::value::encode_value;
use netabase_store::prelude::*;
use netabase_store::rules::OnDelete;
use netabase_store::{MigrateProgress, VersionProblem};
use schema::rules::*;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
pub type Rules<B> = NetabaseStore<RulesDefinition, B>;

fn open<B: Backend>(backend: &Arc<B>) -> Result<Rules<B>, NetabaseError> {
    NetabaseStore::from_shared_backend(backend.clone())
}

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

/// The link index entries every stored record of `M` implies, compared with the raw
/// contents of each link index table; and the same for its secondary indexes.
pub fn assert_indexes_exact<B: Backend, M: NetabaseModelTrait<RulesDefinition>>(
    store: &Rules<B>,
) -> TestResult {
    assert_model_indexes_exact::<RulesDefinition, B, M>(store)
}

/// [`assert_indexes_exact`] for a model of any definition.
pub fn assert_model_indexes_exact<
    D: NetabaseDefinitionTrait,
    B: Backend,
    M: NetabaseModelTrait<D>,
>(
    store: &NetabaseStore<D, B>,
) -> TestResult {
    let records: Vec<M> = store
        .open_tree::<M>()
        .iter()
        .map(|r| r.map(|(_, m)| m))
        .collect::<Result<_, _>>()?;
    let txn = store.raw_backend().begin_read()?;
    for (index, link) in M::LINKS.iter().enumerate() {
        let mut expected = BTreeSet::new();
        for record in &records {
            let mut keys = Vec::new();
            record.link_keys(index, &mut keys);
            for key in keys {
                let mut entry = key;
                entry.extend(record.primary_key().to_key_bytes());
                expected.insert(entry);
            }
        }
        let actual: BTreeSet<Vec<u8>> =
            collect_range(&txn, link.table, RawRange::all(), Direction::Forward)?
                .into_iter()
                .map(|(k, v)| {
                    assert!(v.is_empty(), "link index entries have empty values");
                    k
                })
                .collect();
        assert_eq!(actual, expected, "link index `{}` is not exact", link.table);
    }
    for (index, field) in M::INFO.secondary_keys.iter().enumerate() {
        let expected: BTreeSet<Vec<u8>> = records
            .iter()
            .map(|r| {
                let mut key = Vec::new();
                r.encode_secondary_key(index, &mut key);
                if !field.unique {
                    key.extend(r.primary_key().to_key_bytes());
                }
                key
            })
            .collect();
        let actual: BTreeSet<Vec<u8>> =
            collect_range(&txn, field.table, RawRange::all(), Direction::Forward)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
        assert_eq!(actual, expected, "index `{}` is not exact", field.table);
    }
    Ok(())
}

/// Every index of every model of the rules schema is exact.
pub fn assert_all_exact<B: Backend>(store: &Rules<B>) -> TestResult {
    assert_indexes_exact::<B, User>(store)?;
    assert_indexes_exact::<B, Tag>(store)?;
    assert_indexes_exact::<B, Post>(store)?;
    assert_indexes_exact::<B, Organization>(store)?;
    assert_indexes_exact::<B, Team>(store)?;
    assert_indexes_exact::<B, Member>(store)?;
    assert_indexes_exact::<B, Node>(store)
}

fn expect_invalid<T: std::fmt::Debug>(
    result: Result<T, NetabaseError>,
    model: &str,
    field: Option<&str>,
) -> TestResult {
    match result {
        Err(NetabaseError::Invalid(e)) => {
            assert_eq!((e.model, e.field), (model, field), "{e}");
            Ok(())
        }
        other => Err(format!("expected Invalid({model}.{field:?}), got {other:?}").into()),
    }
}

pub fn validators_refuse_on_every_write_path<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    let users = store.open_tree::<User>();
    // Each rule, on the one-shot put.
    expect_invalid(users.put(user(1, "")), "User", Some("name"))?;
    expect_invalid(
        users.put(user(1, "a-name-that-is-far-too-long")),
        "User",
        Some("name"),
    )?;
    expect_invalid(
        users.put(User {
            age: 151,
            ..user(1, "ada")
        }),
        "User",
        Some("age"),
    )?;
    let no_at = User {
        email: "nowhere".into(),
        ..user(1, "ada")
    };
    expect_invalid(users.put(no_at.clone()), "User", None)?;
    if let Err(e) = users.put(no_at) {
        assert!(e.to_string().contains("has no `@`"), "{e}");
    }
    assert!(users.is_empty()?);
    // put_many: the invalid model is the last; nothing of the call is applied.
    expect_invalid(
        users.put_many([user(1, "ada"), user(2, "bob"), user(3, "")]),
        "User",
        Some("name"),
    )?;
    assert!(users.is_empty()?);
    // A batch: nothing applied.
    let mut batch = users.create_batch();
    batch.put(user(1, "ada"))?;
    batch.put(user(2, ""))?;
    expect_invalid(batch.commit(), "User", Some("name"))?;
    assert!(users.is_empty()?);
    // An explicit transaction: the refusal leaves it usable, and only the valid writes
    // are committed.
    let txn = store.write()?;
    {
        let view = txn.open_tree::<User>();
        view.put(user(1, "ada"))?;
        expect_invalid(view.put(user(2, "")), "User", Some("name"))?;
        expect_invalid(
            view.put_many([user(3, "cy"), user(4, "")]),
            "User",
            Some("name"),
        )?;
        view.put(user(5, "eve"))?;
    }
    txn.commit()?;
    let ids: Vec<u64> = users
        .iter()
        .map(|r| r.map(|(_, u)| u.id))
        .collect::<Result<_, _>>()?;
    assert_eq!(ids, [1, 5]);
    // Field rules of another model (a `len(min = 1)` on a secondary key field).
    let posts = store.open_tree::<Post>();
    expect_invalid(
        posts.put(Post {
            title: String::new(),
            ..post(1, 1)
        }),
        "Post",
        Some("title"),
    )?;
    assert_all_exact(&store)
}

fn expect_dangling<T: std::fmt::Debug>(
    result: Result<T, NetabaseError>,
    field: &str,
    target: &str,
) -> TestResult {
    match result {
        Err(NetabaseError::DanglingLink(e)) => {
            assert_eq!((e.model, e.field, e.target), ("Post", field, target), "{e}");
            Ok(())
        }
        other => Err(format!("expected DanglingLink({field}), got {other:?}").into()),
    }
}

pub fn dangling_links_are_refused_on_every_write_path<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    store.open_tree::<User>().put(user(1, "ada"))?;
    let posts = store.open_tree::<Post>();
    expect_dangling(posts.put(post(1, 9)), "author", "User")?;
    expect_dangling(
        posts.put(Post {
            editor: Some(8),
            ..post(1, 1)
        }),
        "editor",
        "User",
    )?;
    expect_dangling(
        posts.put(Post {
            tags: vec![7],
            ..post(1, 1)
        }),
        "tags",
        "Tag",
    )?;
    expect_dangling(posts.put_many([post(1, 1), post(2, 9)]), "author", "User")?;
    assert!(posts.is_empty()?);
    let mut batch = posts.create_batch();
    batch.put(post(1, 1))?;
    batch.put(post(2, 9))?;
    expect_dangling(batch.commit(), "author", "User")?;
    assert!(posts.is_empty()?);
    // In a transaction: a target written earlier in it counts; a refusal leaves it usable.
    let txn = store.write()?;
    txn.open_tree::<Tag>().put(Tag { id: 7 })?;
    expect_dangling(txn.open_tree::<Post>().put(post(1, 9)), "author", "User")?;
    txn.open_tree::<Post>().put(Post {
        tags: vec![7, 7],
        ..post(1, 1)
    })?;
    txn.commit()?;
    assert_eq!(posts.len()?, 1);
    // Links among the records of one call: a reply put with the post it answers.
    posts.put_many([
        Post {
            reply_to: Some(3),
            ..post(4, 1)
        },
        post(3, 1),
    ])?;
    assert_eq!(posts.len()?, 3);
    assert_all_exact(&store)
}

pub fn restrict_refuses_and_applies_nothing<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    let users = store.open_tree::<User>();
    users.put_many([user(1, "ada"), user(2, "bob")])?;
    store.open_tree::<Post>().put(post(10, 1))?;
    match users.remove(1) {
        Err(NetabaseError::StillReferenced(e)) => {
            assert_eq!(
                (e.target, e.model, e.field),
                ("User", "Post", "author"),
                "{e}"
            );
        }
        other => return Err(format!("expected StillReferenced, got {other:?}").into()),
    }
    // remove_many: the first key is free, the second is not: nothing is removed.
    assert!(matches!(
        users.remove_many([2, 1]),
        Err(NetabaseError::StillReferenced(_))
    ));
    assert_eq!(users.len()?, 2);
    // In a transaction the refusal leaves it usable.
    let txn = store.write()?;
    assert!(matches!(
        txn.open_tree::<User>().remove(1),
        Err(NetabaseError::StillReferenced(_))
    ));
    txn.open_tree::<Post>().remove(10)?;
    txn.open_tree::<User>().remove(1)?;
    txn.commit()?;
    assert_eq!(users.get(1)?, None);
    assert_all_exact(&store)
}

pub fn set_null_clears_optional_and_many_links<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    store
        .open_tree::<User>()
        .put_many([user(1, "ada"), user(2, "bob")])?;
    let tags = store.open_tree::<Tag>();
    tags.put_many([Tag { id: 1 }, Tag { id: 2 }, Tag { id: 3 }])?;
    let posts = store.open_tree::<Post>();
    posts.put_many([
        Post {
            editor: Some(2),
            tags: vec![1, 2, 3],
            ..post(10, 1)
        },
        Post {
            tags: vec![2],
            ..post(11, 1)
        },
    ])?;
    // Many-to-many: both posts tagged 2.
    let tagged: Vec<u64> = tags
        .referrers::<Post>(2)?
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(tagged, [10, 11]);
    tags.remove(2)?;
    assert_eq!(posts.get(10)?.map(|p| p.tags), Some(vec![1, 3]));
    assert_eq!(posts.get(11)?.map(|p| p.tags), Some(vec![]));
    assert!(tags.referrers::<Post>(2)?.is_empty());
    store.open_tree::<User>().remove(2)?;
    assert_eq!(posts.get(10)?.and_then(|p| p.editor), None);
    assert_eq!(posts.len()?, 2);
    assert_all_exact(&store)
}

/// Organizations 1 and 2, teams 10, 11 (of 1) and 20 (of 2), members with mentors
/// across teams.
pub fn hierarchy<B: Backend>(store: &Rules<B>) -> TestResult {
    store.open_tree::<Organization>().put_many([
        Organization {
            id: 1,
            name: "acme".into(),
        },
        Organization {
            id: 2,
            name: "other".into(),
        },
    ])?;
    store.open_tree::<Team>().put_many([
        Team {
            id: 10,
            organization: 1,
        },
        Team {
            id: 11,
            organization: 1,
        },
        Team {
            id: 20,
            organization: 2,
        },
    ])?;
    let member = |id, team, mentors: Vec<u64>| Member { id, team, mentors };
    store.open_tree::<Member>().put_many([
        member(100, 10, vec![]),
        member(101, 10, vec![100]),
        member(110, 11, vec![100, 101]),
        member(200, 20, vec![100, 110]),
    ])?;
    Ok(())
}

pub fn cascade_goes_several_levels_deep<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    hierarchy(&store)?;
    let teams = store.open_tree::<Team>();
    let members = store.open_tree::<Member>();
    let team = teams.get(10)?.ok_or("team 10")?;
    assert_eq!(teams.parent(&team)?.map(|o| o.name), Some("acme".into()));
    let in_acme: Vec<u64> = store
        .open_tree::<Organization>()
        .referrers::<Team>(1)?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(in_acme, [10, 11]);
    let changes = {
        let txn = store.write()?;
        txn.open_tree::<Organization>().remove(1)?;
        txn.commit()?
    };
    // Organization 1, its two teams, their three members; member 200 (another
    // organization) loses the mentors that went.
    assert_eq!(changes.len(), 1 + 2 + 3 + 1, "{changes:?}");
    assert_eq!(teams.len()?, 1);
    let left: Vec<Member> = members
        .iter()
        .map(|r| r.map(|(_, m)| m))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        left,
        [Member {
            id: 200,
            team: 20,
            mentors: vec![]
        }]
    );
    assert_all_exact(&store)
}

pub fn cascade_refused_deep_down_applies_nothing<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    hierarchy(&store)?;
    // A user of organization 1 (cascade) wrote a post (restrict): removing the
    // organization would remove the user under the post.
    store.open_tree::<User>().put(User {
        org: Some(1),
        ..user(1, "ada")
    })?;
    store.open_tree::<Post>().put(post(5, 1))?;
    let orgs = store.open_tree::<Organization>();
    assert!(matches!(
        orgs.remove(1),
        Err(NetabaseError::StillReferenced(_))
    ));
    assert!(matches!(
        orgs.clear(),
        Err(NetabaseError::StillReferenced(_))
    ));
    assert_eq!(orgs.len()?, 2);
    assert_eq!(store.open_tree::<Team>().len()?, 3);
    assert_eq!(store.open_tree::<Member>().len()?, 4);
    assert_eq!(store.open_tree::<User>().len()?, 1);
    // Without the post, the same removal cascades down to the user.
    store.open_tree::<Post>().remove(5)?;
    orgs.remove(1)?;
    assert!(store.open_tree::<User>().is_empty()?);
    // `clear` follows the same policies.
    orgs.clear()?;
    assert!(store.open_tree::<Team>().is_empty()?);
    assert!(store.open_tree::<Member>().is_empty()?);
    assert_all_exact(&store)
}

pub fn cascade_cycles_end<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    let nodes = store.open_tree::<Node>();
    // a -> b -> c -> a, and d -> d.
    nodes.put_many([
        Node {
            id: 1,
            next: Some(2),
        },
        Node {
            id: 2,
            next: Some(3),
        },
        Node {
            id: 3,
            next: Some(1),
        },
        Node {
            id: 4,
            next: Some(4),
        },
        Node { id: 5, next: None },
    ])?;
    nodes.remove(2)?;
    let left: Vec<u64> = nodes
        .iter()
        .map(|r| r.map(|(_, n)| n.id))
        .collect::<Result<_, _>>()?;
    assert_eq!(left, [4, 5]);
    nodes.remove(4)?;
    assert_eq!(nodes.len()?, 1);
    // Replies to replies: cascade through a self-link.
    store.open_tree::<User>().put(user(1, "ada"))?;
    let posts = store.open_tree::<Post>();
    posts.put_many([
        post(1, 1),
        Post {
            reply_to: Some(1),
            ..post(2, 1)
        },
        Post {
            reply_to: Some(2),
            ..post(3, 1)
        },
        post(4, 1),
    ])?;
    posts.remove(1)?;
    let left: Vec<u64> = posts
        .iter()
        .map(|r| r.map(|(_, p)| p.id))
        .collect::<Result<_, _>>()?;
    assert_eq!(left, [4]);
    assert_all_exact(&store)
}

pub fn follow_and_referrers<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    store
        .open_tree::<User>()
        .put_many([user(1, "ada"), user(2, "bob")])?;
    store
        .open_tree::<Tag>()
        .put_many([Tag { id: 5 }, Tag { id: 6 }])?;
    let posts = store.open_tree::<Post>();
    let p = Post {
        editor: Some(2),
        tags: vec![6, 5],
        ..post(10, 1)
    };
    posts.put_many([p.clone(), post(11, 2)])?;
    let authors = posts.follow::<PostAuthorLink>(&p)?;
    assert_eq!(authors.iter().map(|u| u.id).collect::<Vec<_>>(), [1]);
    let tags = posts.follow::<PostTagsLink>(&p)?;
    assert_eq!(tags, [Tag { id: 6 }, Tag { id: 5 }]);
    assert!(posts.follow::<PostReplyToLink>(&p)?.is_empty());
    // Bob is the author of 11 and the editor of 10: both, once each.
    let by_bob: Vec<u64> = store
        .open_tree::<User>()
        .referrers::<Post>(2)?
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(by_bob, [10, 11]);
    // Moving a link moves its index entry.
    posts.put(Post {
        editor: None,
        author: 2,
        ..p.clone()
    })?;
    let by_ada = store.open_tree::<User>().referrers::<Post>(1)?;
    assert!(by_ada.is_empty());
    let txn = store.read()?;
    assert_eq!(txn.open_tree::<User>().referrers::<Post>(2)?.len(), 2);
    drop(txn);
    assert_eq!(
        <Post as NetabaseModelTrait<RulesDefinition>>::LINKS[0].on_delete,
        OnDelete::Restrict
    );
    assert_all_exact(&store)
}

/// A random sequence of writes over linked models keeps every index exact; refused
/// writes leave nothing behind.
pub fn random_operations_keep_link_indexes_exact<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (users, tags, posts) = (
        store.open_tree::<User>(),
        store.open_tree::<Tag>(),
        store.open_tree::<Post>(),
    );
    for step in 0..300 {
        let result = match next(6) {
            0 => users.put(user(next(6), "u")),
            1 => tags.put(Tag { id: next(6) as u32 }),
            2 | 3 => posts.put(Post {
                editor: Some(next(6)).filter(|_| next(2) == 0),
                tags: (0..next(3)).map(|_| next(6) as u32).collect(),
                reply_to: Some(next(10)).filter(|_| next(2) == 0),
                ..post(next(10), next(6))
            }),
            4 => users.remove(next(6)).map(drop),
            _ => match next(3) {
                0 => tags.remove(next(6) as u32).map(drop),
                _ => posts.remove(next(10)).map(drop),
            },
        };
        match result {
            Ok(())
            | Err(
                NetabaseError::DanglingLink(_)
                | NetabaseError::StillReferenced(_)
                | NetabaseError::UniqueViolation(_),
            ) => {}
            Err(e) => return Err(format!("step {step}: {e}").into()),
        }
        if step % 50 == 49 {
            assert_all_exact(&store)?;
        }
    }
    assert_all_exact(&store)
}

// ---------------------------------------------------------------------------------------
// `put_many` of more records than one chunk of the write pipeline

/// More records than the pipeline writes per chunk, so that a call spans several.
const MANY: u64 = 2_500;

fn expect_poisoned(result: Result<ChangeSet, NetabaseError>) -> TestResult {
    match result {
        Err(NetabaseError::Poisoned(_)) => Ok(()),
        other => Err(format!("expected a poisoned transaction, got {other:?}").into()),
    }
}

/// A rule that refuses a record of a later chunk, once earlier chunks are written,
/// still applies nothing of the call: the transaction can no longer commit.
pub fn put_many_across_chunks_applies_nothing_on_failure<B: Backend>(
    backend: Arc<B>,
) -> TestResult {
    let store = open(&backend)?;
    store.open_tree::<User>().put(user(1, "ada"))?;
    let posts = store.open_tree::<Post>();
    // A validator, near the end of the call.
    let txn = store.write()?;
    expect_invalid(
        txn.open_tree::<Post>().put_many((1..=MANY).map(|id| Post {
            title: if id == MANY - 10 {
                String::new()
            } else {
                format!("post {id}")
            },
            ..post(id, 1)
        })),
        "Post",
        Some("title"),
    )?;
    expect_poisoned(txn.commit())?;
    assert_eq!(posts.len()?, 0);
    // A dangling link, in the last record.
    let txn = store.write()?;
    expect_dangling(
        txn.open_tree::<Post>()
            .put_many((1..=MANY).map(|id| post(id, if id == MANY { 9 } else { 1 }))),
        "author",
        "User",
    )?;
    expect_poisoned(txn.commit())?;
    assert_eq!(posts.len()?, 0);
    // A refusal in the first chunk leaves the transaction usable.
    let txn = store.write()?;
    {
        let view = txn.open_tree::<Post>();
        expect_dangling(view.put_many([post(1, 1), post(2, 9)]), "author", "User")?;
        view.put_many((1..=MANY).map(|id| post(id, 1)))?;
    }
    txn.commit()?;
    assert_eq!(posts.len()?, MANY);
    assert_all_exact(&store)
}

/// A link to a record of the same call counts as present when that record comes in a
/// later chunk; a link to a record in no chunk is refused, after the whole call.
pub fn put_many_links_to_records_of_later_chunks<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    let nodes = store.open_tree::<Node>();
    let txn = store.write()?;
    // Each node links to the one half the call after it.
    txn.open_tree::<Node>().put_many((0..MANY).map(|id| Node {
        id,
        next: Some((id + MANY / 2) % MANY),
    }))?;
    txn.commit()?;
    assert_eq!(nodes.len()?, MANY);
    assert_eq!(
        nodes.referrers::<Node>(MANY - 1)?,
        [Node {
            id: MANY / 2 - 1,
            next: Some(MANY - 1)
        }]
    );
    // The first record links to a node that neither is stored nor comes later.
    let txn = store.write()?;
    match txn
        .open_tree::<Node>()
        .put_many((MANY..2 * MANY).map(|id| Node {
            id,
            next: Some(if id == MANY { 10 * MANY } else { id }),
        })) {
        Err(NetabaseError::DanglingLink(e)) => {
            assert_eq!(
                (e.model, e.field, e.target),
                ("Node", "next", "Node"),
                "{e}"
            );
        }
        other => return Err(format!("expected DanglingLink(next), got {other:?}").into()),
    }
    expect_poisoned(txn.commit())?;
    assert_eq!(nodes.len()?, MANY);
    assert_all_exact(&store)
}

// ---------------------------------------------------------------------------------------
// Migrations

use schema::{v1, v2, v2_strict, v3};

fn people_v1<B: Backend>(backend: &Arc<B>) -> TestResult {
    let store = NetabaseStore::<v1::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
    store
        .open_tree::<v1::Person>()
        .put_many((1..=5).map(|id| v1::Person {
            id,
            name: format!("Ada{id} Lovelace"),
            age: 30 + id as u32,
        }))?;
    Ok(())
}

fn v3_person(id: u64) -> v3::Person {
    v3::Person {
        id,
        first: format!("Ada{id}"),
        last: "Lovelace".into(),
        age: (30 + id as u32) * 12,
        initials: "AL".into(),
    }
}

pub fn migration_on_read_and_eager<B: Backend>(backend: Arc<B>) -> TestResult {
    people_v1(&backend)?;
    let store = NetabaseStore::<v2::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
    let people = store.open_tree::<v2::Person>();
    // On the fly.
    assert_eq!(
        people.get(2)?,
        Some(v2::Person {
            id: 2,
            first: "Ada2".into(),
            last: "Lovelace".into(),
            age: 32
        })
    );
    assert_eq!(people.outdated()?, 5);
    assert_eq!(
        people
            .get_by_secondary_key(v2::PersonAgeSecondaryKey(33))?
            .len(),
        1
    );
    // An update of an old record through the pipeline.
    people.put(v2::Person {
        age: 60,
        ..people.get(3)?.ok_or("3")?
    })?;
    assert_eq!(people.outdated()?, 4);
    // Eagerly, with progress.
    let mut reports: Vec<MigrateProgress> = Vec::new();
    let migrated = people.migrate(|p| reports.push(p))?;
    assert_eq!(migrated, 4);
    assert_eq!(people.outdated()?, 0, "no old value remains");
    assert_eq!(reports.first().map(|p| (p.done, p.total)), Some((0, 4)));
    assert_eq!(reports.last().map(|p| (p.done, p.total)), Some((4, 4)));
    assert!(reports.iter().all(|p| p.model == "Person"));
    // The index describes the migrated records exactly.
    let txn = backend.begin_read()?;
    let table =
        <v2::Person as NetabaseModelTrait<v2::PeopleDefinition>>::INFO.secondary_keys[0].table;
    let entries: Vec<Vec<u8>> = collect_range(&txn, table, RawRange::all(), Direction::Forward)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected: Vec<Vec<u8>> = [(31u32, 1u64), (32, 2), (34, 4), (35, 5), (60, 3)]
        .iter()
        .map(|(age, id)| {
            let mut k = age.to_key_bytes();
            k.extend(id.to_key_bytes());
            k
        })
        .collect();
    expected.sort();
    assert_eq!(entries, expected);
    Ok(())
}

pub fn migration_chains_and_index_rebuild<B: Backend>(backend: Arc<B>) -> TestResult {
    people_v1(&backend)?;
    // Two records rewritten by version 2, three left at version 1.
    {
        let store = NetabaseStore::<v2::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
        let people = store.open_tree::<v2::Person>();
        for id in [1, 2] {
            let p = people.get(id)?.ok_or("person")?;
            people.put(p)?;
        }
        assert_eq!(people.outdated()?, 3);
    }
    let store = NetabaseStore::<v3::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
    let people = store.open_tree::<v3::Person>();
    // Version 1 -> 2 -> 3 and 2 -> 3 on read.
    for id in 1..=5 {
        assert_eq!(people.get(id)?, Some(v3_person(id)));
    }
    // The indexes were rebuilt at open: `age` (whose values the upgrade changed) and
    // `initials` (new).
    let by_months = people.get_by_secondary_key(v3::PersonAgeSecondaryKey(33 * 12))?;
    assert_eq!(by_months, [v3_person(3)]);
    assert_eq!(
        people
            .get_by_secondary_key(v3::PersonInitialsSecondaryKey("AL".into()))?
            .len(),
        5
    );
    assert_eq!(people.outdated()?, 5);
    // Store-wide migration.
    let mut last = None;
    assert_eq!(store.migrate(|p| last = Some(p))?, 5);
    assert_eq!(last.map(|p| (p.done, p.total)), Some((5, 5)));
    assert_eq!(people.outdated()?, 0);
    for id in 1..=5 {
        assert_eq!(people.get(id)?, Some(v3_person(id)));
    }
    assert_eq!(
        people
            .range_by_secondary_key(v3::PersonAgeSecondaryKey(0)..)
            .map(|r| r.map(|p| p.id))
            .collect::<Result<Vec<_>, _>>()?,
        [1, 2, 3, 4, 5]
    );
    Ok(())
}

pub fn newer_values_and_missing_paths_are_refused<B: Backend>(backend: Arc<B>) -> TestResult {
    people_v1(&backend)?;
    {
        let store = NetabaseStore::<v2::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
        store.open_tree::<v2::Person>().migrate(|_| {})?;
    }
    // Version 2 values read by version 1 code.
    let store = NetabaseStore::<v1::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
    let people = store.open_tree::<v1::Person>();
    match people.get(4) {
        Err(NetabaseError::Version(e)) => {
            assert_eq!(
                (e.model, e.found, e.known, e.problem),
                ("Person", 2, 1, VersionProblem::Newer)
            );
            assert_eq!(e.key, 4u64.to_key_bytes());
        }
        other => return Err(format!("expected a version error, got {other:?}").into()),
    }
    // The migration refuses them too, applying nothing.
    assert!(matches!(
        people.migrate(|_| {}),
        Err(NetabaseError::Version(_))
    ));
    drop(store);
    // A version-0 value has no path to version 3: the chain stops at version 1.
    let store = NetabaseStore::<v3::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
    let table = <v3::Person as NetabaseModelTrait<v3::PeopleDefinition>>::INFO.table;
    let old = encode_value("Person", 0, &("x", 1u8))?;
    {
        let txn = backend.begin_write()?;
        txn.put(table, &9u64.to_key_bytes(), &old)?;
        txn.commit()?;
    }
    let people = store.open_tree::<v3::Person>();
    match people.get(9) {
        Err(NetabaseError::Version(e)) => {
            assert_eq!(
                (e.found, e.known, e.problem),
                (0, 3, VersionProblem::NoUpgrade)
            );
            assert!(e.to_string().contains("Person"), "{e}");
        }
        other => return Err(format!("expected a version error, got {other:?}").into()),
    }
    assert_eq!(people.get(4)?, Some(v3_person(4)));
    assert!(matches!(
        store.migrate(|_| {}),
        Err(NetabaseError::Version(_))
    ));
    assert_eq!(people.outdated()?, 6, "a refused migration applies nothing");
    Ok(())
}

/// A migration inside the caller's transaction whose later records fail a rule applies
/// nothing: not the records before them, even after the caller commits.
pub fn migration_in_a_transaction_is_all_or_nothing<B: Backend>(backend: Arc<B>) -> TestResult {
    // More records than one step of the migration writes, the last one breaking the
    // rule of the new version once upgraded.
    let count = 600u64;
    {
        let store = NetabaseStore::<v1::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
        store
            .open_tree::<v1::Person>()
            .put_many((1..=count).map(|id| v1::Person {
                id,
                name: if id == count {
                    "Nobody".into()
                } else {
                    format!("Ada{id} Lovelace")
                },
                age: 30,
            }))?;
    }
    let store =
        NetabaseStore::<v2_strict::PeopleDefinition, B>::from_shared_backend(backend.clone())?;
    let txn = store.write()?;
    {
        let people = txn.open_tree::<v2_strict::Person>();
        people.put(v2_strict::Person {
            id: count + 1,
            first: "Grace".into(),
            last: "Hopper".into(),
            age: 40,
        })?;
        let mut reports = Vec::new();
        match people.migrate(|p| reports.push(p)) {
            Err(NetabaseError::Invalid(e)) => assert_eq!(e.field, Some("last")),
            other => return Err(format!("expected a validation error, got {other:?}").into()),
        }
        assert_eq!(
            people.outdated()?,
            count,
            "nothing of the migration is written"
        );
        assert!(
            reports.iter().all(|p| p.done == 0),
            "no record reported migrated: {reports:?}"
        );
    }
    // The refusal left the transaction usable: its own write commits, the migration's
    // none.
    txn.commit()?;
    let people = store.open_tree::<v2_strict::Person>();
    assert_eq!(people.outdated()?, count);
    assert_eq!(people.len()?, count + 1);
    assert_eq!(
        people
            .get_by_secondary_key(v2_strict::PersonAgeSecondaryKey(30))?
            .len() as u64,
        count - 1 + 1,
    );
    Ok(())
}

/// The one-record path of the link check: a record may link to itself; a link to a
/// missing record of its own model is refused; a `Vec` link naming one target twice
/// keeps one index entry, and a changed `Vec` moves its entries.
pub fn one_record_links_to_itself_and_repeats<B: Backend>(backend: Arc<B>) -> TestResult {
    let store = open(&backend)?;
    let nodes = store.open_tree::<Node>();
    nodes.put(Node {
        id: 1,
        next: Some(1),
    })?;
    assert!(matches!(
        nodes.put(Node {
            id: 2,
            next: Some(3)
        }),
        Err(NetabaseError::DanglingLink(_))
    ));
    assert_eq!(nodes.len()?, 1);
    store.open_tree::<User>().put(user(1, "ada"))?;
    store
        .open_tree::<Tag>()
        .put_many([Tag { id: 5 }, Tag { id: 6 }])?;
    let posts = store.open_tree::<Post>();
    posts.put(Post {
        tags: vec![5, 5, 6],
        ..post(10, 1)
    })?;
    assert_all_exact(&store)?;
    posts.put(Post {
        tags: vec![6, 6],
        ..post(10, 1)
    })?;
    assert_all_exact(&store)?;
    // Removing the node that links to itself: the cascade ends.
    assert!(nodes.remove(1)?.is_some());
    assert_all_exact(&store)
}

/// Expands to one `#[test]` per check, each on a fresh backend from `$make`.
#[macro_export]
macro_rules! model_rules_suite {
    ($make:expr) => {
        $crate::model_rules_suite!(@tests $make;
            validators_refuse_on_every_write_path,
            dangling_links_are_refused_on_every_write_path,
            restrict_refuses_and_applies_nothing,
            set_null_clears_optional_and_many_links,
            cascade_goes_several_levels_deep,
            cascade_refused_deep_down_applies_nothing,
            cascade_cycles_end,
            follow_and_referrers,
            random_operations_keep_link_indexes_exact,
            migration_on_read_and_eager,
            migration_chains_and_index_rebuild,
            newer_values_and_missing_paths_are_refused,
            migration_in_a_transaction_is_all_or_nothing,
            put_many_across_chunks_applies_nothing_on_failure,
            put_many_links_to_records_of_later_chunks,
            cross_dangling_links_are_refused,
            cross_restrict_holds_from_the_target_store,
            cross_restrict_holds_without_the_linking_store,
            cross_referrers_and_follow,
            one_record_links_to_itself_and_repeats,
            self_paths_link_within_the_definition,
        );

        #[test]
        fn self_paths_store_what_single_names_store() -> model_rules::TestResult {
            model_rules::self_paths_store_what_single_names_store(
                std::sync::Arc::new(($make)()?),
                std::sync::Arc::new(($make)()?),
            )
        }
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() -> model_rules::TestResult {
                model_rules::$name(std::sync::Arc::new(($make)()?))
            }
        )+
    };
}
