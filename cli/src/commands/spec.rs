//! `spec`: a default config.json in the bundle, never over an existing one.

use std::path::Path;

use anyhow::{Context, Result};

pub fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let spec = moor::spec::default_spec(rootless);
    std::fs::write(&path, serde_json::to_string_pretty(&spec)?).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
