//! Code generation: the key types and trait impls of every model, and the definition,
//! keys and discriminant enums of the module.
//!
//! Every path is absolute through `::netabase_store`, so a user needs only
//! `netabase_store` (and `serde` for their own derives). Every obligation on a key
//! field's type is written as `<FieldType as Trait>` with the user's own type tokens, so
//! an unsupported key type is reported once, at the field's type, with the message of
//! the key trait's `#[diagnostic::on_unimplemented]`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Item, ItemMod};

use crate::ast::{self, DefinitionArgs};
use crate::ctxt::Ctxt;
use crate::valid::{self, Definition, Model};

/// Expands `#[netabase_definition_module(..)]` on `module`.
pub(crate) fn definition_module(args: DefinitionArgs, mut module: ItemMod) -> TokenStream {
    let mut cx = Ctxt::default();
    let module_ident = module.ident.clone();
    let Some((_, items)) = module.content.as_mut() else {
        let mod_token = module.mod_token;
        let error = syn::Error::new_spanned(
            quote!(#mod_token #module_ident),
            format!(
                "`#[netabase_definition_module(..)]` needs the models written inside the module: \
                 write `mod {module_ident} {{ .. }}` instead of `mod {module_ident};`"
            ),
        )
        .to_compile_error();
        return quote!(#error #module);
    };
    let types = crate::types::type_decls(items);
    let older = crate::rules::parse_older(items, &mut cx);
    let models = ast::parse_models(items, &mut cx);
    let definition = valid::check(&args, &module_ident, models, &mut cx);
    if !cx.is_ok() {
        let errors = cx.into_compile_errors();
        return quote!(#errors #module);
    }
    items.push(Item::Verbatim(generate(&definition, &types)));
    items.extend(
        older
            .iter()
            .map(|o| Item::Verbatim(crate::rules::older_items(o))),
    );
    quote!(#module)
}

/// Expands `#[derive(NetabaseModel)]`: nothing when the module attribute has handled the
/// struct, an error otherwise.
pub(crate) fn derive_outside_module(input: &DeriveInput) -> TokenStream {
    if ast::has_marker(&input.attrs) {
        return TokenStream::new();
    }
    let name = &input.ident;
    syn::Error::new_spanned(
        name,
        format!(
            "`NetabaseModel` must be used inside a `#[netabase_definition_module(..)]` module; \
             move `{name}` into the module of its definition"
        ),
    )
    .to_compile_error()
}

/// A key field's type as written, without spaces (`(u32, String)` -> `(u32,String)`), for
/// the schema descriptor stored in the database.
fn type_name(ty: &syn::Type) -> String {
    quote!(#ty).to_string().replace(' ', "")
}

fn doc(text: String) -> TokenStream {
    quote!(#[doc = #text])
}

const SERDE_CRATE: &str = "::netabase_store::__private::serde";

fn serde_derives() -> TokenStream {
    quote! {
        #[derive(
            ::netabase_store::__private::serde::Serialize,
            ::netabase_store::__private::serde::Deserialize
        )]
        #[serde(crate = #SERDE_CRATE)]
    }
}

fn generate(def: &Definition, types: &[TokenStream]) -> TokenStream {
    let models = def.models.iter().map(|model| generate_model(def, model));
    let module_items = generate_definition(def, types);
    quote! {
        #(#models)*
        #module_items
    }
}

struct Names {
    primary_key: syn::Ident,
    secondary_keys: syn::Ident,
    key: syn::Ident,
}

fn names(model: &Model) -> Names {
    let ident = &model.ident;
    Names {
        primary_key: format_ident!("{}PrimaryKey", ident),
        secondary_keys: format_ident!("{}SecondaryKeys", ident),
        key: format_ident!("{}Key", ident),
    }
}

fn secondary_key_ident(model: &Model, field: &valid::SecondaryField) -> syn::Ident {
    format_ident!("{}{}SecondaryKey", model.ident, field.variant)
}

fn generate_model(def: &Definition, model: &Model) -> TokenStream {
    let primary = generate_primary_key(model);
    let secondary = generate_secondary_keys(def, model);
    let keys = generate_key_enum(model);
    let model_impl = generate_model_impl(def, model);
    let rule_items = crate::rules::model_items(&def.name, model);
    quote! {
        #primary
        #secondary
        #keys
        #model_impl
        #rule_items
    }
}

/// `KeyCodec` for a key newtype `key(pub ty)`: the newtype encodes exactly as its field,
/// so the newtype and the raw value sort and store the same way.
fn newtype_key_codec(key: &syn::Ident, ty: &syn::Type) -> TokenStream {
    quote! {
        #[automatically_derived]
        impl ::netabase_store::codec::key::KeyCodec for #key {
            #[inline]
            fn encode_key(&self, __out: &mut ::std::vec::Vec<u8>) {
                <#ty as ::netabase_store::codec::key::KeyCodec>::encode_key(&self.0, __out)
            }
            #[inline]
            fn decode_key(
                __input: &mut &[u8],
            ) -> ::core::result::Result<Self, ::netabase_store::codec::key::KeyDecodeError>
            {
                ::core::result::Result::map(
                    <#ty as ::netabase_store::codec::key::KeyCodec>::decode_key(__input),
                    #key,
                )
            }
        }
    }
}

fn generate_primary_key(model: &Model) -> TokenStream {
    let vis = &model.vis;
    let ident = &model.ident;
    let Names { primary_key, .. } = names(model);
    let ty = &model.primary.ty;
    let field = valid::unraw(&model.primary.ident);
    let serde = serde_derives();
    let struct_doc = doc(format!(
        "The primary key of [`{ident}`] (its field `{field}`), as stored in the order of its \
         key encoding."
    ));
    // One generic helper carries the `PrimaryKeyCodec` bound, so that a type that is not a
    // primary key type is reported once, at the field's type.
    let assert = quote_spanned! {ty.span()=>
        let _ = __netabase_primary_key_cmp::<#ty>;
    };
    let primary_codec = newtype_key_codec(&primary_key, ty);
    quote! {
        #struct_doc
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #serde
        #vis struct #primary_key(
            #[doc = "The key value."]
            pub #ty,
        );

        const _: () = {
            #[inline]
            fn __netabase_primary_key_cmp<T: ::netabase_store::codec::key::PrimaryKeyCodec>(
                a: &T,
                b: &T,
            ) -> ::core::cmp::Ordering {
                ::core::cmp::Ord::cmp(a, b)
            }
            #assert

            #[automatically_derived]
            impl ::core::cmp::PartialEq for #primary_key {
                #[inline]
                fn eq(&self, __other: &Self) -> bool {
                    ::core::cmp::Ordering::is_eq(
                        __netabase_primary_key_cmp::<#ty>(&self.0, &__other.0),
                    )
                }
            }

            #[automatically_derived]
            impl ::core::cmp::Eq for #primary_key {}

            #[automatically_derived]
            impl ::core::cmp::PartialOrd for #primary_key {
                #[inline]
                fn partial_cmp(
                    &self,
                    __other: &Self,
                ) -> ::core::option::Option<::core::cmp::Ordering> {
                    ::core::option::Option::Some(::core::cmp::Ord::cmp(self, __other))
                }
            }

            #[automatically_derived]
            impl ::core::cmp::Ord for #primary_key {
                #[inline]
                fn cmp(&self, __other: &Self) -> ::core::cmp::Ordering {
                    __netabase_primary_key_cmp::<#ty>(&self.0, &__other.0)
                }
            }

            #[automatically_derived]
            impl ::core::hash::Hash for #primary_key {
                fn hash<__H: ::core::hash::Hasher>(&self, __state: &mut __H) {
                    // Equal keys have equal encodings (the `PrimaryKeyCodec` contract).
                    ::core::hash::Hash::hash(
                        ::netabase_store::codec::key::KeyCodec::to_key_bytes(self).as_slice(),
                        __state,
                    )
                }
            }

            #primary_codec

            #[automatically_derived]
            impl ::netabase_store::codec::key::PrimaryKeyCodec for #primary_key {}

            #[automatically_derived]
            impl ::core::convert::From<#ty> for #primary_key {
                #[inline]
                fn from(__value: #ty) -> Self {
                    #primary_key(__value)
                }
            }
        };
    }
}

fn generate_secondary_keys(def: &Definition, model: &Model) -> TokenStream {
    let vis = &model.vis;
    let ident = &model.ident;
    let definition = &def.name;
    let Names { secondary_keys, .. } = names(model);
    let serde = serde_derives();

    let newtypes = model.secondary.iter().enumerate().map(|(index, field)| {
        let key = secondary_key_ident(model, field);
        let ty = &field.ty;
        let variant = &field.variant;
        let index = Literal::usize_unsuffixed(index);
        let struct_doc = doc(format!(
            "The secondary key `{}` of [`{ident}`]{}. Compared in the order of its key \
             encoding, which is the order of the index.",
            field.name,
            if field.unique { " (unique)" } else { "" },
        ));
        let assert = quote_spanned! {ty.span()=>
            let _ = <#ty as ::netabase_store::codec::key::KeyCodec>::encode_key;
        };
        let key_codec = newtype_key_codec(&key, ty);
        let unique_impl = if field.unique {
            quote! {
                #[automatically_derived]
                impl ::netabase_store::schema::UniqueKeyField<#definition, #ident> for #key {}
            }
        } else {
            TokenStream::new()
        };
        quote! {
            #struct_doc
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            #serde
            #vis struct #key(
                #[doc = "The key value."]
                pub #ty,
            );

            const _: () = {
                #assert

                #key_codec

                #[automatically_derived]
                impl ::core::cmp::PartialEq for #key {
                    fn eq(&self, __other: &Self) -> bool {
                        ::netabase_store::codec::key::KeyCodec::to_key_bytes(self)
                            == ::netabase_store::codec::key::KeyCodec::to_key_bytes(__other)
                    }
                }

                #[automatically_derived]
                impl ::core::cmp::PartialOrd for #key {
                    fn partial_cmp(
                        &self,
                        __other: &Self,
                    ) -> ::core::option::Option<::core::cmp::Ordering> {
                        ::core::option::Option::Some(::core::cmp::Ord::cmp(
                            &::netabase_store::codec::key::KeyCodec::to_key_bytes(self),
                            &::netabase_store::codec::key::KeyCodec::to_key_bytes(__other),
                        ))
                    }
                }

                #[automatically_derived]
                impl ::netabase_store::schema::SecondaryKeyField<#definition, #ident> for #key {
                    const INDEX: usize = #index;
                }

                #unique_impl

                #[automatically_derived]
                impl ::core::convert::From<#ty> for #key {
                    #[inline]
                    fn from(__value: #ty) -> Self {
                        #key(__value)
                    }
                }

                #[automatically_derived]
                impl ::core::convert::From<#key> for #secondary_keys {
                    #[inline]
                    fn from(__key: #key) -> Self {
                        #secondary_keys::#variant(__key)
                    }
                }
            };
        }
    });

    let variants = model.secondary.iter().map(|field| {
        let key = secondary_key_ident(model, field);
        let variant = &field.variant;
        let variant_doc = doc(format!("The secondary key `{}`.", field.name));
        quote!(#variant_doc #variant(#key))
    });
    let index_arms = model.secondary.iter().enumerate().map(|(index, field)| {
        let variant = &field.variant;
        let index = Literal::usize_unsuffixed(index);
        quote!(#secondary_keys::#variant(_) => #index)
    });
    let encode_arms = model.secondary.iter().map(|field| {
        let variant = &field.variant;
        quote! {
            #secondary_keys::#variant(__key) => {
                ::netabase_store::codec::key::KeyCodec::encode_key(__key, __out)
            }
        }
    });
    let enum_impl_body = if model.secondary.is_empty() {
        quote! {
            fn index(&self) -> usize {
                match *self {}
            }
            fn encode(&self, _: &mut ::std::vec::Vec<u8>) {
                match *self {}
            }
        }
    } else {
        quote! {
            #[inline]
            fn index(&self) -> usize {
                match *self {
                    #(#index_arms,)*
                }
            }
            fn encode(&self, __out: &mut ::std::vec::Vec<u8>) {
                match self {
                    #(#encode_arms)*
                }
            }
        }
    };
    let enum_doc = doc(if model.secondary.is_empty() {
        format!("The secondary keys of [`{ident}`]: it has none, so this enum has no value.")
    } else {
        format!("Any secondary key of [`{ident}`], one variant per `#[secondary_key]` field.")
    });

    quote! {
        #(#newtypes)*

        #enum_doc
        #[derive(::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq)]
        #serde
        #vis enum #secondary_keys {
            #(#variants,)*
        }

        #[automatically_derived]
        impl ::netabase_store::schema::SecondaryKeyEnum for #secondary_keys {
            #enum_impl_body
        }
    }
}

fn generate_key_enum(model: &Model) -> TokenStream {
    let vis = &model.vis;
    let ident = &model.ident;
    let Names {
        primary_key,
        secondary_keys,
        key,
    } = names(model);
    let serde = serde_derives();
    let enum_doc = doc(format!(
        "Any key of [`{ident}`]: its primary key or a secondary key."
    ));
    quote! {
        #enum_doc
        #[derive(::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq)]
        #serde
        #vis enum #key {
            /// The primary key.
            Primary(#primary_key),
            /// A secondary key.
            Secondary(#secondary_keys),
        }

        #[automatically_derived]
        impl ::core::convert::From<#primary_key> for #key {
            #[inline]
            fn from(__key: #primary_key) -> Self {
                #key::Primary(__key)
            }
        }

        #[automatically_derived]
        impl ::core::convert::From<#secondary_keys> for #key {
            #[inline]
            fn from(__key: #secondary_keys) -> Self {
                #key::Secondary(__key)
            }
        }
    }
}

fn generate_model_impl(def: &Definition, model: &Model) -> TokenStream {
    let ident = &model.ident;
    let definition = &def.name;
    let keys = &def.keys;
    let discriminant = &def.discriminant;
    let Names {
        primary_key,
        secondary_keys,
        key,
    } = names(model);

    let name = ident.to_string();
    let table = format!("{definition}/{name}");
    let version = model.version;
    let infos = model.secondary.iter().map(|field| {
        let field_name = &field.name;
        let field_table = format!("{table}/{field_name}");
        let unique = field.unique;
        let key_type = type_name(&field.ty);
        quote! {
            ::netabase_store::schema::SecondaryKeyInfo {
                field: #field_name,
                table: #field_table,
                unique: #unique,
                key_type: #key_type,
            }
        }
    });
    let pk_field = &model.primary.ident;
    let primary_key_type = type_name(&model.primary.ty);
    let encode_arms = model.secondary.iter().enumerate().map(|(index, field)| {
        let index = Literal::usize_unsuffixed(index);
        let field_ident = &field.ident;
        let ty = &field.ty;
        quote! {
            #index => <#ty as ::netabase_store::codec::key::KeyCodec>::encode_key(
                &self.#field_ident,
                __out,
            ),
        }
    });
    let secondary_values = model.secondary.iter().map(|field| {
        let field_ident = &field.ident;
        let variant = &field.variant;
        let newtype = secondary_key_ident(model, field);
        quote! {
            #secondary_keys::#variant(#newtype(::core::clone::Clone::clone(&self.#field_ident)))
        }
    });

    let rule_items = crate::rules::model_trait_items(definition, model);
    let field_shapes = model.fields.iter().map(|field| {
        let field_name = &field.name;
        let ty = type_name(&field.ty);
        let described = !field.serde_attr;
        quote! {
            ::netabase_store::schema::FieldShape {
                name: #field_name,
                ty: #ty,
                described: #described,
            }
        }
    });
    let pk_name = valid::unraw(pk_field);

    quote! {
        #[automatically_derived]
        impl ::netabase_store::schema::NetabaseModelTrait<#definition> for #ident {
            #rule_items

            type PrimaryKey = #primary_key;

            const SHAPE: ::netabase_store::schema::ModelShape = ::netabase_store::schema::ModelShape {
                primary_key: #pk_name,
                fields: &[#(#field_shapes,)*],
            };
            type SecondaryKeys = #secondary_keys;
            type Keys = #key;

            const INFO: ::netabase_store::schema::ModelInfo = ::netabase_store::schema::ModelInfo {
                name: #name,
                table: #table,
                version: #version,
                primary_key_type: #primary_key_type,
                secondary_keys: &[#(#infos,)*],
            };

            #[inline]
            fn discriminant() -> #discriminant {
                #discriminant::#ident
            }

            #[inline]
            fn primary_key(&self) -> #primary_key {
                #primary_key(::core::clone::Clone::clone(&self.#pk_field))
            }

            fn encode_secondary_key(&self, __index: usize, __out: &mut ::std::vec::Vec<u8>) {
                match __index {
                    #(#encode_arms)*
                    _ => {}
                }
            }

            fn secondary_keys(&self) -> ::std::vec::Vec<#secondary_keys> {
                ::std::vec![#(#secondary_values,)*]
            }

            #[inline]
            fn into_definition(self) -> #definition {
                #definition::#ident(self)
            }

            #[inline]
            #[allow(unreachable_patterns)]
            fn try_from_definition(
                __definition: #definition,
            ) -> ::core::result::Result<Self, #definition> {
                match __definition {
                    #definition::#ident(__model) => ::core::result::Result::Ok(__model),
                    __other => ::core::result::Result::Err(__other),
                }
            }

            #[inline]
            fn primary_key_into_keys(__key: #primary_key) -> #keys {
                #keys::#ident(#key::Primary(__key))
            }
        }
    }
}

fn generate_definition(def: &Definition, types: &[TokenStream]) -> TokenStream {
    let definition = &def.name;
    let keys = &def.keys;
    let discriminant = &def.discriminant;
    let vis = &def.vis;
    let definition_name = definition.to_string();
    let serde = serde_derives();
    let idents: Vec<&syn::Ident> = def.models.iter().map(|m| &m.ident).collect();
    let model_names: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    let key_enums: Vec<syn::Ident> = def.models.iter().map(|m| names(m).key).collect();
    let indexes = (0..def.models.len())
        .map(|i| Literal::u16_unsuffixed(u16::try_from(i).unwrap_or(u16::MAX)));
    let model_trait = quote!(::netabase_store::schema::NetabaseModelTrait<#definition>);
    let visit_models = crate::rules::visit_models(&idents);

    let definition_doc = doc(format!(
        "Every model of the definition `{definition_name}`: one variant per model."
    ));
    let keys_doc = doc(format!(
        "Any key of any model of the definition `{definition_name}`."
    ));
    let discriminant_doc = doc(format!(
        "Names a model of the definition `{definition_name}`, without a value."
    ));
    let model_docs: Vec<TokenStream> = model_names
        .iter()
        .map(|name| doc(format!("A [`{name}`].")))
        .collect();
    let key_docs: Vec<TokenStream> = model_names
        .iter()
        .map(|name| doc(format!("A key of [`{name}`].")))
        .collect();
    let discriminant_docs: Vec<TokenStream> = model_names
        .iter()
        .map(|name| doc(format!("The model [`{name}`].")))
        .collect();

    let encode_primary_arms = def.models.iter().map(|model| {
        let ident = &model.ident;
        let pk_field = &model.primary.ident;
        let ty = &model.primary.ty;
        quote! {
            #definition::#ident(__model) => {
                <#ty as ::netabase_store::codec::key::KeyCodec>::encode_key(&__model.#pk_field, __out)
            }
        }
    });
    let encode_keys_primary_arms = def.models.iter().map(|model| {
        let ident = &model.ident;
        let key = names(model).key;
        quote! {
            #keys::#ident(#key::Primary(__key)) => {
                ::netabase_store::codec::key::KeyCodec::encode_key(__key, __out);
                true
            }
            #keys::#ident(#key::Secondary(_)) => false,
        }
    });

    quote! {
        #definition_doc
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #serde
        #vis enum #definition {
            #(#model_docs #idents(#idents),)*
        }

        #keys_doc
        #[derive(::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq)]
        #serde
        #vis enum #keys {
            #(#key_docs #idents(#key_enums),)*
        }

        #discriminant_doc
        #[derive(
            ::core::marker::Copy,
            ::core::clone::Clone,
            ::core::fmt::Debug,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::core::cmp::PartialOrd,
            ::core::cmp::Ord,
            ::core::hash::Hash
        )]
        #serde
        #vis enum #discriminant {
            #(#discriminant_docs #idents,)*
        }

        #[automatically_derived]
        impl ::netabase_store::schema::DiscriminantTrait for #discriminant {
            const ALL: &'static [Self] = &[#(#discriminant::#idents),*];

            #[inline]
            fn name(&self) -> &'static str {
                match *self {
                    #(#discriminant::#idents => #model_names,)*
                }
            }

            #[inline]
            fn index(&self) -> u16 {
                match *self {
                    #(#discriminant::#idents => #indexes,)*
                }
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Display for #discriminant {
            fn fmt(&self, __f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                __f.write_str(::netabase_store::schema::DiscriminantTrait::name(self))
            }
        }

        #[automatically_derived]
        impl ::netabase_store::schema::NetabaseDefinitionTrait for #definition {
            type Keys = #keys;
            type Discriminant = #discriminant;

            const NAME: &'static str = #definition_name;
            const MODELS: &'static [::netabase_store::schema::ModelInfo] =
                &[#(<#idents as #model_trait>::INFO,)*];
            const SHAPES: &'static [::netabase_store::schema::ModelShape] =
                &[#(<#idents as #model_trait>::SHAPE,)*];
            const TYPES: &'static [::netabase_store::schema::TypeDecl] = &[#(#types,)*];

            #[inline]
            fn discriminant(&self) -> #discriminant {
                match *self {
                    #(#definition::#idents(_) => #discriminant::#idents,)*
                }
            }

            fn encode_primary_key(&self, __out: &mut ::std::vec::Vec<u8>) {
                match self {
                    #(#encode_primary_arms)*
                }
            }

            fn encode_secondary_key(&self, __index: usize, __out: &mut ::std::vec::Vec<u8>) {
                match self {
                    #(
                        #definition::#idents(__model) => {
                            <#idents as #model_trait>::encode_secondary_key(__model, __index, __out)
                        }
                    )*
                }
            }

            fn encode_value(&self) -> ::netabase_store::Result<::std::vec::Vec<u8>> {
                match self {
                    #(
                        #definition::#idents(__model) => ::netabase_store::codec::value::encode_value(
                            <#idents as #model_trait>::INFO.name,
                            <#idents as #model_trait>::INFO.version,
                            __model,
                        ),
                    )*
                }
            }

            fn decode_value(
                __discriminant: #discriminant,
                __bytes: &[u8],
            ) -> ::netabase_store::Result<Self> {
                match __discriminant {
                    #(
                        #discriminant::#idents => ::core::result::Result::map(
                            ::netabase_store::codec::value::decode_model::<#definition, #idents>(
                                &[],
                                __bytes,
                            ),
                            #definition::#idents,
                        ),
                    )*
                }
            }

            #[inline]
            fn key_discriminant(__key: &#keys) -> #discriminant {
                match *__key {
                    #(#keys::#idents(_) => #discriminant::#idents,)*
                }
            }

            fn encode_keys_primary(__key: &#keys, __out: &mut ::std::vec::Vec<u8>) -> bool {
                match __key {
                    #(#encode_keys_primary_arms)*
                }
            }

            #visit_models
            fn visit_model<__V: ::netabase_store::schema::ModelVisitor<Self>>(
                __discriminant: #discriminant,
                __visitor: __V,
            ) -> __V::Output {
                match __discriminant {
                    #(#discriminant::#idents => __visitor.visit::<#idents>(),)*
                }
            }
        }

        #(
            #[automatically_derived]
            impl ::core::convert::From<#idents> for #definition {
                #[inline]
                fn from(__model: #idents) -> Self {
                    #definition::#idents(__model)
                }
            }

            #[automatically_derived]
            impl ::core::convert::From<#key_enums> for #keys {
                #[inline]
                fn from(__key: #key_enums) -> Self {
                    #keys::#idents(__key)
                }
            }
        )*
    }
}
