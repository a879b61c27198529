//! A layer blob (any bytes: a tar, gzip or zstd as the magic says) unpacked by the image store
//! into `ROOT/layer`, beside a populated `ROOT` (`outside/canary`, `etc/passwd`, a symlink out).
//! After every input, nothing under `ROOT` but `layer` may have been created, removed or
//! changed: that is the unpacker's promise that a layer cannot write outside its directory.
//!
//! As root, `ROOT` is a 64 MiB tmpfs in a mount namespace of the target's own, and the target
//! chroots into it, so even an escape through an absolute path lands in `ROOT` (and is caught)
//! instead of on the machine. The fuzz crate's directory is bound in at its own path (libFuzzer
//! writes the corpus and crash artifacts there) and `/proc` too; both are left out of the check.
//! As another user, `ROOT` is a temporary directory and only relative escapes are caught.

#![no_main]

use libfuzzer_sys::fuzz_target;
use os::engine::store::unpack::{unpack_layer, LayerSource};
use os_fuzz::{sandbox, snapshot};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

struct Root {
    layer: PathBuf,
    root: PathBuf,
    skip: Vec<PathBuf>,
    before: snapshot::Snapshot,
}

static ROOT: LazyLock<Root> = LazyLock::new(setup);

fn setup() -> Root {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().expect("cwd");
    let (root, skip) = if sandbox::private_mounts() {
        // One fixed, empty mount point, shared by every run (each has its own tmpfs on it).
        let dir = std::env::temp_dir().join("os-fuzz-unpack-root");
        std::fs::create_dir_all(&dir).expect("creating the mount point");
        sandbox::tmpfs(&dir, "64m");
        let inner_fuzz = dir.join(fuzz_dir.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(&inner_fuzz).expect("mkdir for the fuzz dir");
        sandbox::bind(fuzz_dir, &inner_fuzz);
        std::fs::create_dir(dir.join("proc")).expect("mkdir proc");
        sandbox::bind(Path::new("/proc"), &dir.join("proc"));
        nix::unistd::chroot(&dir).expect("chroot");
        std::env::set_current_dir(if cwd.starts_with(fuzz_dir) {
            &cwd
        } else {
            Path::new("/")
        })
        .expect("chdir in the chroot");
        (
            PathBuf::from("/"),
            vec![fuzz_dir.to_path_buf(), "/proc".into()],
        )
    } else {
        let dir = tempfile::Builder::new()
            .prefix("os-fuzz-unpack-")
            .tempdir()
            .expect("tempdir")
            .keep();
        (dir, Vec::new())
    };
    let layer = root.join("layer");
    let mut skip = skip;
    skip.push(layer.clone());
    std::fs::create_dir(&layer).expect("mkdir layer");
    std::fs::create_dir_all(root.join("outside/dir")).expect("mkdir outside");
    std::fs::write(root.join("outside/canary"), "must not change\n").expect("canary");
    std::os::unix::fs::symlink("/outside", root.join("outside/to-outside")).expect("symlink");
    std::os::unix::fs::symlink("../outside/canary", root.join("link-out")).expect("symlink");
    std::fs::create_dir(root.join("etc")).expect("mkdir etc");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
    let before = snapshot::take(&root, &skip);
    Root {
        layer,
        root,
        skip,
        before,
    }
}

/// Empty `dir`, keeping `dir` itself (its parent must not change).
fn clear(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("reading the layer") {
        let path = entry.expect("reading the layer").path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let result = if is_dir {
            make_writable(&path);
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.unwrap_or_else(|e| panic!("clearing {}: {e}", path.display()));
    }
}

/// Not root: a layer's `0000` directory stops `remove_dir_all`; open everything up first.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let r = &*ROOT;
    let what = LayerSource {
        layer: "fuzz",
        src: Path::new("fuzz.tar"),
        media_type: None,
    };
    // An error is a fine answer to a bad layer; only what it did outside the layer matters.
    let _ = unpack_layer(data, &what, &r.layer);
    let after = snapshot::take(&r.root, &r.skip);
    let changed = snapshot::diff(&r.before, &after);
    assert!(
        changed.is_empty(),
        "the layer wrote outside its directory:\n{}",
        changed.join("\n")
    );
    clear(&r.layer);
});
