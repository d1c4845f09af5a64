//! The size on disk of 10,000 compressible documents (about 600 bytes each) under each
//! value transform, after a compaction: `cargo run --release -p netabase_bench --bin
//! at_rest_size`.

use netabase_bench::at_rest::{Doc, TRANSFORMS, docs, open};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 10_000;
    let data = docs(N);
    let dir = tempfile::tempdir()?;
    println!("| values | file size (bytes) | ÷ plain |");
    println!("|---|---:|---:|");
    let mut plain = 0u64;
    for name in TRANSFORMS {
        let path = dir.path().join(format!("{}.redb", name.replace('+', "_")));
        {
            let store = open(name, Some(&path))?;
            store.open_tree::<Doc>().put_many(data.clone())?;
            store.raw_backend().inner().compact()?;
        }
        let size = std::fs::metadata(&path)?.len();
        if name == "plain" {
            plain = size;
        }
        println!(
            "| {name} | {size} | {:.2} |",
            size as f64 / plain.max(1) as f64
        );
    }
    Ok(())
}
