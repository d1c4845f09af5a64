//! Change subscriptions: a subscriber thread prints typed changes while another thread
//! writes, and ends by itself when the writer drops the store.
//!
//! Run it with `cargo run --example watch`.

use std::thread;

use netabase_store::TypedChange;
use netabase_store::prelude::*;
use netabase_store::watch::{DefinitionChange, Event, Filter};

/// The schema.
#[netabase_definition_module(TodoDefinition, TodoKeys)]
pub mod todo {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A task, found by id or by priority.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TodoDefinition)]
    pub struct Task {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// What to do.
        pub title: String,
        /// 1 (urgent) to 5 (some day).
        #[secondary_key]
        pub priority: u8,
    }

    /// A list that tasks belong to.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TodoDefinition)]
    pub struct List {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Its name.
        pub name: String,
    }
}

use todo::*;

fn task(id: u64, title: &str, priority: u8) -> Task {
    Task {
        id,
        title: title.into(),
        priority,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = TodoDefinition::open_temp()?;
    let tasks = store.open_tree::<Task>();

    // Every change of every task, as typed changes of `Task`.
    let all_tasks = tasks.watch(Filter::all());
    // Only urgent tasks (priority 1 or 2), before or after the change: a task that
    // stops being urgent is reported too.
    let urgent = tasks.watch(Filter::secondary_range(
        TaskPrioritySecondaryKey(1)..=TaskPrioritySecondaryKey(2),
    ));
    // Several models at once, as changes of the definition enum.
    let everything = store.watch().subscribe();

    let printer = thread::spawn(move || -> Result<usize, NetabaseError> {
        let mut changes = 0;
        // Ends when the writer has dropped every handle on the store.
        for event in all_tasks {
            match event? {
                Event::Commit(commit) => {
                    println!("commit #{}:", commit.seq);
                    for change in commit.changes {
                        changes += 1;
                        match change {
                            TypedChange::Put { old: None, new, .. } => {
                                println!(
                                    "  added    {:>2} {:?} (p{})",
                                    new.id, new.title, new.priority
                                )
                            }
                            TypedChange::Put {
                                old: Some(old),
                                new,
                                ..
                            } => println!(
                                "  changed  {:>2} {:?} (p{}) -> {:?} (p{})",
                                new.id, old.title, old.priority, new.title, new.priority
                            ),
                            TypedChange::Removed { old, .. } => {
                                println!("  removed  {:>2} {:?}", old.id, old.title)
                            }
                            TypedChange::Cleared => println!("  cleared every task"),
                        }
                    }
                }
                Event::Lagged(n) => println!("missed {n} commits: re-read the tree"),
            }
        }
        Ok(changes)
    });

    let writer = thread::spawn(move || -> Result<(), NetabaseError> {
        tasks.put(task(1, "write the report", 3))?;
        tasks.put_many([task(2, "fix the build", 1), task(3, "water the plants", 4)])?;
        tasks.put(task(1, "write the report", 2))?;

        // One transaction over two models: one commit, both changes.
        let txn = store.write()?;
        txn.open_tree::<List>().put(List {
            id: 1,
            name: "home".into(),
        })?;
        txn.open_tree::<Task>()
            .put(task(4, "call the plumber", 1))?;
        txn.commit()?;

        // Rolled back: nobody hears of it.
        let txn = store.write()?;
        txn.open_tree::<Task>().put(task(5, "never happened", 1))?;
        txn.rollback();

        let mut batch = tasks.create_batch();
        batch.remove(2);
        batch.put(task(3, "water the plants", 2))?;
        batch.commit()?;
        tasks.clear()?;
        // `store` and `tasks` are dropped here: the subscriptions end.
        Ok(())
    });

    writer.join().map_err(|_| "the writer panicked")??;
    let changes = printer.join().map_err(|_| "the printer panicked")??;
    println!("{changes} task changes printed");

    println!("urgent tasks, as they came and went:");
    for event in urgent.iter() {
        if let Event::Commit(commit) = event? {
            for change in commit.changes {
                match change {
                    TypedChange::Put { new, .. } => {
                        println!("  {} is p{}", new.title, new.priority)
                    }
                    TypedChange::Removed { old, .. } => println!("  {} is gone", old.title),
                    TypedChange::Cleared => println!("  every task is gone"),
                }
            }
        }
    }

    let models: Vec<String> = everything
        .iter()
        .filter_map(|event| match event {
            Ok(Event::Commit(commit)) => Some(
                commit
                    .changes
                    .iter()
                    .map(|c| match c {
                        DefinitionChange::Cleared { model } => format!("{}*", model.name()),
                        other => other.model().name().to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
            _ => None,
        })
        .collect();
    println!("store-wide, one entry per commit: {}", models.join(", "));
    Ok(())
}
