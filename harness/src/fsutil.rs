//! File writes that never leave a torn file behind: temp file in the same directory, fsync,
//! rename over the target, fsync the directory.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("temp file in {}", dir.display()))?;
    tmp.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("chmod {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    Ok(())
}
