//! The internal model of a definition module: the macro arguments, and every struct of
//! the module that derives `NetabaseModel`, with its attributes parsed.
//!
//! Parsing also rewrites the module's items: the `#[netabase(..)]` attributes of every
//! model are replaced by a marker that tells the `NetabaseModel` derive that the module
//! attribute has already handled the struct.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Generics, Ident, Item, LitInt, Path, Token, Type, Visibility};

use crate::ctxt::Ctxt;

/// The argument of the marker attribute `#[netabase(__inside_definition_module)]`.
pub(crate) const MARKER: &str = "__inside_definition_module";

/// What `#[netabase_definition_module(Definition, Keys)]` was given.
pub(crate) struct DefinitionArgs {
    /// The name of the definition enum, e.g. `BlogDefinition`.
    pub(crate) definition: Ident,
    /// The name of the keys enum, e.g. `BlogKeys`.
    pub(crate) keys: Ident,
}

const ARGS_USAGE: &str = "write `#[netabase_definition_module(BlogDefinition, BlogKeys)]`: \
                          the name of the definition enum, then the name of the keys enum";

impl Parse for DefinitionArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("`#[netabase_definition_module]` needs two names; {ARGS_USAGE}"),
            ));
        }
        let definition: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the name of the definition enum; {ARGS_USAGE}"),
            )
        })?;
        if input.is_empty() {
            return Err(syn::Error::new_spanned(
                &definition,
                format!("missing the name of the keys enum; {ARGS_USAGE}"),
            ));
        }
        input.parse::<Token![,]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `,` after the definition name; {ARGS_USAGE}"),
            )
        })?;
        if input.is_empty() {
            return Err(syn::Error::new_spanned(
                &definition,
                format!("missing the name of the keys enum; {ARGS_USAGE}"),
            ));
        }
        let keys: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the name of the keys enum; {ARGS_USAGE}"),
            )
        })?;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            let rest: TokenStream = input.parse()?;
            return Err(syn::Error::new_spanned(
                rest,
                format!(
                    "`#[netabase_definition_module(..)]` takes exactly two names, the definition \
                     enum and the keys enum; {ARGS_USAGE}"
                ),
            ));
        }
        if definition == keys {
            return Err(syn::Error::new_spanned(
                &keys,
                format!(
                    "the definition enum and the keys enum are both named `{definition}`; \
                     give them different names, e.g. `{definition}Keys`"
                ),
            ));
        }
        Ok(DefinitionArgs { definition, keys })
    }
}

/// The shape of an item that derives `NetabaseModel`.
pub(crate) enum Shape {
    /// A struct with named fields: the only valid shape.
    Named(Vec<Field>),
    /// A tuple struct (`struct User(u64);`), spanned by its fields.
    Tuple(TokenStream),
    /// A unit struct (`struct User;`).
    Unit,
    /// An enum or a union, spanned by its keyword.
    NotStruct(TokenStream, &'static str),
}

/// An item of the module that derives `NetabaseModel`.
pub(crate) struct Model {
    /// The struct's name.
    pub(crate) ident: Ident,
    /// The struct's visibility, reused for the generated per-model types.
    pub(crate) vis: Visibility,
    /// The struct's generic parameters (must be empty).
    pub(crate) generics: Generics,
    /// Every `#[netabase(..)]` attribute of the struct.
    pub(crate) netabase_attrs: Vec<NetabaseAttr>,
    /// The struct's fields.
    pub(crate) shape: Shape,
}

/// A parsed `#[netabase(Definition, version = N)]` attribute.
pub(crate) struct NetabaseAttr {
    /// The whole attribute, to span errors.
    pub(crate) attr: Attribute,
    /// The definition it names, if any.
    pub(crate) definition: Option<Ident>,
    /// The model version, if given.
    pub(crate) version: Option<u16>,
    /// The rule options (`from`, `validate`, `parent`).
    pub(crate) rules: crate::rules::ModelRules,
}

/// A named field of a model.
pub(crate) struct Field {
    /// The field's name.
    pub(crate) ident: Ident,
    /// The field's type.
    pub(crate) ty: Type,
    /// Every `#[primary_key]` attribute of the field.
    pub(crate) primary: Vec<Attribute>,
    /// Every `#[secondary_key..]` attribute of the field.
    pub(crate) secondary: Vec<SecondaryAttr>,
    /// Every `#[link(..)]` attribute of the field.
    pub(crate) links: Vec<crate::rules::LinkAttr>,
    /// The field's `#[validate(..)]` rules.
    pub(crate) rules: Vec<crate::rules::FieldRule>,
    /// Whether the field has a `#[serde(..)]` attribute, which may change how it is
    /// serialized (`with`, `skip`): its stored shape is then not described.
    pub(crate) serde_attr: bool,
}

/// A parsed `#[secondary_key]` / `#[secondary_key(unique)]` attribute.
pub(crate) struct SecondaryAttr {
    /// The attribute, to span errors.
    pub(crate) attr: Attribute,
    /// Whether `unique` was given.
    pub(crate) unique: bool,
}

/// Finds every item of `items` that derives `NetabaseModel`, parses it, and rewrites it
/// (its `#[netabase(..)]` attributes become the marker for the derive).
pub(crate) fn parse_models(items: &mut [Item], cx: &mut Ctxt) -> Vec<Model> {
    let mut models = Vec::new();
    for item in items.iter_mut() {
        match item {
            Item::Struct(item) => {
                let derived = mark_derive(&mut item.attrs);
                if !derived {
                    reject_stray_attrs(&item.ident, &mut item.attrs, &mut item.fields, cx);
                    continue;
                }
                let netabase_attrs = take_netabase_attrs(&mut item.attrs, cx);
                let shape = match &item.fields {
                    Fields::Named(named) => Shape::Named(
                        named
                            .named
                            .iter()
                            .filter_map(|field| parse_field(field, cx))
                            .collect(),
                    ),
                    Fields::Unnamed(unnamed) => Shape::Tuple(unnamed.to_token_stream()),
                    Fields::Unit => Shape::Unit,
                };
                // The rule attributes are consumed here: `link` is also a built-in
                // attribute name, so it cannot be a helper attribute of the derive.
                crate::rules::strip_field_attrs(&mut item.fields);
                models.push(Model {
                    ident: item.ident.clone(),
                    vis: item.vis.clone(),
                    generics: item.generics.clone(),
                    netabase_attrs,
                    shape,
                });
            }
            Item::Enum(item) => {
                if !mark_derive(&mut item.attrs) {
                    continue;
                }
                let netabase_attrs = take_netabase_attrs(&mut item.attrs, cx);
                models.push(Model {
                    ident: item.ident.clone(),
                    vis: item.vis.clone(),
                    generics: item.generics.clone(),
                    netabase_attrs,
                    shape: Shape::NotStruct(item.enum_token.to_token_stream(), "an enum"),
                });
            }
            Item::Union(item) => {
                if !mark_derive(&mut item.attrs) {
                    continue;
                }
                let netabase_attrs = take_netabase_attrs(&mut item.attrs, cx);
                models.push(Model {
                    ident: item.ident.clone(),
                    vis: item.vis.clone(),
                    generics: item.generics.clone(),
                    netabase_attrs,
                    shape: Shape::NotStruct(item.union_token.to_token_stream(), "a union"),
                });
            }
            _ => {}
        }
    }
    models
}

/// Whether `attrs` hold a `#[derive(..)]` that lists `NetabaseModel`; if so, replaces
/// every `#[netabase(..)]` by the marker, placed right after that derive.
fn mark_derive(attrs: &mut Vec<Attribute>) -> bool {
    let Some(position) = attrs.iter().position(derives_netabase_model) else {
        return false;
    };
    let marker_ident = Ident::new(MARKER, Span::call_site());
    let marker: Attribute = syn::parse_quote!(#[netabase(#marker_ident)]);
    attrs.insert(position + 1, marker);
    true
}

/// Whether `attrs` hold a `#[derive(..)]` that lists `NetabaseModel`.
pub(crate) fn derives_model(attrs: &[Attribute]) -> bool {
    attrs.iter().any(derives_netabase_model)
}

fn derives_netabase_model(attr: &Attribute) -> bool {
    if !attr.path().is_ident("derive") {
        return false;
    }
    attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
        .map(|paths| {
            paths.iter().any(|path| {
                path.segments
                    .last()
                    .is_some_and(|segment| segment.ident == "NetabaseModel")
            })
        })
        .unwrap_or(false)
}

fn is_marker(attr: &Attribute) -> bool {
    attr.path().is_ident("netabase")
        && attr
            .parse_args::<Ident>()
            .is_ok_and(|ident| ident == MARKER)
}

/// Whether an item of a `NetabaseModel` derive carries the marker left by the module
/// attribute.
pub(crate) fn has_marker(attrs: &[Attribute]) -> bool {
    attrs.iter().any(is_marker)
}

/// Removes and parses every user-written `#[netabase(..)]` of a model (the marker stays).
fn take_netabase_attrs(attrs: &mut Vec<Attribute>, cx: &mut Ctxt) -> Vec<NetabaseAttr> {
    let mut parsed = Vec::new();
    attrs.retain(|attr| {
        if !attr.path().is_ident("netabase") || is_marker(attr) {
            return true;
        }
        match parse_netabase_attr(attr) {
            Ok(value) => parsed.push(value),
            Err(error) => cx.syn_error(error),
        }
        false
    });
    parsed
}

/// Parses one `#[netabase(..)]` attribute.
pub(crate) fn parse_netabase_attr(attr: &Attribute) -> syn::Result<NetabaseAttr> {
    const USAGE: &str =
        "write `#[netabase(BlogDefinition)]` or `#[netabase(BlogDefinition, version = 2)]`";
    let list = attr.meta.require_list().map_err(|_| {
        syn::Error::new_spanned(
            attr,
            format!("`#[netabase]` needs the name of the model's definition; {USAGE}"),
        )
    })?;
    list.parse_args_with(|input: ParseStream<'_>| {
        let mut definition = None;
        let mut version: Option<u16> = None;
        if input.peek(syn::Ident) && !input.peek2(Token![=]) {
            definition = Some(input.parse::<Ident>()?);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        } else if !input.peek(syn::Ident) && !input.is_empty() {
            return Err(input.error(format!(
                "expected the name of the model's definition; {USAGE}"
            )));
        }
        let mut rules = crate::rules::ModelRules::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if crate::rules::parse_model_option(&key, input, &mut rules)? {
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                continue;
            }
            if key != "version" {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown option `{key}` in `#[netabase(..)]`; {}",
                        crate::rules::MODEL_OPTIONS
                    ),
                ));
            }
            input.parse::<Token![=]>()?;
            let lit: LitInt = input.parse()?;
            let value = lit.base10_parse::<u16>().map_err(|_| {
                syn::Error::new_spanned(
                    &lit,
                    "the model version must be an integer from 0 to 65535",
                )
            })?;
            if version.is_some() {
                return Err(syn::Error::new_spanned(
                    &key,
                    "`version` is given twice in `#[netabase(..)]`",
                ));
            }
            version = Some(value);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(NetabaseAttr {
            attr: attr.clone(),
            definition,
            version,
            rules,
        })
    })
}

fn parse_field(field: &syn::Field, cx: &mut Ctxt) -> Option<Field> {
    let ident = field.ident.clone()?;
    let mut primary = Vec::new();
    let mut secondary = Vec::new();
    let mut links = Vec::new();
    let mut rules = Vec::new();
    for attr in &field.attrs {
        if crate::rules::parse_field_attr(attr, &mut links, &mut rules, cx) {
            continue;
        }
        if attr.path().is_ident("primary_key") {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                cx.error_spanned_by(
                    attr,
                    "`#[primary_key]` takes no arguments; write `#[primary_key]`",
                );
            }
            primary.push(attr.clone());
        } else if attr.path().is_ident("secondary_key") {
            let mut unique = false;
            match &attr.meta {
                syn::Meta::Path(_) => {}
                syn::Meta::List(_) => {
                    let parsed = attr.parse_nested_meta(|meta| {
                        if meta.path.is_ident("unique") {
                            if unique {
                                return Err(meta.error("`unique` is given twice"));
                            }
                            unique = true;
                            Ok(())
                        } else {
                            let name = meta.path.to_token_stream().to_string().replace(' ', "");
                            Err(syn::Error::new_spanned(
                                &meta.path,
                                format!(
                                    "unknown option `{name}` in `#[secondary_key(..)]`; the only \
                                     option is `unique`"
                                ),
                            ))
                        }
                    });
                    if let Err(error) = parsed {
                        cx.syn_error(error);
                    }
                }
                syn::Meta::NameValue(_) => cx.error_spanned_by(
                    attr,
                    "write `#[secondary_key]` or `#[secondary_key(unique)]`",
                ),
            }
            secondary.push(SecondaryAttr {
                attr: attr.clone(),
                unique,
            });
        }
    }
    Some(Field {
        ident,
        ty: field.ty.clone(),
        primary,
        secondary,
        links,
        rules,
        serde_attr: field.attrs.iter().any(|a| a.path().is_ident("serde")),
    })
}

/// Reports (and removes) model attributes on a struct that does not derive
/// `NetabaseModel`, which would otherwise fail with a less helpful message.
fn reject_stray_attrs(
    ident: &Ident,
    attrs: &mut Vec<Attribute>,
    fields: &mut Fields,
    cx: &mut Ctxt,
) {
    let hint = format!("add `#[derive(NetabaseModel)]` to `{ident}` to make it a model");
    attrs.retain(|attr| {
        if attr.path().is_ident("netabase") {
            cx.error_spanned_by(
                attr,
                format!("`#[netabase(..)]` is only used on models; {hint}"),
            );
            false
        } else {
            true
        }
    });
    for field in fields.iter_mut() {
        field.attrs.retain(|attr| {
            for name in ["primary_key", "secondary_key", "validate"] {
                if attr.path().is_ident(name) {
                    cx.error_spanned_by(
                        attr,
                        format!("`#[{name}]` is only used on fields of models; {hint}"),
                    );
                    return false;
                }
            }
            true
        });
    }
}

/// The tokens that span a model's generic parameters and where clause.
pub(crate) fn generics_tokens(generics: &Generics) -> TokenStream {
    let params = &generics.params;
    let where_clause = &generics.where_clause;
    let lt = generics.lt_token;
    let gt = generics.gt_token;
    let tokens = quote!(#lt #params #gt #where_clause);
    if tokens.is_empty() {
        quote::quote_spanned!(generics.span()=> <>)
    } else {
        tokens
    }
}
