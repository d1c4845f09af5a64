//! Property tests of the order-preserving key encoding: for every supported type,
//! `a.cmp(b) == enc(a).cmp(enc(b))` and `dec(enc(a)) == a`, and concatenated encodings
//! (tuples, index entries) keep both properties.

use std::cmp::Ordering;
use std::fmt::Debug;

use netabase_store::codec::key::KeyCodec;
use proptest::prelude::*;

fn check_order<T: KeyCodec + Ord + Debug>(a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        a.cmp(b),
        a.to_key_bytes().cmp(&b.to_key_bytes()),
        "{:?} vs {:?}",
        a,
        b
    );
    Ok(())
}

fn check_round_trip<T: KeyCodec + PartialEq + Debug>(a: &T) -> Result<(), TestCaseError> {
    let bytes = a.to_key_bytes();
    prop_assert_eq!(
        &T::from_key_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?,
        a
    );
    // Self-delimiting: decoding from the front of a longer buffer stops at the end.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0x00, 0x01, 0xFF]);
    let mut rest = longer.as_slice();
    let decoded = T::decode_key(&mut rest).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, a);
    prop_assert_eq!(rest, &[0x00, 0x01, 0xFF][..]);
    Ok(())
}

macro_rules! ord_props {
    ($($name:ident: $t:ty => $strategy:expr;)*) => {$(
        proptest! {
            #[test]
            fn $name(a in $strategy, b in $strategy) {
                check_order::<$t>(&a, &b)?;
                check_round_trip::<$t>(&a)?;
            }
        }
    )*};
}

ord_props! {
    u8_props: u8 => any::<u8>();
    u16_props: u16 => any::<u16>();
    u32_props: u32 => any::<u32>();
    u64_props: u64 => any::<u64>();
    u128_props: u128 => any::<u128>();
    usize_props: usize => any::<usize>();
    i8_props: i8 => any::<i8>();
    i16_props: i16 => any::<i16>();
    i32_props: i32 => any::<i32>();
    i64_props: i64 => any::<i64>();
    i128_props: i128 => any::<i128>();
    isize_props: isize => any::<isize>();
    bool_props: bool => any::<bool>();
    char_props: char => any::<char>();
    string_props: String => ".{0,12}";
    string_with_nul_props: String => "[a\\x00b\\u{FF}]{0,8}";
    bytes_props: Vec<u8> => proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..10);
    array_props: [u8; 4] => any::<[u8; 4]>();
    option_u32_props: Option<u32> => any::<Option<u32>>();
    option_string_props: Option<String> => proptest::option::of("[a\\x00]{0,4}");
    tuple2_props: (u32, String) => (0u32..4, "[ab\\x00]{0,3}");
    tuple3_props: (i64, Option<String>, bool) => (-2i64..2, proptest::option::of("[a\\x00]{0,3}"), any::<bool>());
    tuple_bytes_props: (Vec<u8>, Vec<u8>) => (proptest::collection::vec(0u8..3, 0..4), proptest::collection::vec(0u8..3, 0..4));
    nested_props: ((u8, String), Option<(u16, char)>) => ((0u8..3, "[a\\x00]{0,2}"), proptest::option::of((0u16..3, any::<char>())));
}

proptest! {
    #[test]
    fn f64_follows_total_order(a in any::<f64>(), b in any::<f64>()) {
        prop_assert_eq!(a.total_cmp(&b), a.to_key_bytes().cmp(&b.to_key_bytes()));
        let back = f64::from_key_bytes(&a.to_key_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.to_bits(), a.to_bits());
    }

    #[test]
    fn f32_follows_total_order(a in any::<f32>(), b in any::<f32>()) {
        prop_assert_eq!(a.total_cmp(&b), a.to_key_bytes().cmp(&b.to_key_bytes()));
        let back = f32::from_key_bytes(&a.to_key_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.to_bits(), a.to_bits());
    }

    /// A non-unique index entry is enc(secondary) ++ enc(primary): entries must sort by
    /// secondary value first, then primary key, for any strings.
    #[test]
    fn index_entries_sort_by_secondary_then_primary(
        s1 in "[ab\\x00]{0,4}", p1 in any::<u64>(), s2 in "[ab\\x00]{0,4}", p2 in any::<u64>()
    ) {
        let entry = |s: &String, p: u64| {
            let mut k = s.to_key_bytes();
            k.extend(p.to_key_bytes());
            k
        };
        prop_assert_eq!((&s1, p1).cmp(&(&s2, p2)), entry(&s1, p1).cmp(&entry(&s2, p2)));
    }

    /// Arbitrary bytes never make a decoder panic.
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
        let _ = String::from_key_bytes(&bytes);
        let _ = Vec::<u8>::from_key_bytes(&bytes);
        let _ = <(u32, String, Option<i64>)>::from_key_bytes(&bytes);
        let _ = char::from_key_bytes(&bytes);
        let _ = bool::from_key_bytes(&bytes);
        let _ = f64::from_key_bytes(&bytes);
    }
}

#[test]
fn fixed_examples_from_the_design() {
    let sorted = |mut v: Vec<Vec<u8>>| {
        v.sort();
        v
    };
    let ids: Vec<Vec<u8>> = [1u64, 250, 251, 256, 300, 65536]
        .iter()
        .map(KeyCodec::to_key_bytes)
        .collect();
    assert_eq!(sorted(ids.clone()), ids);
    let negs: Vec<Vec<u8>> = [i64::MIN, -1, 0, 1, i64::MAX]
        .iter()
        .map(KeyCodec::to_key_bytes)
        .collect();
    assert_eq!(sorted(negs.clone()), negs);
    let strs: Vec<Vec<u8>> = ["", "a", "a\0", "ab", "b"]
        .iter()
        .map(|s| s.to_string().to_key_bytes())
        .collect();
    assert_eq!(sorted(strs.clone()), strs);
    assert_eq!(
        Ordering::Less,
        None::<u8>.to_key_bytes().cmp(&Some(0u8).to_key_bytes())
    );
}
