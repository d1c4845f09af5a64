//! Procedural macros of [`netabase_store`](https://docs.rs/netabase_store).
//!
//! Users do not depend on this crate directly: `netabase_store::prelude::*` re-exports
//! every macro below, and the generated code only names `::netabase_store` paths.
//!
//! A schema is one module:
//!
//! ```ignore
//! use netabase_store::prelude::*;
//!
//! #[netabase_definition_module(BlogDefinition, BlogKeys)]
//! pub mod blog {
//!     use netabase_store::prelude::*;
//!     use serde::{Deserialize, Serialize};
//!
//!     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
//!     #[netabase(BlogDefinition)]
//!     pub struct User {
//!         #[primary_key]
//!         pub id: u64,
//!         pub name: String,
//!         #[secondary_key(unique)]
//!         pub email: String,
//!         #[secondary_key]
//!         pub age: u32,
//!     }
//! }
//! ```
//!
//! The module attribute does all the work: it sees every struct of the module at once,
//! validates it and generates the key types, the definition enum and the trait impls.
//! The `NetabaseModel` derive and the `netabase` attribute only exist so that the
//! attributes of a model resolve, and to report a model written outside a definition
//! module.
//!
//! The code is organised like `serde_derive`: `ast` parses the module into an internal
//! model, `valid` checks it, `expand` generates the code.

mod ast;
mod ctxt;
mod expand;
mod rules;
mod types;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::Span;
use syn::parse_macro_input;

/// Turns a module of structs into a netabase schema (a *definition*).
///
/// `#[netabase_definition_module(DefinitionName, KeysName)]` takes two names: the enum of
/// every model of the module (`BlogDefinition`) and the enum of every model's keys
/// (`BlogKeys`). Every struct of the module that derives `NetabaseModel` is a model.
///
/// # Models
///
/// A model is a struct with named fields and no generic parameters. Exactly one field
/// is marked `#[primary_key]`; any other field may be marked `#[secondary_key]` or
/// `#[secondary_key(unique)]`. The struct may carry `#[netabase(DefinitionName)]`,
/// `#[netabase(DefinitionName, version = N)]` or `#[netabase(version = N)]`; without it
/// the model belongs to the module's definition with version 0. Naming another
/// definition than the module's is an error.
///
/// A primary key type must implement `netabase_store::codec::key::PrimaryKeyCodec`
/// (integers, `bool`, `char`, `String`, `Vec<u8>`, `[u8; N]`, `Option<T>` and tuples of
/// these); a secondary key type must implement `KeyCodec` (the same, plus `f32`/`f64`).
/// A field of another type is reported at the field's type.
///
/// # Model rules
///
/// - `#[netabase(Def, version = 2, from = UserV1)]`: values of older versions are read
///   through `From<UserV1>`; `UserV1` is a plain serde struct of the module marked
///   `#[netabase(version = 1)]` (with `from = ..` for the version before it, a chain).
/// - `#[netabase(Def, validate = path::to::fn)]` (`fn(&Model) -> Result<(), E: Display>`)
///   and, on fields, `#[validate(len(min = N, max = N))]`, `#[validate(range(min = X,
///   max = X))]`, `#[validate(non_empty)]`.
/// - `#[link(Target)]` / `#[link(Target, on_delete = restrict | cascade | set_null)]` on a
///   field holding `Target`'s primary key type `K` (`K`, `Option<K>` or `Vec<K>`), which
///   generates `<Model><Field>Link` for `follow`; `#[netabase(Def, parent = Target)]`
///   makes the one link to `Target` cascade and implements `Child`. `Target` is a model
///   of the module, written `Target` or `self::Target` (so is a parent); any other path
///   (`#[link(super::accounts::User)]`) names a model of another definition, which a
///   link can only `restrict`.
///
/// A field of the wrong type for its link, an unknown target or rule, and a `from`
/// without a `version` are compile errors pointing at the offending tokens.
///
/// # Generated items
///
/// For a model `User` (with the visibility of the struct), in the module:
///
/// - `UserPrimaryKey(pub T)`: the primary key newtype (`Clone`, `Debug`, `Eq`, `Ord`,
///   `Hash`, serde), `KeyCodec`, `PrimaryKeyCodec`, `From<T>`;
/// - `User<Field>SecondaryKey(pub T)` per secondary field (`author_id` gives
///   `UserAuthorIdSecondaryKey`): `Clone`, `Debug`, `PartialEq`, `PartialOrd` (ordered
///   like the index, i.e. by key encoding), serde, `KeyCodec`, `SecondaryKeyField`,
///   `From<T>`;
/// - `enum UserSecondaryKeys { <Field>(User<Field>SecondaryKey), .. }` with
///   `SecondaryKeyEnum` (an enum without variants when the model has no secondary key);
/// - `enum UserKey { Primary(UserPrimaryKey), Secondary(UserSecondaryKeys) }`;
/// - `impl NetabaseModelTrait<DefinitionName> for User`.
///
/// For the module (with the visibility of the models when they all share one, `pub`
/// otherwise):
///
/// - `enum DefinitionName { User(User), .. }` with `NetabaseDefinitionTrait` and
///   `From<User>` per model;
/// - `enum KeysName { User(UserKey), .. }`;
/// - `enum DefinitionNameDiscriminant { User, .. }` with `DiscriminantTrait` and
///   `Display`.
#[proc_macro_attribute]
pub fn netabase_definition_module(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as ast::DefinitionArgs);
    let module = parse_macro_input!(item as syn::ItemMod);
    expand::definition_module(args, module).into()
}

/// Marks a struct as a model of the enclosing `#[netabase_definition_module(..)]`.
///
/// The derive itself generates nothing: the module attribute, which sees every model of
/// the module at once, generates the code and leaves a marker for this derive. A
/// `#[derive(NetabaseModel)]` outside a definition module is an error.
///
/// Field attributes: `#[primary_key]`, `#[secondary_key]`, `#[secondary_key(unique)]`.
/// Struct attribute: `#[netabase(DefinitionName)]`, optionally with `version = N`.
/// See `#[netabase_definition_module]`.
#[proc_macro_derive(NetabaseModel, attributes(primary_key, secondary_key, netabase))]
pub fn netabase_model(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    expand::derive_outside_module(&input).into()
}

/// Names the definition (and version) of a model: `#[netabase(BlogDefinition, version = 2)]`.
///
/// This attribute is read by `#[netabase_definition_module]` on structs that derive
/// `NetabaseModel`; there it is an inert helper attribute. When this macro itself
/// runs, the attribute is used somewhere else, which is an error.
#[proc_macro_attribute]
pub fn netabase(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        Span::call_site(),
        "`#[netabase(..)]` only applies to a struct with `#[derive(NetabaseModel)]` inside a \
         `#[netabase_definition_module(..)]` module; put `#[netabase(..)]` after the derive \
         and move the struct into the module of its definition",
    )
    .to_compile_error();
    let item = proc_macro2::TokenStream::from(item);
    quote::quote!(#error #item).into()
}
