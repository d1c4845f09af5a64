//! Links across definitions held in one database: `LibraryDefinition`'s books link
//! into `RulesDefinition` (its users and organizations). Both stores are opened on one
//! backend, as an application with two definitions opens them.

use std::collections::BTreeSet;
use std::sync::Arc;

use netabase_store::backend::{Backend, Direction, RawRange, collect_range};
use netabase_store::prelude::*;

use super::TestResult;
use super::schema::library::{self, Book, BookAuthorLink, BookPublisherLink, LibraryDefinition};
use super::schema::library_unlinked;
use super::schema::rules::{Organization, Post, User};

type Library<B> = NetabaseStore<LibraryDefinition, B>;

fn stores<B: Backend>(backend: &Arc<B>) -> Result<(super::Rules<B>, Library<B>), NetabaseError> {
    Ok((
        NetabaseStore::from_shared_backend(backend.clone())?,
        NetabaseStore::from_shared_backend(backend.clone())?,
    ))
}

fn user(id: u64, org: Option<u64>) -> User {
    User {
        org,
        ..super::user(id, "ada")
    }
}

fn book(id: u64, author: u64) -> Book {
    Book {
        id,
        author,
        publisher: None,
        reviewers: Vec::new(),
        borrower: None,
    }
}

fn expect_dangling<T: std::fmt::Debug>(
    result: Result<T, NetabaseError>,
    field: &str,
    target: &str,
) -> TestResult {
    match result {
        Err(NetabaseError::DanglingLink(e)) => {
            assert_eq!((e.model, e.field, e.target), ("Book", field, target), "{e}");
            Ok(())
        }
        other => Err(format!("expected a dangling link of `Book.{field}`, got {other:?}").into()),
    }
}

fn expect_still_referenced<T: std::fmt::Debug>(
    result: Result<T, NetabaseError>,
    field: &str,
) -> TestResult {
    match result {
        Err(NetabaseError::StillReferenced(e)) => {
            assert_eq!((e.target, e.model, e.field), ("User", "Book", field), "{e}");
            Ok(())
        }
        other => Err(format!("expected StillReferenced by `Book.{field}`, got {other:?}").into()),
    }
}

/// The link index entries of every stored book equal the contents of each link table.
fn assert_book_links_exact<B: Backend>(library: &Library<B>) -> TestResult {
    let books: Vec<Book> = library
        .open_tree::<Book>()
        .iter()
        .map(|r| r.map(|(_, b)| b))
        .collect::<Result<_, _>>()?;
    let txn = library.raw_backend().begin_read()?;
    for (index, link) in <Book as NetabaseModelTrait<LibraryDefinition>>::LINKS
        .iter()
        .enumerate()
    {
        let mut expected = BTreeSet::new();
        for book in &books {
            let mut keys = Vec::new();
            book.link_keys(index, &mut keys);
            for mut entry in keys {
                entry.extend(book.primary_key().to_key_bytes());
                expected.insert(entry);
            }
        }
        let actual: BTreeSet<Vec<u8>> =
            collect_range(&txn, link.table, RawRange::all(), Direction::Forward)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
        assert_eq!(actual, expected, "link index `{}` is not exact", link.table);
    }
    Ok(())
}

/// A put whose link into the other definition names no record is refused on every
/// write path, checked in the same transaction, and nothing of it is applied.
pub fn cross_dangling_links_are_refused<B: Backend>(backend: Arc<B>) -> TestResult {
    let (rules, library) = stores(&backend)?;
    let books = library.open_tree::<Book>();
    expect_dangling(books.put(book(1, 7)), "author", "User")?;
    expect_dangling(
        books.put(Book {
            publisher: Some(3),
            ..book(1, 7)
        }),
        "author",
        "User",
    )?;
    rules.open_tree::<User>().put(user(7, None))?;
    expect_dangling(
        books.put(Book {
            publisher: Some(3),
            ..book(1, 7)
        }),
        "publisher",
        "Organization",
    )?;
    expect_dangling(
        books.put_many([
            book(1, 7),
            Book {
                reviewers: vec![7, 8],
                ..book(2, 7)
            },
        ]),
        "reviewers",
        "User",
    )?;
    let mut batch = books.create_batch();
    batch.put(book(3, 7))?;
    batch.put(book(4, 9))?;
    expect_dangling(batch.commit(), "author", "User")?;
    assert_eq!(books.len()?, 0, "nothing of a refused write is applied");

    // In one transaction of the shared backend: the target written first is seen.
    let txn = rules.write()?;
    txn.open_tree::<Organization>().put(Organization {
        id: 3,
        name: "acme".into(),
    })?;
    txn.commit()?;
    books.put(Book {
        publisher: Some(3),
        reviewers: vec![7],
        ..book(1, 7)
    })?;
    assert_eq!(books.len()?, 1);
    assert_book_links_exact(&library)
}

/// Removing a linked record through the target definition's store is refused while a
/// record of the other definition links to it: one-shot, many, clear, in a transaction,
/// and when the removal reaches it by a cascade within the target's definition. The
/// refusal applies nothing; once the link is gone, the removal goes through.
pub fn cross_restrict_holds_from_the_target_store<B: Backend>(backend: Arc<B>) -> TestResult {
    let (rules, library) = stores(&backend)?;
    let users = rules.open_tree::<User>();
    rules.open_tree::<Organization>().put(Organization {
        id: 3,
        name: "acme".into(),
    })?;
    users.put_many([user(1, Some(3)), user(2, None), user(4, None)])?;
    let books = library.open_tree::<Book>();
    books.put_many([
        book(10, 1),
        Book {
            reviewers: vec![2],
            ..book(11, 4)
        },
    ])?;

    expect_still_referenced(users.remove(1), "author")?;
    expect_still_referenced(users.remove(2), "reviewers")?;
    expect_still_referenced(users.remove_many([5, 1]), "author")?;
    expect_still_referenced(users.clear(), "author")?;
    // `User.org` cascades: removing the organization would remove user 1.
    match rules.open_tree::<Organization>().remove(3) {
        Err(NetabaseError::StillReferenced(e)) => {
            assert_eq!((e.target, e.model, e.field), ("User", "Book", "author"));
        }
        other => return Err(format!("expected StillReferenced, got {other:?}").into()),
    }
    let txn = rules.write()?;
    expect_still_referenced(txn.open_tree::<User>().remove(1), "author")?;
    // The refusal leaves the transaction usable.
    txn.open_tree::<Post>().put(super::post(20, 4))?;
    txn.commit()?;
    assert_eq!(users.len()?, 3, "nothing of a refused removal is applied");
    assert_eq!(rules.open_tree::<Organization>().len()?, 1);

    // Within its own definition the same-named model is not the target.
    library
        .open_tree::<library::User>()
        .put(library::User { id: 1 })?;
    books.put(Book {
        borrower: Some(1),
        ..book(10, 1)
    })?;
    assert!(library.open_tree::<library::User>().remove(1)?.is_some());
    assert_eq!(books.get(10)?.and_then(|b| b.borrower), None);

    // Once the books no longer link, the removals go through.
    books.put(Book {
        reviewers: Vec::new(),
        ..book(11, 4)
    })?;
    assert!(users.remove(2)?.is_some());
    books.remove(10)?;
    assert!(rules.open_tree::<Organization>().remove(3)?.is_some());
    assert_eq!(
        users.get(1)?,
        None,
        "the cascade within `rules` went through"
    );
    assert_book_links_exact(&library)?;
    super::assert_all_exact(&rules)
}

/// The target's store honours the links without the linking definition open: the
/// links are recorded in the database when the linking store opens. A later version
/// of the linking definition without them releases the targets.
pub fn cross_restrict_holds_without_the_linking_store<B: Backend>(backend: Arc<B>) -> TestResult {
    {
        let (rules, library) = stores(&backend)?;
        rules.open_tree::<User>().put(user(1, None))?;
        library.open_tree::<Book>().put(book(10, 1))?;
    }
    let rules: super::Rules<B> = NetabaseStore::from_shared_backend(backend.clone())?;
    expect_still_referenced(rules.open_tree::<User>().remove(1), "author")?;

    // The library drops its links into `rules` (the books stay, as plain numbers).
    let unlinked: NetabaseStore<library_unlinked::LibraryDefinition, B> =
        NetabaseStore::from_shared_backend(backend.clone())?;
    assert_eq!(unlinked.open_tree::<library_unlinked::Book>().len()?, 1);
    assert!(rules.open_tree::<User>().remove(1)?.is_some());
    Ok(())
}

/// `referrers_across` finds the records of the other definition that link to a
/// record; `follow_across` reads the records a link points at.
pub fn cross_referrers_and_follow<B: Backend>(backend: Arc<B>) -> TestResult {
    let (rules, library) = stores(&backend)?;
    rules.open_tree::<Organization>().put(Organization {
        id: 3,
        name: "acme".into(),
    })?;
    rules
        .open_tree::<User>()
        .put_many([user(1, None), user(2, None)])?;
    let books = library.open_tree::<Book>();
    let first = Book {
        publisher: Some(3),
        reviewers: vec![2, 1],
        ..book(10, 1)
    };
    books.put_many([first.clone(), book(11, 2), book(12, 2)])?;
    let users = rules.open_tree::<User>();
    // User 1 wrote book 10 and reviews it: once.
    let ids = |books: Vec<Book>| books.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(ids(users.referrers_across::<Book>(1)?), [10]);
    assert_eq!(ids(users.referrers_across::<Book>(2)?), [10, 11, 12]);
    assert!(users.referrers_across::<Book>(9)?.is_empty());
    // In a transaction of the target's store, through its view.
    let txn = rules.read()?;
    let view = txn.open_tree::<Organization>();
    assert_eq!(ids(view.referrers_across::<Book>(3)?), [10]);
    drop(txn);
    let authors = books.follow_across::<BookAuthorLink>(&first)?;
    assert_eq!(authors.iter().map(|u| u.id).collect::<Vec<_>>(), [1]);
    let publishers = books.follow_across::<BookPublisherLink>(&first)?;
    assert_eq!(publishers.iter().map(|o| o.id).collect::<Vec<_>>(), [3]);
    // The record is gone: `Book.author` of the removed book no longer counts.
    books.remove(11)?;
    assert_eq!(ids(users.referrers_across::<Book>(2)?), [10, 12]);
    Ok(())
}
