//! Links written as paths within their own definition: `#[link(self::Folder)]` is the
//! link `#[link(Folder)]`, with every policy (`cascade`, `set_null`, `restrict`), a
//! `parent`, and `follow`.

use std::sync::Arc;

use netabase_store::backend::Backend;
use netabase_store::prelude::*;

use super::TestResult;
use super::assert_model_indexes_exact;

/// Runs the same writes on the schema of module `$module` (`paths` or `paths_named`)
/// over `$backend`, checking each outcome; yields the store.
macro_rules! scenario {
    ($module:ident, $backend:expr) => {{
        use super::schema::$module::*;
        let store: NetabaseStore<PathsDefinition, _> =
            NetabaseStore::from_shared_backend($backend.clone())?;
        let doc = |id: u64, folder: u64, labels: Vec<u32>, reply_to: Option<u64>| Doc {
            id,
            folder,
            labels,
            kind: 3,
            reply_to,
        };
        let folders = store.open_tree::<Folder>();
        let labels = store.open_tree::<Label>();
        let docs = store.open_tree::<Doc>();
        folders.put_many([Folder { id: 1 }, Folder { id: 2 }])?;
        labels.put_many([Label { id: 1 }, Label { id: 2 }, Label { id: 3 }])?;
        docs.put_many([
            doc(10, 1, vec![1, 2], None),
            doc(11, 2, vec![2], Some(10)),
            doc(12, 2, vec![], Some(11)),
            doc(13, 2, vec![1], None),
            doc(14, 1, vec![], None),
        ])?;
        // A dangling link is refused, as for any link within the definition.
        match docs.put(doc(15, 9, vec![], None)) {
            Err(NetabaseError::DanglingLink(e)) => {
                assert_eq!((e.model, e.field, e.target), ("Doc", "folder", "Folder"))
            }
            other => return Err(format!("expected a dangling folder, got {other:?}").into()),
        }
        // `follow` and `parent` (a link within the definition, not across).
        let first = docs.get(10)?.ok_or("doc 10")?;
        assert_eq!(
            docs.follow::<DocLabelsLink>(&first)?,
            [Label { id: 1 }, Label { id: 2 }]
        );
        assert_eq!(docs.parent(&first)?, Some(Folder { id: 1 }));
        // set_null: label 2 leaves the labels of 10 and 11.
        labels.remove(2)?;
        assert_eq!(docs.get(10)?.map(|d| d.labels), Some(vec![1]));
        assert_eq!(docs.get(11)?.map(|d| d.labels), Some(vec![]));
        // restrict: every doc is of kind 3.
        match labels.remove(3) {
            Err(NetabaseError::StillReferenced(e)) => {
                assert_eq!(
                    (e.target, e.model, e.field),
                    ("Label", "Doc", "kind"),
                    "{e}"
                )
            }
            other => return Err(format!("expected StillReferenced, got {other:?}").into()),
        }
        assert!(labels.get(3)?.is_some());
        // cascade: removing 10 removes its reply 11 and the reply to that, 12.
        let changes = {
            let txn = store.write()?;
            txn.open_tree::<Doc>().remove(10)?;
            txn.commit()?
        };
        assert_eq!(changes.len(), 3, "{changes:?}");
        // The parent link cascades: folder 1 takes doc 14.
        folders.remove(1)?;
        let left: Vec<u64> = docs
            .iter()
            .map(|r| r.map(|(_, d)| d.id))
            .collect::<Result<_, _>>()?;
        assert_eq!(left, [13]);
        assert_model_indexes_exact::<PathsDefinition, _, Folder>(&store)?;
        assert_model_indexes_exact::<PathsDefinition, _, Label>(&store)?;
        assert_model_indexes_exact::<PathsDefinition, _, Doc>(&store)?;
        store
    }};
}

/// `#[link(self::Model)]` links within the definition, with each policy.
pub fn self_paths_link_within_the_definition<B: Backend>(backend: Arc<B>) -> TestResult {
    scenario!(paths, backend);
    Ok(())
}

/// The links of `paths` (`self::Model`) and `paths_named` (`Model`) are the same links:
/// the same descriptions, and the same writes leave the same bytes in every table
/// (records, link indexes, and the schema descriptor in the meta table).
pub fn self_paths_store_what_single_names_store<B: Backend>(
    with_paths: Arc<B>,
    with_names: Arc<B>,
) -> TestResult {
    use super::schema::{paths, paths_named};

    let describe = |links: &[netabase_store::rules::LinkInfo]| {
        links
            .iter()
            .map(|l| (l.field, l.table, l.target, l.target_table, l.on_delete))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        describe(<paths::Doc as NetabaseModelTrait<paths::PathsDefinition>>::LINKS),
        describe(<paths_named::Doc as NetabaseModelTrait<paths_named::PathsDefinition>>::LINKS),
    );
    scenario!(paths, with_paths);
    scenario!(paths_named, with_names);
    /// Every table by name, with its entries.
    type Tables = Vec<(String, Vec<netabase_store::backend::Entry>)>;
    let dump = |backend: &B| -> Result<Tables, NetabaseError> {
        use netabase_store::backend::{Direction, RawRange, ReadTxn, collect_range};
        let txn = backend.begin_read()?;
        let mut names = txn.table_names()?;
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let entries = collect_range(&txn, &name, RawRange::all(), Direction::Forward)?;
                Ok((name, entries))
            })
            .collect()
    };
    let (a, b) = (dump(&with_paths)?, dump(&with_names)?);
    assert!(
        a.iter()
            .any(|(name, _)| name == "PathsDefinition/Doc/reply_to")
    );
    assert_eq!(a, b);
    Ok(())
}
