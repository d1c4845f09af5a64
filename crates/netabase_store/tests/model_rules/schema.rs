// The schemas of the model-rules suite: links with every policy, validators, and three
// versions of one model.

use netabase_store::prelude::*;

/// Validators and links.
#[netabase_definition_module(RulesDefinition, RulesKeys)]
pub mod rules {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The model-level validator of `User`.
    pub fn check_user(user: &User) -> Result<(), String> {
        if user.email.contains('@') {
            Ok(())
        } else {
            Err(format!("email `{}` has no `@`", user.email))
        }
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition, validate = check_user)]
    pub struct User {
        #[primary_key]
        pub id: u64,
        #[validate(non_empty, len(max = 20))]
        pub name: String,
        #[secondary_key(unique)]
        pub email: String,
        #[validate(range(min = 0, max = 150))]
        pub age: u32,
        /// A user leaves with their organization.
        #[link(Organization, on_delete = cascade)]
        pub org: Option<u64>,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition)]
    pub struct Tag {
        #[primary_key]
        pub id: u32,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        /// Restrict (the default): a user with posts cannot be removed.
        #[link(User)]
        pub author: u64,
        #[link(User, on_delete = set_null)]
        pub editor: Option<u64>,
        /// Many-to-many.
        #[link(Tag, on_delete = set_null)]
        pub tags: Vec<u32>,
        /// A reply is removed with the post it answers, recursively.
        #[link(Post, on_delete = cascade)]
        pub reply_to: Option<u64>,
        #[secondary_key]
        #[validate(len(min = 1))]
        pub title: String,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition)]
    pub struct Organization {
        #[primary_key]
        pub id: u64,
        pub name: String,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition, parent = Organization)]
    pub struct Team {
        #[primary_key]
        pub id: u64,
        #[link(Organization)]
        pub organization: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition, parent = Team)]
    pub struct Member {
        #[primary_key]
        pub id: u64,
        #[link(Team)]
        pub team: u64,
        /// Many-to-many, cleared when a mentor goes.
        #[link(Member, on_delete = set_null)]
        pub mentors: Vec<u64>,
    }

    /// A cycle of cascades: `a.next = b`, `b.next = a`.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(RulesDefinition)]
    pub struct Node {
        #[primary_key]
        pub id: u64,
        #[link(Node, on_delete = cascade)]
        pub next: Option<u64>,
    }
}

/// Version 1 of `Person`.
#[netabase_definition_module(PeopleDefinition, PeopleKeys)]
pub mod v1 {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PeopleDefinition, version = 1)]
    pub struct Person {
        #[primary_key]
        pub id: u64,
        pub name: String,
        #[secondary_key]
        pub age: u32,
    }
}

/// Version 2: the name is split.
#[netabase_definition_module(PeopleDefinition, PeopleKeys)]
pub mod v2 {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[netabase(version = 1)]
    pub struct PersonV1 {
        pub id: u64,
        pub name: String,
        pub age: u32,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PeopleDefinition, version = 2, from = PersonV1)]
    pub struct Person {
        #[primary_key]
        pub id: u64,
        pub first: String,
        pub last: String,
        #[secondary_key]
        pub age: u32,
    }

    impl From<PersonV1> for Person {
        fn from(v1: PersonV1) -> Self {
            let (first, last) = v1.name.split_once(' ').unwrap_or((&v1.name, ""));
            Person {
                id: v1.id,
                first: first.to_owned(),
                last: last.to_owned(),
                age: v1.age,
            }
        }
    }
}

/// Version 3: a new indexed field derived from the others, and the indexed `age` now
/// counts months: an indexed value that the upgrade changes under the same field name.
#[netabase_definition_module(PeopleDefinition, PeopleKeys)]
pub mod v3 {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[netabase(version = 1)]
    pub struct PersonV1 {
        pub id: u64,
        pub name: String,
        pub age: u32,
    }

    #[derive(Serialize, Deserialize)]
    #[netabase(version = 2, from = PersonV1)]
    pub struct PersonV2 {
        pub id: u64,
        pub first: String,
        pub last: String,
        pub age: u32,
    }

    impl From<PersonV1> for PersonV2 {
        fn from(v1: PersonV1) -> Self {
            let (first, last) = v1.name.split_once(' ').unwrap_or((&v1.name, ""));
            PersonV2 {
                id: v1.id,
                first: first.to_owned(),
                last: last.to_owned(),
                age: v1.age,
            }
        }
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PeopleDefinition, version = 3, from = PersonV2)]
    pub struct Person {
        #[primary_key]
        pub id: u64,
        pub first: String,
        pub last: String,
        /// In months.
        #[secondary_key]
        pub age: u32,
        #[secondary_key]
        pub initials: String,
    }

    impl From<PersonV2> for Person {
        fn from(v2: PersonV2) -> Self {
            let initials: String = [v2.first.chars().next(), v2.last.chars().next()]
                .into_iter()
                .flatten()
                .collect();
            Person {
                id: v2.id,
                first: v2.first,
                last: v2.last,
                age: v2.age * 12,
                initials,
            }
        }
    }
}

/// Version 2 with a rule the upgrade can break: the last name must not be empty (a
/// version-1 name without a space upgrades to an empty last name).
#[netabase_definition_module(PeopleDefinition, PeopleKeys)]
pub mod v2_strict {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[netabase(version = 1)]
    pub struct PersonV1 {
        pub id: u64,
        pub name: String,
        pub age: u32,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PeopleDefinition, version = 2, from = PersonV1)]
    pub struct Person {
        #[primary_key]
        pub id: u64,
        pub first: String,
        #[validate(non_empty)]
        pub last: String,
        #[secondary_key]
        pub age: u32,
    }

    impl From<PersonV1> for Person {
        fn from(v1: PersonV1) -> Self {
            let (first, last) = v1.name.split_once(' ').unwrap_or((&v1.name, ""));
            Person {
                id: v1.id,
                first: first.to_owned(),
                last: last.to_owned(),
                age: v1.age,
            }
        }
    }
}

/// A second definition in the same database, linking into `RulesDefinition`: its own
/// `User` (a name `rules` also has) and books whose links cross into `rules`.
#[netabase_definition_module(LibraryDefinition, LibraryKeys)]
pub mod library {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A library member, unrelated to `rules::User` but of the same name.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition)]
    pub struct Book {
        #[primary_key]
        pub id: u64,
        /// Into the other definition.
        #[link(super::rules::User)]
        pub author: u64,
        /// Into the other definition, optional.
        #[link(self::super::rules::Organization)]
        pub publisher: Option<u64>,
        /// Into the other definition, many.
        #[link(super::rules::User)]
        pub reviewers: Vec<u64>,
        /// Within this definition, to the model of the same name.
        #[link(User, on_delete = set_null)]
        pub borrower: Option<u64>,
    }
}

/// `LibraryDefinition` after its links into `rules` were removed.
#[netabase_definition_module(LibraryDefinition, LibraryKeys)]
pub mod library_unlinked {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition)]
    pub struct Book {
        #[primary_key]
        pub id: u64,
        pub author: u64,
        pub publisher: Option<u64>,
        pub reviewers: Vec<u64>,
        #[link(User, on_delete = set_null)]
        pub borrower: Option<u64>,
    }
}

/// Links written as paths within their own definition (`self::Model`), with every
/// policy: the same links as the single names of `paths_named`.
#[netabase_definition_module(PathsDefinition, PathsKeys)]
pub mod paths {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PathsDefinition)]
    pub struct Folder {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PathsDefinition)]
    pub struct Label {
        #[primary_key]
        pub id: u32,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PathsDefinition, parent = self::Folder)]
    pub struct Doc {
        #[primary_key]
        pub id: u64,
        /// The parent link: cascades.
        #[link(self::Folder)]
        pub folder: u64,
        #[link(self::Label, on_delete = set_null)]
        pub labels: Vec<u32>,
        /// Restrict (the default).
        #[link(self::Label)]
        pub kind: u32,
        #[link(self::Doc, on_delete = cascade)]
        pub reply_to: Option<u64>,
    }
}

/// `paths` with single names.
#[netabase_definition_module(PathsDefinition, PathsKeys)]
pub mod paths_named {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PathsDefinition)]
    pub struct Folder {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PathsDefinition)]
    pub struct Label {
        #[primary_key]
        pub id: u32,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(PathsDefinition, parent = Folder)]
    pub struct Doc {
        #[primary_key]
        pub id: u64,
        #[link(Folder)]
        pub folder: u64,
        #[link(Label, on_delete = set_null)]
        pub labels: Vec<u32>,
        #[link(Label)]
        pub kind: u32,
        #[link(Doc, on_delete = cascade)]
        pub reply_to: Option<u64>,
    }
}
