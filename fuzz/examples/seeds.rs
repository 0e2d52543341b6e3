//! Writes the seed corpora: `fuzz/seeds/<target>/<name>` for every seed of `nest_fuzz::seeds`.

use std::{fs, path::Path};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, name, bytes) in nest_fuzz::seeds::all() {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
    }
    println!("seeds written under {}", root.display());
    Ok(())
}
