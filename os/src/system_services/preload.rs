//! Images kept for the system engine across reboots: `/var/lib/rancher/preload/system-docker`
//! (on the state partition) holds a `docker save` tar per upgraded service, and PID 1 loads
//! every `*.tar` there into the system engine's store at boot, after the state partition is
//! mounted and before the services start (RancherOS's preload directory, by the same name: a
//! tar a person drops there is loaded too).
//!
//! The store itself lives in RAM and is filled from the initrd at each boot; this is how an
//! image that did not come with the OS is there again. Each tar goes through the store's own
//! load (every blob checked against its digest, all or nothing): a damaged or hostile file is
//! named and skipped, and the services it would have served report their missing image.

use crate::engine::store::index::Image;
use crate::engine::store::load::LoadOptions;
use crate::engine::store::save::SaveItem;
use crate::engine::store::Store;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where the tars are.
pub const DIR: &str = "/var/lib/rancher/preload/system-docker";

/// Save `image` (named `reference`) as the tar of `service`, atomically.
pub fn save(
    store: &Store,
    image: &Image,
    reference: &str,
    service: &str,
) -> anyhow::Result<PathBuf> {
    save_in(Path::new(DIR), store, image, reference, service)
}

fn save_in(
    dir: &Path,
    store: &Store,
    image: &Image,
    reference: &str,
    service: &str,
) -> anyhow::Result<PathBuf> {
    let plain = !service.is_empty()
        && !service.starts_with('.')
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    anyhow::ensure!(plain, "{service:?} cannot name a file");
    let names = crate::engine::store::reference::normalize(reference)
        .map(|n| vec![n])
        .unwrap_or_default();
    let path = dir.join(format!("{service}.tar"));
    let item = SaveItem {
        image: image.clone(),
        names,
    };
    crate::config::atomic::write_atomic_with(&path, 0o600, |f| {
        store
            .save(std::slice::from_ref(&item), std::io::BufWriter::new(f))
            .map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Where consoles' images are saved (`KEY.tar`), apart from the services' tars: a boot loads
/// only the running console's.
pub const CONSOLES: &str = "consoles";

/// Save the image of the console `key`, atomically.
pub fn save_console(
    store: &Store,
    image: &Image,
    reference: &str,
    key: &str,
) -> anyhow::Result<PathBuf> {
    let dir = Path::new(DIR).join(CONSOLES);
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    save_in(&dir, store, image, reference, key)
}

/// Load every `*.tar` of [`DIR`], and of the consoles' images ([`CONSOLES`]) only `console`'s,
/// the one that will run (a full console's image is a distribution: 150 MB of files in RAM for
/// each one loaded): the names loaded, and a line per file that would not load.
pub fn load_all(store: &Store, console: Option<&str>) -> (Vec<String>, Vec<String>) {
    let (mut loaded, mut problems) = load_from(Path::new(DIR), store);
    if let Some(key) = console {
        let path = Path::new(DIR).join(CONSOLES).join(format!("{key}.tar"));
        if path.is_file() {
            match store.load(&path, &LoadOptions::default()) {
                Ok(images) => loaded.extend(images.iter().map(|l| l.image.display_name())),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    (loaded, problems)
}

/// Load the saved image of the console `key` (for a switch to it after a boot that did not).
pub fn load_console(store: &Store, key: &str) -> anyhow::Result<Vec<String>> {
    let path = Path::new(DIR).join(CONSOLES).join(format!("{key}.tar"));
    let images = store
        .load(&path, &LoadOptions::default())
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(images.iter().map(|l| l.image.display_name()).collect())
}

fn load_from(dir: &Path, store: &Store) -> (Vec<String>, Vec<String>) {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (loaded, problems),
        Err(e) => return (loaded, vec![format!("{}: {e}", dir.display())]),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        // Regular files only: a symlink could lead the load anywhere.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    files.sort();
    for path in files {
        match store.load(&path, &LoadOptions::default()) {
            Ok(images) => loaded.extend(images.iter().map(|l| l.image.display_name())),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    (loaded, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_image_loads_again_and_a_bad_file_is_named_and_skipped() {
        let src = tempfile::tempdir().unwrap();
        let store = Store::open(src.path().join("store")).unwrap();
        let layout = crate::engine::store::tests::tiny_layout(src.path(), "ros-test/x:2");
        store.load(&layout, &LoadOptions::default()).unwrap();
        let image = store.resolve("ros-test/x:2").unwrap();

        let preload = src.path().join("preload");
        let saved = save_in(&preload, &store, &image, "ros-test/x:2", "syslog").unwrap();
        assert_eq!(saved, preload.join("syslog.tar"));
        assert!(save_in(&preload, &store, &image, "ros-test/x:2", "../x").is_err());
        std::fs::write(preload.join("bad.tar"), b"not a tar").unwrap();
        std::fs::write(preload.join("notes.txt"), b"ignored").unwrap();
        std::os::unix::fs::symlink(&saved, preload.join("link.tar")).unwrap();

        let fresh = Store::open(src.path().join("fresh")).unwrap();
        // A directory (the consoles' images) is not a tar: not read here.
        std::fs::create_dir_all(preload.join(CONSOLES)).unwrap();
        save_in(
            &preload.join(CONSOLES),
            &store,
            &image,
            "ros-test/x:2",
            "debian",
        )
        .unwrap();
        let (loaded, problems) = load_from(&preload, &fresh);
        assert_eq!(loaded, ["ros-test/x:2"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("bad.tar"), "{problems:?}");
        assert_eq!(fresh.resolve("ros-test/x:2").unwrap().id, image.id);
    }
}
