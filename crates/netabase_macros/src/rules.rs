//! Model rules: versions (`from = ..`, older-version structs), validators
//! (`validate = ..`, `#[validate(..)]`) and links (`#[link(..)]`, `parent = ..`).
//!
//! Parsing, checking and generation of the rules live here, apart from the key
//! machinery of `ast` / `valid` / `expand`, which only call in.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Item, LitInt, Path, Token, Type};

use crate::ast;
use crate::ctxt::Ctxt;

// ---------------------------------------------------------------------------------------
// Parsing

/// The rule options of a model's `#[netabase(..)]`.
#[derive(Default, Clone)]
pub(crate) struct ModelRules {
    /// `from = OlderType`: the type of the previous version.
    pub(crate) from: Option<Path>,
    /// `validate = path::to::fn`: a model-level validator.
    pub(crate) validate: Option<Path>,
    /// `parent = Model`: the model's parent in a hierarchy.
    pub(crate) parent: Option<Ident>,
}

/// Parses one rule option `key = ..` of `#[netabase(..)]` into `rules`; `false` when
/// `key` is not a rule option.
pub(crate) fn parse_model_option(
    key: &Ident,
    input: ParseStream<'_>,
    rules: &mut ModelRules,
) -> syn::Result<bool> {
    let twice =
        || syn::Error::new_spanned(key, format!("`{key}` is given twice in `#[netabase(..)]`"));
    if key == "from" {
        input.parse::<Token![=]>()?;
        let path: Path = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "`from` takes the type of the previous version, e.g. `from = UserV1`",
            )
        })?;
        if rules.from.replace(path).is_some() {
            return Err(twice());
        }
    } else if key == "validate" {
        input.parse::<Token![=]>()?;
        let path: Path = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "`validate` takes the path of a function `fn(&Model) -> Result<(), E>`, \
                 e.g. `validate = check_user`",
            )
        })?;
        if rules.validate.replace(path).is_some() {
            return Err(twice());
        }
    } else if key == "parent" {
        input.parse::<Token![=]>()?;
        let usage = "`parent` takes the name of a model of the module, e.g. `parent = Organization` \
                     or `parent = self::Organization`";
        let path: Path = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), usage))?;
        // A parent is always a model of this module: `Organization` or
        // `self::Organization`, as a link names it.
        let Some(ident) = local_target(&path).cloned() else {
            return Err(syn::Error::new_spanned(
                &path,
                format!(
                    "{usage}: a parent owns its children (removing it removes them), which a \
                     model of another definition cannot"
                ),
            ));
        };
        if rules.parent.replace(ident).is_some() {
            return Err(twice());
        }
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// The options `#[netabase(..)]` accepts, for error messages.
pub(crate) const MODEL_OPTIONS: &str = "the options are `version = N`, `from = OlderType`, `validate = path::to::fn` and \
     `parent = Model`";

/// What removing a link's target does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDelete {
    Restrict,
    Cascade,
    SetNull,
}

/// A parsed `#[link(Target, on_delete = ..)]`.
#[derive(Clone)]
pub(crate) struct LinkAttr {
    pub(crate) attr: Attribute,
    /// The linked model: a model of the module (`User` or `self::User`) or, by its
    /// path, a model of another definition (`accounts::User`).
    pub(crate) target: Path,
    /// The policy and the tokens that named it.
    pub(crate) on_delete: Option<(OnDelete, Ident)>,
}

/// One declarative field rule.
#[derive(Clone)]
pub(crate) enum FieldRule {
    Len {
        min: Option<LitInt>,
        max: Option<LitInt>,
    },
    Range {
        min: Option<Box<Expr>>,
        max: Option<Box<Expr>>,
    },
    NonEmpty,
}

/// Parses a field attribute if it is a rule (`#[link(..)]`, `#[validate(..)]`); `false`
/// for any other attribute.
pub(crate) fn parse_field_attr(
    attr: &Attribute,
    links: &mut Vec<LinkAttr>,
    rules: &mut Vec<FieldRule>,
    cx: &mut Ctxt,
) -> bool {
    if attr.path().is_ident("link") {
        match parse_link(attr) {
            Ok(link) => links.push(link),
            Err(e) => cx.syn_error(e),
        }
        true
    } else if attr.path().is_ident("validate") {
        if let Err(e) = parse_validate(attr, rules) {
            cx.syn_error(e);
        }
        true
    } else {
        false
    }
}

const LINK_USAGE: &str = "write `#[link(User)]` or `#[link(User, on_delete = restrict | cascade | \
                          set_null)]`, or `#[link(other_module::User)]` for a model of another \
                          definition";

fn parse_link(attr: &Attribute) -> syn::Result<LinkAttr> {
    let list = attr.meta.require_list().map_err(|_| {
        syn::Error::new_spanned(
            attr,
            format!("`#[link]` needs the linked model; {LINK_USAGE}"),
        )
    })?;
    list.parse_args_with(|input: ParseStream<'_>| {
        let target: Path = input.parse().map_err(|e| {
            syn::Error::new(e.span(), format!("expected a model name; {LINK_USAGE}"))
        })?;
        let mut on_delete = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            if key != "on_delete" {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("unknown option `{key}` in `#[link(..)]`; {LINK_USAGE}"),
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Ident = input.parse()?;
            let policy = match value.to_string().as_str() {
                "restrict" => OnDelete::Restrict,
                "cascade" => OnDelete::Cascade,
                "set_null" => OnDelete::SetNull,
                other => {
                    return Err(syn::Error::new_spanned(
                        &value,
                        format!(
                            "unknown `on_delete` policy `{other}`; write `restrict`, `cascade` \
                             or `set_null`"
                        ),
                    ));
                }
            };
            if on_delete.replace((policy, value)).is_some() {
                return Err(syn::Error::new_spanned(&key, "`on_delete` is given twice"));
            }
        }
        Ok(LinkAttr {
            attr: attr.clone(),
            target,
            on_delete,
        })
    })
}

const VALIDATE_USAGE: &str = "the rules are `len(min = N, max = N)`, `range(min = X, max = X)` \
                              and `non_empty`";

fn parse_validate(attr: &Attribute, rules: &mut Vec<FieldRule>) -> syn::Result<()> {
    if attr.meta.require_list().is_err() {
        return Err(syn::Error::new_spanned(
            attr,
            format!(
                "`#[validate]` needs a rule, e.g. `#[validate(len(max = 200))]`; {VALIDATE_USAGE}"
            ),
        ));
    }
    attr.parse_nested_meta(|meta| {
        let name = meta.path.to_token_stream().to_string().replace(' ', "");
        match name.as_str() {
            "non_empty" => rules.push(FieldRule::NonEmpty),
            "len" => {
                let (mut min, mut max) = (None, None);
                meta.parse_nested_meta(|bound| {
                    let slot = bound_slot(&bound.path, &mut min, &mut max)?;
                    *slot = Some(bound.value()?.parse::<LitInt>()?);
                    Ok(())
                })?;
                rules.push(FieldRule::Len { min, max });
            }
            "range" => {
                let (mut min, mut max) = (None, None);
                meta.parse_nested_meta(|bound| {
                    let slot = bound_slot(&bound.path, &mut min, &mut max)?;
                    *slot = Some(Box::new(bound.value()?.parse::<Expr>()?));
                    Ok(())
                })?;
                rules.push(FieldRule::Range { min, max });
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    &meta.path,
                    format!("unknown validation rule `{name}`; {VALIDATE_USAGE}"),
                ));
            }
        }
        Ok(())
    })
}

fn bound_slot<'a, T>(
    path: &Path,
    min: &'a mut Option<T>,
    max: &'a mut Option<T>,
) -> syn::Result<&'a mut Option<T>> {
    let slot = if path.is_ident("min") {
        min
    } else if path.is_ident("max") {
        max
    } else {
        return Err(syn::Error::new_spanned(
            path,
            "unknown bound; write `min = ..` and/or `max = ..`",
        ));
    };
    if slot.is_some() {
        return Err(syn::Error::new_spanned(path, "this bound is given twice"));
    }
    Ok(slot)
}

/// Removes the rule attributes (`#[link(..)]`, `#[validate(..)]`) of a model's fields
/// once they are parsed.
pub(crate) fn strip_field_attrs(fields: &mut syn::Fields) {
    for field in fields.iter_mut() {
        field
            .attrs
            .retain(|a| !a.path().is_ident("link") && !a.path().is_ident("validate"));
    }
}

/// A plain struct of the module marked `#[netabase(version = N)]` (optionally with
/// `from = ..`): an older version of a model.
pub(crate) struct Older {
    pub(crate) ident: Ident,
    pub(crate) version: u16,
    pub(crate) from: Option<Path>,
}

/// Finds (and strips) every older-version struct of the module: a struct that does not
/// derive `NetabaseModel` and carries `#[netabase(version = N)]`.
pub(crate) fn parse_older(items: &mut [Item], cx: &mut Ctxt) -> Vec<Older> {
    let mut out = Vec::new();
    for item in items.iter_mut() {
        let Item::Struct(item) = item else { continue };
        if ast::derives_model(&item.attrs) {
            continue;
        }
        let Some(position) = item
            .attrs
            .iter()
            .position(|a| a.path().is_ident("netabase"))
        else {
            continue;
        };
        let attr = item.attrs.remove(position);
        let parsed = match ast::parse_netabase_attr(&attr) {
            Ok(parsed) => parsed,
            Err(e) => {
                cx.syn_error(e);
                continue;
            }
        };
        let ident = item.ident.clone();
        if let Some(definition) = &parsed.definition {
            cx.error_spanned_by(
                definition,
                format!(
                    "`{ident}` does not derive `NetabaseModel`, so it is an older version of a \
                     model: write `#[netabase(version = N)]` (with `from = ..` for the version \
                     before it), or add `#[derive(NetabaseModel)]` to make it a model"
                ),
            );
            continue;
        }
        let Some(version) = parsed.version else {
            cx.error_spanned_by(
                &attr,
                format!(
                    "`{ident}` does not derive `NetabaseModel`: as an older version of a model \
                     it needs `#[netabase(version = N)]`"
                ),
            );
            continue;
        };
        if let Some(path) = &parsed.rules.validate {
            cx.error_spanned_by(path, "an older version of a model has no validator");
        }
        if let Some(parent) = &parsed.rules.parent {
            cx.error_spanned_by(parent, "an older version of a model has no parent");
        }
        out.push(Older {
            ident,
            version,
            from: parsed.rules.from,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Checking

/// A checked link field.
pub(crate) struct Link {
    pub(crate) ident: Ident,
    pub(crate) name: String,
    pub(crate) variant: Ident,
    pub(crate) ty: Type,
    /// The linked model's name (the last segment of its path).
    pub(crate) target: Ident,
    /// The target as written (`User`, `self::User`, `accounts::User`), for errors.
    pub(crate) path: Path,
    /// The path of a linked model of another definition (`#[link(accounts::User)]`);
    /// `None` for a model of the module (`User`, `self::User`).
    pub(crate) cross: Option<Path>,
    pub(crate) on_delete: OnDelete,
    /// The target's primary key type (filled once every model is known).
    pub(crate) target_key: Option<Type>,
}

/// A checked field rule.
pub(crate) struct FieldRules {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Whether a `#[serde(..)]` attribute may change how the field is serialized: its
    /// type need not be `Serialize`, so range bounds are not described.
    pub(crate) serde_attr: bool,
    pub(crate) name: String,
    pub(crate) rules: Vec<FieldRule>,
}

/// The checked rules of a model.
#[derive(Default)]
pub(crate) struct CheckedRules {
    pub(crate) from: Option<Path>,
    pub(crate) validate: Option<Path>,
    pub(crate) parent: Option<Ident>,
    pub(crate) links: Vec<Link>,
    pub(crate) fields: Vec<FieldRules>,
}

/// Checks the rules of one field of model `model`.
pub(crate) fn check_field(
    model: &Ident,
    field: &ast::Field,
    name: &str,
    variant: Ident,
    out: &mut CheckedRules,
    cx: &mut Ctxt,
) {
    if !field.rules.is_empty() {
        out.fields.push(FieldRules {
            ident: field.ident.clone(),
            ty: field.ty.clone(),
            serde_attr: field.serde_attr,
            name: name.to_owned(),
            rules: field.rules.clone(),
        });
    }
    let Some((link, rest)) = field.links.split_first() else {
        return;
    };
    for extra in rest {
        cx.error_spanned_by(
            &extra.attr,
            format!("field `{name}` has more than one `#[link(..)]`; a field links to one model"),
        );
    }
    if let Some(primary) = field.primary.first() {
        cx.error_spanned_by(
            primary,
            format!("field `{name}` of `{model}` is both the primary key and a link; link from another field"),
        );
        return;
    }
    if let Some(secondary) = field.secondary.first() {
        cx.error_spanned_by(
            &secondary.attr,
            format!(
                "field `{name}` is a link, which is indexed already (its link index answers \
                 `referrers`); remove `#[secondary_key]`"
            ),
        );
        return;
    }
    let on_delete = match &link.on_delete {
        Some((OnDelete::SetNull, token)) if !is_option_or_vec(&field.ty) => {
            cx.error_spanned_by(
                token,
                format!(
                    "`on_delete = set_null` needs a field that can be empty: make `{name}` an \
                     `Option<..>` or a `Vec<..>`, or use `restrict` or `cascade`"
                ),
            );
            OnDelete::Restrict
        }
        Some((policy, _)) => *policy,
        None => OnDelete::Restrict,
    };
    // `User` and `self::User` name a model of this module (the module the models sit
    // in); any other path names a model of another definition.
    let local = local_target(&link.target);
    let cross = local.is_none().then(|| link.target.clone());
    if cross.is_some()
        && let Some((policy, token)) = &link.on_delete
        && *policy != OnDelete::Restrict
    {
        cx.error_spanned_by(
            token,
            format!(
                "a link to a model of another definition can only `restrict`: the other \
                 definition's store cannot remove or change the records of `{model}`, whose \
                 types it does not know; remove `on_delete = {token}` or link within one \
                 definition"
            ),
        );
    }
    let Some(target) = local
        .or_else(|| link.target.segments.last().map(|s| &s.ident))
        .cloned()
    else {
        return;
    };
    out.links.push(Link {
        ident: field.ident.clone(),
        name: name.to_owned(),
        variant,
        ty: field.ty.clone(),
        target,
        path: link.target.clone(),
        on_delete: if cross.is_some() {
            OnDelete::Restrict
        } else {
            on_delete
        },
        cross,
        target_key: None,
    });
}

/// The model a link names within its own definition: `User`, or `self::User` (the
/// models sit in the definition module, so `self::` is that module); `None` for a path
/// to a model of another definition (`super::accounts::User`, `crate::..`).
fn local_target(path: &Path) -> Option<&Ident> {
    if path.leading_colon.is_some() {
        return None;
    }
    let segments: Vec<&syn::PathSegment> = path.segments.iter().collect();
    match segments.as_slice() {
        [name] => Some(&name.ident),
        [module, name] if module.ident == "self" && module.arguments.is_none() => Some(&name.ident),
        _ => None,
    }
}

fn is_option_or_vec(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Option" || s.ident == "Vec"),
        _ => false,
    }
}

/// Checks the model-level rules of `model` (version `version`).
pub(crate) fn check_model_rules(
    model: &Ident,
    version: u16,
    rules: ModelRules,
    out: &mut CheckedRules,
    cx: &mut Ctxt,
) {
    if let Some(from) = &rules.from
        && version == 0
    {
        cx.error_spanned_by(
            from,
            format!(
                "`from` names the previous version of `{model}`, so `{model}` needs a version \
                 above it: add `version = N` (e.g. `version = 2` when `{}` is version 1)",
                from.to_token_stream()
            ),
        );
    }
    out.from = rules.from;
    out.validate = rules.validate;
    out.parent = rules.parent;
}

/// Checks the links of every model against the models of the definition: the target
/// exists; `parent = ..` names exactly one cascading link.
pub(crate) fn check_links(models: &mut [crate::valid::Model], cx: &mut Ctxt) {
    let keys: Vec<(Ident, Type)> = models
        .iter()
        .map(|m| (m.ident.clone(), m.primary.ty.clone()))
        .collect();
    for model in models.iter_mut() {
        let name = model.ident.clone();
        for link in &mut model.rules.links {
            if let Some(path) = &link.cross {
                // Checked by the compiler: the path must name a model (`CrossTarget`),
                // whose key type the field must hold.
                link.target_key = Some(syn::parse_quote_spanned! {path.span()=>
                    <#path as ::netabase_store::rules::CrossTarget>::Key
                });
                continue;
            }
            match keys.iter().find(|(ident, _)| *ident == link.target) {
                Some((_, ty)) => link.target_key = Some(ty.clone()),
                None if link.path.segments.len() > 1 => cx.error_spanned_by(
                    &link.path,
                    format!(
                        "`self::{target}` names no model of this definition: `self::` is the \
                         definition module, and it has no struct `{target}` that derives \
                         `NetabaseModel`; a model of another definition is named by its path \
                         from here (`#[link(super::other_module::{target})]`)",
                        target = link.target
                    ),
                ),
                None => cx.error_spanned_by(
                    &link.target,
                    format!(
                        "`{}` is not a model of this definition; a link names a struct of the \
                         same module that derives `NetabaseModel`, or a model of another \
                         definition by its path (`#[link(other_module::{})]`)",
                        link.target, link.target
                    ),
                ),
            }
        }
        if let Some(parent) = model.rules.parent.clone() {
            let cross_parent = model
                .rules
                .links
                .iter()
                .any(|l| l.cross.is_some() && l.target == parent);
            let to_parent: Vec<&mut Link> = model
                .rules
                .links
                .iter_mut()
                .filter(|l| l.cross.is_none() && l.target == parent)
                .collect();
            match to_parent.as_slice() {
                [_] => {
                    for link in to_parent {
                        // A parent owns its children: removing it removes them.
                        link.on_delete = OnDelete::Cascade;
                    }
                }
                [] if cross_parent => cx.error_spanned_by(
                    &parent,
                    format!(
                        "`parent = {parent}` names a model of another definition; a parent \
                             is a model of the same module (removing it cascades, which a link \
                             across definitions cannot)"
                    ),
                ),
                [] => cx.error_spanned_by(
                    &parent,
                    format!(
                        "`{name}` declares `parent = {parent}` but no field links to it; add a \
                         field `#[link({parent})] {}_id: <{parent}'s primary key type>`",
                        parent.to_string().to_lowercase()
                    ),
                ),
                _ => cx.error_spanned_by(
                    &parent,
                    format!(
                        "`{name}` has several links to `{parent}`; `parent = {parent}` needs \
                         exactly one"
                    ),
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generation

/// The items inside `impl NetabaseModelTrait<Def> for Model`.
pub(crate) fn model_trait_items(definition: &Ident, model: &crate::valid::Model) -> TokenStream {
    let rules = &model.rules;
    let ident = &model.ident;
    let version = model.version;
    let mut items = TokenStream::new();
    if let Some(from) = &rules.from {
        items.extend(quote! {
            fn decode_older(
                __version: u16,
                __body: &[u8],
            ) -> ::core::option::Option<
                ::core::result::Result<Self, ::netabase_store::__private::postcard::Error>,
            > {
                if __version >= #version {
                    return ::core::option::Option::None;
                }
                ::core::option::Option::map(
                    <#from as ::netabase_store::rules::OlderVersion>::decode_version(__version, __body),
                    |__r| ::core::result::Result::map(__r, <Self as ::core::convert::From<#from>>::from),
                )
            }
        });
    }
    if rules.validate.is_some() || !rules.fields.is_empty() {
        let name = ident.to_string();
        let name = &name;
        let field_checks = rules.fields.iter().flat_map(|f| {
            let field_ident = &f.ident;
            let field_name = &f.name;
            f.rules.iter().map(move |rule| {
                let check = match rule {
                    FieldRule::NonEmpty => quote! {
                        ::netabase_store::rules::check_len(
                            ::netabase_store::rules::ValidateLen::validate_len(&self.#field_ident),
                            ::core::option::Option::Some(1),
                            ::core::option::Option::None,
                        ).map(|_| ::std::string::String::from("must not be empty"))
                    },
                    FieldRule::Len { min, max } => {
                        let min = opt(min.as_ref().map(|l| quote!(#l)));
                        let max = opt(max.as_ref().map(|l| quote!(#l)));
                        quote! {
                            ::netabase_store::rules::check_len(
                                ::netabase_store::rules::ValidateLen::validate_len(&self.#field_ident),
                                #min,
                                #max,
                            )
                        }
                    }
                    FieldRule::Range { min, max } => {
                        let min = opt(min.as_ref().map(|e| quote!(#e)));
                        let max = opt(max.as_ref().map(|e| quote!(#e)));
                        quote! {
                            ::netabase_store::rules::check_range(&self.#field_ident, #min, #max)
                        }
                    }
                };
                quote! {
                    if let ::core::option::Option::Some(__reason) = #check {
                        return ::core::result::Result::Err(::netabase_store::NetabaseError::invalid(
                            #name,
                            ::core::option::Option::Some(#field_name),
                            __reason,
                        ));
                    }
                }
            })
        });
        let model_check = rules.validate.as_ref().map(|path| {
            quote! {
                if let ::core::result::Result::Err(__reason) = #path(self) {
                    return ::core::result::Result::Err(::netabase_store::NetabaseError::invalid(
                        #name,
                        ::core::option::Option::None,
                        ::std::string::ToString::to_string(&__reason),
                    ));
                }
            }
        });
        let custom = rules.validate.is_some();
        let rule_infos = rules.fields.iter().flat_map(|f| {
            let field_name = &f.name;
            let ty = &f.ty;
            let serde_attr = f.serde_attr;
            f.rules.iter().map(move |rule| {
                let info = match rule {
                    FieldRule::NonEmpty => quote!(::netabase_store::rules::RuleInfo::NonEmpty),
                    FieldRule::Len { min, max } => {
                        let min = opt(min.as_ref().map(|l| quote!(#l)));
                        let max = opt(max.as_ref().map(|l| quote!(#l)));
                        quote!(::netabase_store::rules::RuleInfo::Len { min: #min, max: #max })
                    }
                    FieldRule::Range { min, max } => {
                        // Each bound as a value of the field's type, encoded like the
                        // field: the stored shape decodes it with the field's shape.
                        let bound = |e: &Expr| {
                            quote! {
                                || {
                                    let __bound: #ty = #e;
                                    ::netabase_store::rules::encode_bound(&__bound)
                                }
                            }
                        };
                        // A field serialized its own way (`#[serde(with = ..)]`) is not
                        // described, and its type need not be `Serialize`.
                        let (min, max) = if serde_attr {
                            (None, None)
                        } else {
                            (min.as_deref(), max.as_deref())
                        };
                        let min = opt(min.map(bound));
                        let max = opt(max.map(bound));
                        quote!(::netabase_store::rules::RuleInfo::Range { min: #min, max: #max })
                    }
                };
                quote! {
                    ::netabase_store::rules::FieldRuleInfo { field: #field_name, rule: #info }
                }
            })
        });
        items.extend(quote! {
            const VALIDATES: bool = true;
            const CUSTOM_VALIDATOR: bool = #custom;
            const FIELD_RULES: &'static [::netabase_store::rules::FieldRuleInfo] =
                &[#(#rule_infos,)*];

            fn validate(&self) -> ::netabase_store::Result<()> {
                #(#field_checks)*
                #model_check
                ::core::result::Result::Ok(())
            }
        });
    }
    if !rules.links.is_empty() {
        let table = format!("{definition}/{ident}");
        let infos = rules.links.iter().map(|link| {
            let field = &link.name;
            let link_table = format!("{table}/{field}");
            let (target, target_table) = match &link.cross {
                Some(path) => (
                    quote!(<#path as ::netabase_store::rules::CrossTarget>::NAME),
                    quote!(<#path as ::netabase_store::rules::CrossTarget>::TABLE),
                ),
                None => {
                    let target = link.target.to_string();
                    let table = format!("{definition}/{target}");
                    (quote!(#target), quote!(#table))
                }
            };
            let on_delete = match link.on_delete {
                OnDelete::Restrict => quote!(Restrict),
                OnDelete::Cascade => quote!(Cascade),
                OnDelete::SetNull => quote!(SetNull),
            };
            let key = link_key_type(link);
            quote! {
                ::netabase_store::rules::LinkInfo {
                    field: #field,
                    table: #link_table,
                    target: #target,
                    target_table: #target_table,
                    on_delete: ::netabase_store::rules::OnDelete::#on_delete,
                    show_target_key: ::netabase_store::rules::show_key::<#key>,
                }
            }
        });
        // Each obligation `<FieldType as LinkValue<TargetKey>>` is written with the
        // field's own type tokens: a field of the wrong type is reported at the field,
        // with the message of `LinkValue`.
        let key_arms = rules.links.iter().enumerate().map(|(i, link)| {
            let field_ident = &link.ident;
            let ty = &link.ty;
            let key = link_key_type(link);
            quote!(#i => <#ty as ::netabase_store::rules::LinkValue<#key>>::link_keys(&self.#field_ident, __out),)
        });
        let key_at_arms = rules.links.iter().enumerate().map(|(i, link)| {
            let field_ident = &link.ident;
            let ty = &link.ty;
            let key = link_key_type(link);
            quote!(#i => <#ty as ::netabase_store::rules::LinkValue<#key>>::link_key(&self.#field_ident, __at, __out),)
        });
        let unlink_arms = rules.links.iter().enumerate().map(|(i, link)| {
            let field_ident = &link.ident;
            let ty = &link.ty;
            let key = link_key_type(link);
            quote!(#i => <#ty as ::netabase_store::rules::LinkValue<#key>>::unlink(&mut self.#field_ident, __target),)
        });
        items.extend(quote! {
            const LINKS: &'static [::netabase_store::rules::LinkInfo] = &[#(#infos,)*];

            fn link_keys(&self, __link: usize, __out: &mut ::std::vec::Vec<::std::vec::Vec<u8>>) {
                match __link {
                    #(#key_arms)*
                    _ => {}
                }
            }

            fn link_key(
                &self,
                __link: usize,
                __at: usize,
                __out: &mut ::std::vec::Vec<u8>,
            ) -> bool {
                match __link {
                    #(#key_at_arms)*
                    _ => false,
                }
            }

            fn unlink(&mut self, __link: usize, __target: &[u8]) -> bool {
                match __link {
                    #(#unlink_arms)*
                    _ => false,
                }
            }
        });
    }
    items
}

fn link_key_type(link: &Link) -> TokenStream {
    match &link.target_key {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    }
}

fn opt(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// The items next to a model: its link types, the check that `from` is older, and the
/// `Child` impl of a model with a parent.
pub(crate) fn model_items(definition: &Ident, model: &crate::valid::Model) -> TokenStream {
    let ident = &model.ident;
    let vis = &model.vis;
    let mut out = TokenStream::new();
    for (index, link) in model.rules.links.iter().enumerate() {
        let link_type = link_type_ident(ident, link);
        let target = &link.target;
        let (doc, link_impl) = match &link.cross {
            None => (
                format!(
                    "The link `{ident}.{}` to [`{target}`], for `follow`.",
                    link.name
                ),
                quote! {
                    #[automatically_derived]
                    impl ::netabase_store::rules::Link<#definition> for #link_type {
                        type From = #ident;
                        type To = #target;
                        const INDEX: usize = #index;
                    }
                },
            ),
            Some(path) => {
                let written = path.to_token_stream().to_string().replace(' ', "");
                // The macro cannot tell where a path leads; the compiler can: a path
                // to a model of this very definition is a link within it, written
                // `Target` or `self::Target`.
                let definition_name = definition.to_string();
                let same_definition = format!(
                    "`{written}` is a model of this definition (`{definition}`): write \
                     `#[link({target})]` or `#[link(self::{target})]`; a longer path names a \
                     model of another definition"
                );
                let mut link_impl = quote! {
                    #[automatically_derived]
                    impl ::netabase_store::rules::CrossLink<#definition> for #link_type {
                        type From = #ident;
                        type To = #path;
                        const INDEX: usize = #index;
                    }
                };
                link_impl.extend(quote_spanned! {path.span()=>
                    const _: () = ::core::assert!(
                        !::netabase_store::rules::is_table_of(
                            <#path as ::netabase_store::rules::CrossTarget>::TABLE,
                            #definition_name,
                        ),
                        #same_definition
                    );
                });
                (
                    format!(
                        "The link `{ident}.{}` to `{written}` of another definition, for \
                         `follow_across`.",
                        link.name,
                    ),
                    link_impl,
                )
            }
        };
        out.extend(quote! {
            #[doc = #doc]
            #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
            #vis struct #link_type;

            #link_impl
        });
    }
    let name = ident.to_string();
    let key = &model.primary.ty;
    out.extend(quote! {
        #[automatically_derived]
        impl ::netabase_store::rules::CrossTarget for #ident {
            type Definition = #definition;
            type Key = #key;
            const NAME: &'static str = #name;
            const TABLE: &'static str =
                <#ident as ::netabase_store::schema::NetabaseModelTrait<#definition>>::INFO.table;
        }
    });
    if let Some(from) = &model.rules.from {
        let version = model.version;
        let message = format!(
            "`{}` must be an older version than `{ident}` (version {version})",
            from.to_token_stream()
        );
        out.extend(quote_spanned! {from.span()=>
            const _: () = ::core::assert!(
                <#from as ::netabase_store::rules::OlderVersion>::VERSION < #version,
                #message
            );
        });
    }
    if let Some(parent) = &model.rules.parent
        && let Some(link) = model
            .rules
            .links
            .iter()
            .find(|l| l.cross.is_none() && l.target == *parent)
    {
        let link_type = link_type_ident(ident, link);
        out.extend(quote! {
            #[automatically_derived]
            impl ::netabase_store::rules::Child<#definition> for #ident {
                type Parent = #parent;
                type ParentLink = #link_type;
            }
        });
    }
    out
}

fn link_type_ident(model: &Ident, link: &Link) -> Ident {
    format_ident!("{}{}Link", model, link.variant)
}

/// The `OlderVersion` impl of an older-version struct.
pub(crate) fn older_items(older: &Older) -> TokenStream {
    let ident = &older.ident;
    let version = older.version;
    let chain = match &older.from {
        Some(from) => {
            let message = format!(
                "`{}` must be an older version than `{ident}` (version {version})",
                from.to_token_stream()
            );
            quote! {
                const _: () = ::core::assert!(
                    <#from as ::netabase_store::rules::OlderVersion>::VERSION < #version,
                    #message
                );
                ::core::option::Option::map(
                    <#from as ::netabase_store::rules::OlderVersion>::decode_version(__version, __body),
                    |__r| ::core::result::Result::map(__r, <Self as ::core::convert::From<#from>>::from),
                )
            }
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #[automatically_derived]
        impl ::netabase_store::rules::OlderVersion for #ident {
            const VERSION: u16 = #version;

            fn decode_version(
                __version: u16,
                __body: &[u8],
            ) -> ::core::option::Option<
                ::core::result::Result<Self, ::netabase_store::__private::postcard::Error>,
            > {
                if __version == #version {
                    return ::core::option::Option::Some(
                        ::netabase_store::__private::postcard::from_bytes(__body),
                    );
                }
                if __version > #version {
                    return ::core::option::Option::None;
                }
                #chain
            }
        }
    }
}

/// The `visit_models` method of the definition trait.
pub(crate) fn visit_models(idents: &[&Ident]) -> TokenStream {
    quote! {
        fn visit_models<__V>(__visitor: &mut __V) -> ::netabase_store::Result<()>
        where
            for<'__v> &'__v mut __V: ::netabase_store::schema::ModelVisitor<
                Self,
                Output = ::netabase_store::Result<()>,
            >,
        {
            #(::netabase_store::schema::ModelVisitor::<Self>::visit::<#idents>(&mut *__visitor)?;)*
            ::core::result::Result::Ok(())
        }
    }
}
