//! The structs and enums of a definition module besides its models: described in the
//! definition's stored shape (`NetabaseDefinitionTrait::TYPES`), so that a tool without
//! the Rust types reads fields whose types are nested structs and enums.
//!
//! Only what the module declares is described: a type is known here by its tokens, and
//! a type declared elsewhere is out of the macro's sight (the stored shape says so by
//! name when a field uses it).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Fields, Item};

/// Whether `attrs` derive `Serialize` (the types that can be fields of a model).
fn derives_serialize(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("derive")
            && attr
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
                )
                .is_ok_and(|paths| {
                    paths
                        .iter()
                        .any(|p| p.segments.last().is_some_and(|s| s.ident == "Serialize"))
                })
    })
}

fn has_serde(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("serde"))
}

/// The fields of a struct or a variant: its kind and a `FieldShape` per field.
fn fields(fields: &Fields) -> (TokenStream, Vec<TokenStream>) {
    let kind = match fields {
        Fields::Unit => quote!(Unit),
        Fields::Unnamed(f) if f.unnamed.len() == 1 => quote!(Newtype),
        Fields::Unnamed(_) => quote!(Tuple),
        Fields::Named(_) => quote!(Named),
    };
    let shapes = fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let name = field
                .ident
                .as_ref()
                .map_or_else(|| i.to_string(), crate::valid::unraw);
            let ty = &field.ty;
            let ty = quote!(#ty).to_string().replace(' ', "");
            let described = !has_serde(&field.attrs);
            quote! {
                ::netabase_store::schema::FieldShape {
                    name: #name,
                    ty: #ty,
                    described: #described,
                }
            }
        })
        .collect();
    (kind, shapes)
}

fn variant(name: String, f: &Fields) -> TokenStream {
    let (kind, shapes) = fields(f);
    quote! {
        ::netabase_store::schema::VariantShape {
            name: #name,
            kind: ::netabase_store::schema::FieldsKind::#kind,
            fields: &[#(#shapes,)*],
        }
    }
}

/// A `TypeDecl` for every struct and enum of `items` that derives `Serialize` and is
/// neither a model nor an older version of one (both carry `#[netabase(..)]` or derive
/// `NetabaseModel`). Read before the module's items are rewritten.
pub(crate) fn type_decls(items: &[Item]) -> Vec<TokenStream> {
    items
        .iter()
        .filter_map(|item| {
            let (ident, attrs, generics, is_enum, variants) = match item {
                Item::Struct(s) => (
                    &s.ident,
                    &s.attrs,
                    &s.generics,
                    false,
                    vec![variant(s.ident.to_string(), &s.fields)],
                ),
                Item::Enum(e) => (
                    &e.ident,
                    &e.attrs,
                    &e.generics,
                    true,
                    e.variants
                        .iter()
                        .map(|v| variant(v.ident.to_string(), &v.fields))
                        .collect(),
                ),
                _ => return None,
            };
            if crate::ast::derives_model(attrs)
                || attrs.iter().any(|a| a.path().is_ident("netabase"))
                || !derives_serialize(attrs)
            {
                return None;
            }
            let variant_serde = match item {
                Item::Enum(e) => e.variants.iter().any(|v| has_serde(&v.attrs)),
                _ => false,
            };
            let described = !has_serde(attrs) && generics.params.is_empty() && !variant_serde;
            let name = ident.to_string();
            Some(quote! {
                ::netabase_store::schema::TypeDecl {
                    name: #name,
                    is_enum: #is_enum,
                    described: #described,
                    variants: &[#(#variants,)*],
                }
            })
        })
        .collect()
}
