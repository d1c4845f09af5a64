//! What `#[netabase_definition_module]` generates: names, types, static descriptions and
//! the behaviour of every generated trait method.

use netabase_store::prelude::*;
use netabase_store::schema::{ModelInfo, SecondaryKeyInfo};

/// A shop: customers, products and an audit log.
#[netabase_definition_module(ShopDefinition, ShopKeys)]
pub mod shop {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A customer.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(ShopDefinition)]
    pub struct Customer {
        /// Primary key.
        #[primary_key]
        pub id: u64,
        /// Not indexed.
        pub name: String,
        /// Unique index.
        #[secondary_key(unique)]
        pub email: String,
        /// Optional index.
        #[secondary_key]
        pub nickname: Option<String>,
    }

    /// A product, versioned, with a float index and a two-word field name.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(ShopDefinition, version = 3)]
    pub struct Product {
        /// Composite primary key.
        #[primary_key]
        pub sku: (u32, String),
        /// Float index.
        #[secondary_key]
        pub price: f64,
        /// Two-word field.
        #[secondary_key]
        pub category_id: i64,
    }

    /// A model without secondary keys and without `#[netabase(..)]` (defaults to the
    /// module's definition, version 0).
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct AuditEntry {
        /// Primary key.
        #[primary_key]
        pub at: i128,
        /// Not indexed.
        pub message: String,
    }
}

use shop::*;

fn customer() -> Customer {
    Customer {
        id: 7,
        name: "Ada".into(),
        email: "ada@example.com".into(),
        nickname: Some("countess".into()),
    }
}

fn product() -> Product {
    Product {
        sku: (12, "lamp".into()),
        price: -2.5,
        category_id: -4,
    }
}

fn audit() -> AuditEntry {
    AuditEntry {
        at: -1,
        message: "boot".into(),
    }
}

fn key_bytes<K: KeyCodec>(value: &K) -> Vec<u8> {
    value.to_key_bytes()
}

#[test]
fn generated_key_types_wrap_the_field_types() {
    let pk: CustomerPrimaryKey = CustomerPrimaryKey(7u64);
    assert_eq!(pk, CustomerPrimaryKey::from(7u64));
    let composite: ProductPrimaryKey = ProductPrimaryKey((12u32, String::from("lamp")));
    assert_eq!(composite.0.1, "lamp");

    let email: CustomerEmailSecondaryKey = CustomerEmailSecondaryKey(String::from("a"));
    let nickname: CustomerNicknameSecondaryKey = CustomerNicknameSecondaryKey(None::<String>);
    let price: ProductPriceSecondaryKey = ProductPriceSecondaryKey(1.5f64);
    let category: ProductCategoryIdSecondaryKey = ProductCategoryIdSecondaryKey(3i64);

    let _: CustomerSecondaryKeys = CustomerSecondaryKeys::Email(email.clone());
    let _: CustomerSecondaryKeys = CustomerSecondaryKeys::Nickname(nickname.clone());
    let _: ProductSecondaryKeys = ProductSecondaryKeys::Price(price.clone());
    let _: ProductSecondaryKeys = ProductSecondaryKeys::CategoryId(category.clone());
    assert_eq!(
        CustomerSecondaryKeys::from(email.clone()),
        CustomerSecondaryKeys::Email(email)
    );

    let key: CustomerKey = CustomerKey::Primary(pk.clone());
    assert_eq!(CustomerKey::from(pk), key);
    let _: ShopKeys = ShopKeys::Customer(key);
    let _: ShopKeys = ShopKeys::AuditEntry(AuditEntryKey::Primary(AuditEntryPrimaryKey(0)));
    let _: ShopDefinitionDiscriminant = ShopDefinitionDiscriminant::Product;

    // Associated types.
    fn associated<M: NetabaseModelTrait<ShopDefinition>>() -> ModelInfo {
        M::INFO
    }
    let _: <Customer as NetabaseModelTrait<ShopDefinition>>::PrimaryKey = CustomerPrimaryKey(1);
    let _: <Customer as NetabaseModelTrait<ShopDefinition>>::Keys =
        CustomerKey::Primary(CustomerPrimaryKey(1));
    assert_eq!(associated::<AuditEntry>().name, "AuditEntry");
    let _: <ShopDefinition as NetabaseDefinitionTrait>::Keys = ShopKeys::from(
        ProductKey::Secondary(ProductSecondaryKeys::from(ProductPriceSecondaryKey(0.0))),
    );
}

#[test]
fn primary_keys_order_like_their_encoding() {
    let small = ProductPrimaryKey((1, "b".into()));
    let large = ProductPrimaryKey((2, "a".into()));
    assert!(small < large);
    assert!(key_bytes(&small) < key_bytes(&large));
    assert_eq!(key_bytes(&small), key_bytes(&small.0));
    let decoded = ProductPrimaryKey::from_key_bytes(&key_bytes(&large)).map_err(|e| e.to_string());
    assert_eq!(decoded, Ok(large.clone()));

    let mut set = std::collections::HashSet::new();
    set.insert(small.clone());
    assert!(set.contains(&small));
    assert!(!set.contains(&large));
}

#[test]
fn secondary_key_newtypes_order_like_the_index() {
    let negative = ProductPriceSecondaryKey(-1.0);
    let positive = ProductPriceSecondaryKey(0.5);
    assert!(negative < positive);
    assert_eq!(key_bytes(&positive), key_bytes(&0.5f64));
    assert_eq!(
        ProductPriceSecondaryKey::from_key_bytes(&key_bytes(&positive)).map(|k| k.0),
        Ok(0.5)
    );
    assert_eq!(
        <ProductPriceSecondaryKey as SecondaryKeyField<ShopDefinition, Product>>::INDEX,
        0
    );
    assert_eq!(
        <ProductCategoryIdSecondaryKey as SecondaryKeyField<ShopDefinition, Product>>::INDEX,
        1
    );
    assert_eq!(
        <CustomerNicknameSecondaryKey as SecondaryKeyField<ShopDefinition, Customer>>::INDEX,
        1
    );
}

#[test]
fn model_info_describes_tables_fields_and_versions() {
    assert_eq!(
        Customer::INFO,
        ModelInfo {
            name: "Customer",
            table: "ShopDefinition/Customer",
            version: 0,
            primary_key_type: "u64",
            secondary_keys: &[
                SecondaryKeyInfo {
                    field: "email",
                    table: "ShopDefinition/Customer/email",
                    unique: true,
                    key_type: "String",
                },
                SecondaryKeyInfo {
                    field: "nickname",
                    table: "ShopDefinition/Customer/nickname",
                    unique: false,
                    key_type: "Option<String>",
                },
            ],
        }
    );
    assert_eq!(
        Product::INFO,
        ModelInfo {
            name: "Product",
            table: "ShopDefinition/Product",
            version: 3,
            primary_key_type: "(u32,String)",
            secondary_keys: &[
                SecondaryKeyInfo {
                    field: "price",
                    table: "ShopDefinition/Product/price",
                    unique: false,
                    key_type: "f64",
                },
                SecondaryKeyInfo {
                    field: "category_id",
                    table: "ShopDefinition/Product/category_id",
                    unique: false,
                    key_type: "i64",
                },
            ],
        }
    );
    assert_eq!(AuditEntry::INFO.table, "ShopDefinition/AuditEntry");
    assert_eq!(AuditEntry::INFO.version, 0);
    assert!(AuditEntry::INFO.secondary_keys.is_empty());

    assert_eq!(ShopDefinition::NAME, "ShopDefinition");
    assert_eq!(
        ShopDefinition::MODELS,
        &[Customer::INFO, Product::INFO, AuditEntry::INFO]
    );
}

#[test]
fn discriminants_name_and_index_the_models_in_order() {
    use ShopDefinitionDiscriminant as D;
    assert_eq!(D::ALL, &[D::Customer, D::Product, D::AuditEntry]);
    for (i, d) in D::ALL.iter().enumerate() {
        assert_eq!(usize::from(d.index()), i);
        assert_eq!(D::from_index(d.index()), Some(*d));
        assert_eq!(d.name(), ShopDefinition::MODELS[i].name);
        assert_eq!(D::from_name(d.name()), Some(*d));
        assert_eq!(d.to_string(), d.name());
    }
    assert_eq!(D::from_name("Nope"), None);
    assert_eq!(D::from_index(3), None);
    assert!(D::Customer < D::AuditEntry);

    assert_eq!(
        <Customer as NetabaseModelTrait<ShopDefinition>>::discriminant(),
        D::Customer
    );
    assert_eq!(
        <AuditEntry as NetabaseModelTrait<ShopDefinition>>::discriminant(),
        D::AuditEntry
    );
    assert_eq!(ShopDefinition::from(product()).discriminant(), D::Product);
}

#[test]
fn secondary_keys_encode_like_their_fields() {
    let c = customer();
    let mut out = Vec::new();
    c.encode_secondary_key(0, &mut out);
    assert_eq!(out, key_bytes(&c.email));
    out.clear();
    c.encode_secondary_key(1, &mut out);
    assert_eq!(out, key_bytes(&c.nickname));
    out.clear();
    c.encode_secondary_key(2, &mut out);
    assert!(out.is_empty(), "out-of-range index appends nothing");

    let p = product();
    p.encode_secondary_key(0, &mut out);
    assert_eq!(out, key_bytes(&p.price));
    out.clear();
    p.encode_secondary_key(1, &mut out);
    assert_eq!(out, key_bytes(&p.category_id));
    out.clear();
    audit().encode_secondary_key(0, &mut out);
    assert!(out.is_empty());

    let keys = c.secondary_keys();
    assert_eq!(
        keys,
        vec![
            CustomerSecondaryKeys::Email(CustomerEmailSecondaryKey(c.email.clone())),
            CustomerSecondaryKeys::Nickname(CustomerNicknameSecondaryKey(c.nickname.clone())),
        ]
    );
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(key.index(), i);
        let mut encoded = Vec::new();
        key.encode(&mut encoded);
        let mut expected = Vec::new();
        c.encode_secondary_key(i, &mut expected);
        assert_eq!(encoded, expected);
    }
    assert!(audit().secondary_keys().is_empty());
}

#[test]
fn primary_keys_and_key_enums() {
    let p = product();
    assert_eq!(p.primary_key(), ProductPrimaryKey(p.sku.clone()));
    let mut out = Vec::new();
    ShopDefinition::from(p.clone()).encode_primary_key(&mut out);
    assert_eq!(out, key_bytes(&p.sku));

    let keys = Product::primary_key_into_keys(p.primary_key());
    assert_eq!(
        keys,
        ShopKeys::Product(ProductKey::Primary(p.primary_key()))
    );
    assert_eq!(
        ShopDefinition::key_discriminant(&keys),
        ShopDefinitionDiscriminant::Product
    );
    let mut encoded = Vec::new();
    assert!(ShopDefinition::encode_keys_primary(&keys, &mut encoded));
    assert_eq!(encoded, out);

    let secondary = ShopKeys::Customer(CustomerKey::Secondary(CustomerSecondaryKeys::Email(
        CustomerEmailSecondaryKey("x".into()),
    )));
    let mut none = Vec::new();
    assert!(!ShopDefinition::encode_keys_primary(&secondary, &mut none));
    assert!(none.is_empty());
    assert_eq!(
        ShopDefinition::key_discriminant(&secondary),
        ShopDefinitionDiscriminant::Customer
    );
}

#[test]
fn definition_round_trips() {
    let c = customer();
    let definition = c.clone().into_definition();
    assert!(matches!(definition, ShopDefinition::Customer(_)));
    assert_eq!(
        Customer::try_from_definition(definition.clone()).ok(),
        Some(c.clone())
    );
    let back = Product::try_from_definition(definition);
    assert!(matches!(back, Err(ShopDefinition::Customer(ref x)) if *x == c));
}

#[test]
fn values_round_trip_through_the_definition() -> netabase_store::Result<()> {
    for model in [
        ShopDefinition::from(customer()),
        ShopDefinition::from(product()),
        ShopDefinition::from(audit()),
    ] {
        let bytes = model.encode_value()?;
        let discriminant = model.discriminant();
        let info = ShopDefinition::MODELS[usize::from(discriminant.index())];
        let (version, _) = netabase_store::codec::value::split_header(info.table, &[], &bytes)?;
        assert_eq!(version, info.version);
        let decoded = ShopDefinition::decode_value(discriminant, &bytes)?;
        assert_eq!(format!("{decoded:?}"), format!("{model:?}"));
    }
    let bytes = ShopDefinition::from(product()).encode_value()?;
    assert_eq!(&bytes[1..3], &3u16.to_be_bytes());
    let decoded = ShopDefinition::decode_value(ShopDefinitionDiscriminant::Product, &bytes)?;
    assert_eq!(Product::try_from_definition(decoded).ok(), Some(product()));

    // Bytes of the wrong model give an error naming the table, not a panic.
    let audit_bytes = ShopDefinition::from(audit()).encode_value()?;
    match ShopDefinition::decode_value(ShopDefinitionDiscriminant::Customer, &audit_bytes) {
        Err(error) => assert!(
            error.to_string().contains("ShopDefinition/Customer"),
            "{error}"
        ),
        Ok(value) => panic!("decoded {value:?} from the bytes of another model"),
    }
    Ok(())
}

#[test]
fn generated_types_serialize_with_serde() {
    fn is_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    is_serde::<CustomerPrimaryKey>();
    is_serde::<CustomerEmailSecondaryKey>();
    is_serde::<CustomerSecondaryKeys>();
    is_serde::<AuditEntrySecondaryKeys>();
    is_serde::<CustomerKey>();
    is_serde::<ShopDefinition>();
    is_serde::<ShopKeys>();
    is_serde::<ShopDefinitionDiscriminant>();
}
