//! Checks the parsed module and turns it into the plan that `expand` generates from.

use proc_macro2::Span;
use quote::{ToTokens, format_ident};
use syn::{Ident, Type, Visibility};

use crate::ast::{self, DefinitionArgs, Shape};
use crate::ctxt::Ctxt;

/// A checked definition: everything `expand` needs.
pub(crate) struct Definition {
    /// The definition enum, e.g. `BlogDefinition`.
    pub(crate) name: Ident,
    /// The keys enum, e.g. `BlogKeys`.
    pub(crate) keys: Ident,
    /// The discriminant enum, e.g. `BlogDefinitionDiscriminant`.
    pub(crate) discriminant: Ident,
    /// The visibility of the definition, keys and discriminant enums: the models' own
    /// when they all share one, `pub` otherwise.
    pub(crate) vis: Visibility,
    /// The models, in declaration order.
    pub(crate) models: Vec<Model>,
}

/// A checked model.
pub(crate) struct Model {
    /// The struct's name.
    pub(crate) ident: Ident,
    /// The struct's visibility.
    pub(crate) vis: Visibility,
    /// The model version (default 0).
    pub(crate) version: u16,
    /// The primary key field.
    pub(crate) primary: KeyField,
    /// The secondary key fields, in declaration order.
    pub(crate) secondary: Vec<SecondaryField>,
    /// Versions, validators and links.
    pub(crate) rules: crate::rules::CheckedRules,
    /// Every field, in declaration order, for the self-describing shape.
    pub(crate) fields: Vec<DataField>,
}

/// A field of a model as its stored shape describes it.
pub(crate) struct DataField {
    /// The field's name.
    pub(crate) name: String,
    /// The field's type.
    pub(crate) ty: Type,
    /// Whether a `#[serde(..)]` attribute may change its serialization.
    pub(crate) serde_attr: bool,
}

/// The primary key field of a model.
pub(crate) struct KeyField {
    /// The field's name.
    pub(crate) ident: Ident,
    /// The field's type.
    pub(crate) ty: Type,
}

/// A secondary key field of a model.
pub(crate) struct SecondaryField {
    /// The field's name.
    pub(crate) ident: Ident,
    /// The field's name as a string, without `r#`.
    pub(crate) name: String,
    /// The field's name in UpperCamelCase: the variant of the secondary keys enum.
    pub(crate) variant: Ident,
    /// The field's type.
    pub(crate) ty: Type,
    /// Whether the key is unique.
    pub(crate) unique: bool,
}

/// Checks `models` against each other and against the module's arguments; every problem
/// is recorded in `cx`.
pub(crate) fn check(
    args: &DefinitionArgs,
    module: &Ident,
    models: Vec<ast::Model>,
    cx: &mut Ctxt,
) -> Definition {
    if models.is_empty() {
        cx.error_spanned_by(
            module,
            format!(
                "module `{module}` contains no model; a definition needs at least one struct with \
                 `#[derive(NetabaseModel)]` and a `#[primary_key]` field"
            ),
        );
    }
    if models.len() > usize::from(u16::MAX) {
        cx.error_spanned_by(
            module,
            format!(
                "module `{module}` has {} models; a definition holds at most 65535",
                models.len()
            ),
        );
    }
    let mut checked: Vec<Model> = models
        .into_iter()
        .filter_map(|model| check_model(args, model, cx))
        .collect();
    crate::rules::check_links(&mut checked, cx);
    let vis = match checked.split_first() {
        Some((first, rest))
            if rest.iter().all(|m| {
                m.vis.to_token_stream().to_string() == first.vis.to_token_stream().to_string()
            }) =>
        {
            first.vis.clone()
        }
        _ => syn::parse_quote!(pub),
    };
    Definition {
        name: args.definition.clone(),
        keys: args.keys.clone(),
        discriminant: format_ident!("{}Discriminant", args.definition),
        vis,
        models: checked,
    }
}

fn check_model(args: &DefinitionArgs, model: ast::Model, cx: &mut Ctxt) -> Option<Model> {
    let name = &model.ident;
    let definition = &args.definition;
    let mut version = 0;
    let mut model_rules = crate::rules::ModelRules::default();
    let mut rules = crate::rules::CheckedRules::default();
    for (i, attr) in model.netabase_attrs.iter().enumerate() {
        if i > 0 {
            cx.error_spanned_by(
                &attr.attr,
                format!(
                    "model `{name}` has more than one `#[netabase(..)]`; merge them into one, \
                     e.g. `#[netabase({definition}, version = 2)]`"
                ),
            );
            continue;
        }
        if let Some(named) = &attr.definition
            && named != definition
        {
            cx.error_spanned_by(
                named,
                format!(
                    "model `{name}` names the definition `{named}`, but this module defines \
                         `{definition}`; a model belongs to the definition of the module it is \
                         declared in"
                ),
            );
        }
        if let Some(v) = attr.version {
            version = v;
        }
        model_rules = attr.rules.clone();
    }
    crate::rules::check_model_rules(name, version, model_rules, &mut rules, cx);
    if !model.generics.params.is_empty() || model.generics.where_clause.is_some() {
        cx.error_spanned_by(
            ast::generics_tokens(&model.generics),
            format!(
                "model `{name}` has generic parameters; a model must be a concrete type, since \
                 its definition stores every model in one enum"
            ),
        );
    }
    let fields = match model.shape {
        Shape::Named(fields) => fields,
        Shape::Tuple(fields) => {
            cx.error_spanned_by(
                fields,
                format!(
                    "model `{name}` is a tuple struct; `NetabaseModel` needs named fields, one of \
                     them marked `#[primary_key]`"
                ),
            );
            return None;
        }
        Shape::Unit => {
            cx.error_spanned_by(
                name,
                format!(
                    "model `{name}` is a unit struct; `NetabaseModel` needs named fields, one of \
                     them marked `#[primary_key]`"
                ),
            );
            return None;
        }
        Shape::NotStruct(keyword, what) => {
            cx.error_spanned_by(
                keyword,
                format!(
                    "`{name}` is {what}; `NetabaseModel` can only be derived for a struct with \
                     named fields"
                ),
            );
            return None;
        }
    };

    let mut primary: Option<KeyField> = None;
    let mut secondary: Vec<SecondaryField> = Vec::new();
    let data_fields = fields
        .iter()
        .map(|field| DataField {
            name: unraw(&field.ident),
            ty: field.ty.clone(),
            serde_attr: field.serde_attr,
        })
        .collect();
    for field in fields {
        let field_name = unraw(&field.ident);
        let field_variant = Ident::new(&upper_camel(&field_name), Span::call_site());
        crate::rules::check_field(name, &field, &field_name, field_variant, &mut rules, cx);
        for attr in &field.primary {
            match &primary {
                None => {
                    primary = Some(KeyField {
                        ident: field.ident.clone(),
                        ty: field.ty.clone(),
                    });
                }
                Some(first) if first.ident == field.ident => cx.error_spanned_by(
                    attr,
                    format!("field `{field_name}` is marked `#[primary_key]` twice"),
                ),
                Some(first) => cx.error_spanned_by(
                    attr,
                    format!(
                        "model `{name}` has a second `#[primary_key]` (on `{field_name}`, after \
                         `{}`); mark exactly one field with #[primary_key], and use a tuple type \
                         for a composite key, e.g. `#[primary_key] id: (u32, String)`",
                        unraw(&first.ident)
                    ),
                ),
            }
        }
        let Some((first, rest)) = field.secondary.split_first() else {
            continue;
        };
        for extra in rest {
            cx.error_spanned_by(
                &extra.attr,
                format!(
                    "field `{field_name}` is marked `#[secondary_key]` more than once; keep one \
                     (with `unique` if the key is unique)"
                ),
            );
        }
        if !field.primary.is_empty() {
            cx.error_spanned_by(
                &first.attr,
                format!(
                    "field `{field_name}` is both the primary key and a secondary key; the primary \
                     key is already indexed, remove `#[secondary_key]`"
                ),
            );
            continue;
        }
        let variant = Ident::new(&upper_camel(&field_name), Span::call_site());
        if let Some(clash) = secondary.iter().find(|s| s.variant == variant) {
            cx.error_spanned_by(
                &field.ident,
                format!(
                    "secondary keys `{}` and `{field_name}` of `{name}` would both generate \
                     `{name}{variant}SecondaryKey`; rename one of the fields",
                    clash.name
                ),
            );
            continue;
        }
        secondary.push(SecondaryField {
            ident: field.ident.clone(),
            name: field_name,
            variant,
            ty: field.ty.clone(),
            unique: first.unique,
        });
    }
    let Some(primary) = primary else {
        cx.error_spanned_by(
            name,
            format!(
                "model `{name}` has no #[primary_key] field; mark exactly one field with \
                 #[primary_key]"
            ),
        );
        return None;
    };
    Some(Model {
        ident: model.ident,
        vis: model.vis,
        version,
        primary,
        secondary,
        rules,
        fields: data_fields,
    })
}

/// The name of an identifier without its `r#` prefix.
pub(crate) fn unraw(ident: &Ident) -> String {
    let name = ident.to_token_stream().to_string();
    match name.strip_prefix("r#") {
        Some(stripped) => stripped.to_owned(),
        None => name,
    }
}

/// `author_id` -> `AuthorId`, `email` -> `Email`, `_x` -> `X`.
fn upper_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("Field");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::upper_camel;

    #[test]
    fn upper_camel_case() {
        assert_eq!(upper_camel("author_id"), "AuthorId");
        assert_eq!(upper_camel("email"), "Email");
        assert_eq!(upper_camel("_private"), "Private");
        assert_eq!(upper_camel("a__b2"), "AB2");
        assert_eq!(upper_camel("already_Camel"), "AlreadyCamel");
    }
}
