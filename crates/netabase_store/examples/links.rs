//! Links between models: an organization → team → member hierarchy whose children go
//! with their parent (`parent = ..`, a cascading link), a many-to-many link cleared when
//! its target goes (`set_null`), and a link that refuses the removal of what it points
//! at (`restrict`, the default).
//!
//! Run it with `cargo run --example links`.

use netabase_store::prelude::*;

/// The schema: the hierarchy, and projects that members work on.
#[netabase_definition_module(CompanyDefinition, CompanyKeys)]
pub mod company {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The root of the hierarchy.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CompanyDefinition)]
    pub struct Organization {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Display name, 1 to 100 bytes.
        #[validate(len(min = 1, max = 100))]
        pub name: String,
    }

    /// A team belongs to an organization and goes with it.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CompanyDefinition, parent = Organization)]
    pub struct Team {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// The organization (must exist when the team is stored).
        #[link(Organization)]
        pub organization: u64,
        /// Display name.
        #[validate(non_empty)]
        pub name: String,
    }

    /// A member belongs to a team and goes with it.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CompanyDefinition, parent = Team)]
    pub struct Member {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// The team.
        #[link(Team)]
        pub team: u64,
        /// Display name.
        pub name: String,
        /// The projects the member works on (many-to-many; a removed project is taken
        /// out of the list).
        #[link(Project, on_delete = set_null)]
        pub projects: Vec<u64>,
    }

    /// A project, owned by a member who cannot leave while owning it.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CompanyDefinition)]
    pub struct Project {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Display name.
        pub name: String,
        /// The owner (`restrict`: the default policy).
        #[link(Member)]
        pub owner: Option<u64>,
    }
}

use company::*;

fn main() -> Result<(), NetabaseError> {
    let store = NetabaseStore::<CompanyDefinition, _>::memory()?;
    let (orgs, teams, members, projects) = (
        store.open_tree::<Organization>(),
        store.open_tree::<Team>(),
        store.open_tree::<Member>(),
        store.open_tree::<Project>(),
    );

    orgs.put(Organization {
        id: 1,
        name: "Acme".into(),
    })?;
    teams.put_many([
        Team {
            id: 10,
            organization: 1,
            name: "storage".into(),
        },
        Team {
            id: 11,
            organization: 1,
            name: "network".into(),
        },
    ])?;
    let member = |id, team, name: &str| Member {
        id,
        team,
        name: name.into(),
        projects: vec![],
    };
    members.put_many([
        member(100, 10, "Ada"),
        member(101, 10, "Grace"),
        member(110, 11, "Linus"),
    ])?;
    projects.put_many([
        Project {
            id: 7,
            name: "compaction".into(),
            owner: None,
        },
        Project {
            id: 8,
            name: "gossip".into(),
            owner: Some(110),
        },
    ])?;
    members.put(Member {
        projects: vec![7, 8],
        ..member(100, 10, "Ada")
    })?;

    // A link to a record that does not exist is refused.
    let orphan = members.put(member(999, 42, "Nobody"));
    assert!(matches!(orphan, Err(NetabaseError::DanglingLink(_))));
    println!(
        "refused: {}",
        orphan.err().map(|e| e.to_string()).unwrap_or_default()
    );
    // So is an invalid value.
    let unnamed = teams.put(Team {
        id: 12,
        organization: 1,
        name: String::new(),
    });
    assert!(matches!(unnamed, Err(NetabaseError::Invalid(_))));

    // Navigation: children through the link index, the parent through the typed
    // accessor, a link's targets with `follow`.
    let storage = teams
        .get(10)?
        .ok_or_else(|| NetabaseError::decode_other("Team", &[], "missing"))?;
    let in_storage: Vec<String> = teams
        .referrers::<Member>(10)?
        .into_iter()
        .map(|m| m.name)
        .collect();
    println!(
        "team {} of {:?}: {in_storage:?}",
        storage.name,
        teams.parent(&storage)?.map(|o| o.name)
    );
    let ada = members
        .get(100)?
        .ok_or_else(|| NetabaseError::decode_other("Member", &[], "missing"))?;
    let ada_projects: Vec<String> = members
        .follow::<MemberProjectsLink>(&ada)?
        .into_iter()
        .map(|p| p.name)
        .collect();
    println!("Ada works on {ada_projects:?}");

    // `set_null`: removing a project takes it out of every member's list.
    projects.remove(7)?;
    assert_eq!(members.get(100)?.map(|m| m.projects), Some(vec![8]));

    // `restrict`: Linus owns a project, so the organization (whose removal would remove
    // his team, and him) cannot go; nothing is removed.
    let refused = orgs.remove(1);
    assert!(matches!(refused, Err(NetabaseError::StillReferenced(_))));
    println!(
        "refused: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );
    assert_eq!((teams.len()?, members.len()?), (2, 3));

    // Hand the project over, then remove the organization: its teams and their members
    // go with it, in one transaction.
    projects.put(Project {
        id: 8,
        name: "gossip".into(),
        owner: None,
    })?;
    let changes = {
        let txn = store.write()?;
        txn.open_tree::<Organization>().remove(1)?;
        txn.commit()?
    };
    println!(
        "removing the organization changed {} records",
        changes.len()
    );
    assert_eq!((orgs.len()?, teams.len()?, members.len()?), (0, 0, 0));
    assert_eq!(projects.len()?, 1);
    Ok(())
}
