//! Helpers for unit tests.

use std::path::{Path, PathBuf};

/// A throwaway directory under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!(
            "passthru-agent-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
