//! The key encoding is a permanent on-disk contract: this test checks it byte for byte
//! against the committed file `tests/data/key_vectors.txt`.
//!
//! If the encoding ever has to change, that is a new storage format: bump
//! `FORMAT_VERSION`, provide a migration, and only then regenerate the file with
//! `NETABASE_BLESS_KEY_VECTORS=1 cargo test -p netabase_store --test key_vectors`.

use netabase_store::codec::key::KeyCodec;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vectors() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |label: &str, bytes: Vec<u8>| v.push((label.to_owned(), bytes));
    add("u8 0", 0u8.to_key_bytes());
    add("u8 255", 255u8.to_key_bytes());
    add("u16 258", 258u16.to_key_bytes());
    add("u32 1", 1u32.to_key_bytes());
    add("u64 1", 1u64.to_key_bytes());
    add("u64 250", 250u64.to_key_bytes());
    add("u64 256", 256u64.to_key_bytes());
    add("u64 65536", 65536u64.to_key_bytes());
    add("u64 max", u64::MAX.to_key_bytes());
    add("u128 1", 1u128.to_key_bytes());
    add("usize 7", 7usize.to_key_bytes());
    add("i8 -1", (-1i8).to_key_bytes());
    add("i16 -2", (-2i16).to_key_bytes());
    add("i32 0", 0i32.to_key_bytes());
    add("i64 min", i64::MIN.to_key_bytes());
    add("i64 -1", (-1i64).to_key_bytes());
    add("i64 0", 0i64.to_key_bytes());
    add("i64 1", 1i64.to_key_bytes());
    add("i64 max", i64::MAX.to_key_bytes());
    add("i128 -1", (-1i128).to_key_bytes());
    add("isize -7", (-7isize).to_key_bytes());
    add("bool false", false.to_key_bytes());
    add("bool true", true.to_key_bytes());
    add("char a", 'a'.to_key_bytes());
    add("char 😀", '😀'.to_key_bytes());
    add("f32 -1.5", (-1.5f32).to_key_bytes());
    add("f32 0", 0f32.to_key_bytes());
    add("f64 -inf", f64::NEG_INFINITY.to_key_bytes());
    add("f64 -0", (-0.0f64).to_key_bytes());
    add("f64 0", 0f64.to_key_bytes());
    add("f64 1.5", 1.5f64.to_key_bytes());
    add(
        "f64 nan",
        f64::from_bits(0x7ff8_0000_0000_0000).to_key_bytes(),
    );
    add("string empty", String::new().to_key_bytes());
    add("string a", "a".to_string().to_key_bytes());
    add("string a nul", "a\0".to_string().to_key_bytes());
    add("string ab", "ab".to_string().to_key_bytes());
    add("string héllo", "héllo".to_string().to_key_bytes());
    add("bytes 00 ff 01", vec![0u8, 0xFF, 1].to_key_bytes());
    add("array [1,2,3]", [1u8, 2, 3].to_key_bytes());
    add("option none u32", None::<u32>.to_key_bytes());
    add("option some u32 5", Some(5u32).to_key_bytes());
    add("option some string x", Some("x".to_string()).to_key_bytes());
    add(
        "tuple (u32 1, string a)",
        (1u32, "a".to_string()).to_key_bytes(),
    );
    add(
        "tuple (i64 -1, bool true, option none u8)",
        (-1i64, true, None::<u8>).to_key_bytes(),
    );
    add("unit", ().to_key_bytes());
    v
}

#[test]
fn key_encoding_matches_the_committed_vectors() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/key_vectors.txt");
    let rendered: String = vectors()
        .iter()
        .map(|(label, bytes)| format!("{label} = {}\n", hex(bytes)))
        .collect();
    if std::env::var_os("NETABASE_BLESS_KEY_VECTORS").is_some() {
        std::fs::write(&path, &rendered)?;
    }
    let committed = std::fs::read_to_string(&path)?;
    for (expected, actual) in committed.lines().zip(rendered.lines()) {
        assert_eq!(
            actual, expected,
            "the key encoding changed: this breaks every existing database"
        );
    }
    assert_eq!(
        committed.lines().count(),
        rendered.lines().count(),
        "vector count changed"
    );
    Ok(())
}
