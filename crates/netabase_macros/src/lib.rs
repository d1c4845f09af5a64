//! Procedural macros of `netabase_store`.
use proc_macro::TokenStream;

/// Placeholder.
#[proc_macro_attribute]
pub fn netabase_definition_module(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
