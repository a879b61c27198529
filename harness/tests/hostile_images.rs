//! Hostile images, proven in a VM: `system-docker load` of images whose layers plant symlinks
//! out of the layer and then write, link, chmod and utimes through them leaves the host's files,
//! modes and times as they were. Layers that write through a symlink, name `..` or hard-link
//! outside are refused with the entry named; a layer whose directory (with a recorded mode) is
//! swapped for a symlink to a host directory loads, and the host directory keeps its mode and
//! mtime. The unit tests (`os/src/engine/store/tests.rs`) cover each case on the host; this one
//! shows the booted system's load path (API, store, unpack in PID 1) keeps to them.

use harness::disk::Disk;
use harness::vm::{Vm, VmOptions};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tar::{EntryType, Header};

const BOOT: Duration = Duration::from_secs(120);
const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";
/// Each archive on the disk starts at a multiple of this.
const SLOT: u64 = 1 << 20;

/// A layer tar with raw names (the tar crate's own setters refuse `..`).
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn entry(mut self, kind: EntryType, name: &str, link: Option<&str>, mode: u32) -> Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        let data: &[u8] = if kind == EntryType::Regular {
            b"hostile\n"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(4321);
        h.set_gid(4321);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(EntryType::Directory, name, None, mode)
    }
    fn file(self, name: &str) -> Self {
        self.entry(EntryType::Regular, name, None, 0o4777)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(EntryType::Symlink, name, Some(target), 0o777)
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(EntryType::Link, name, Some(target), 0o777)
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A classic `docker save` archive of one image `tag` with one layer.
fn docker_save(tag: &str, layer: &[u8]) -> Vec<u8> {
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(layer)));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config)));
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": [tag], "Layers": ["l/layer.tar"]}
    ]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (config_name.as_str(), &config[..]),
        ("l/layer.tar", layer),
        ("manifest.json", &manifest[..]),
    ] {
        let mut h = Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// What the test watches on the host: kind, mode, owner, links, size, mtime of each canary path.
const STAT: &str = "find /tmp/canary /etc/hostname -exec stat -c '%n %F %a %u:%g %h %s %Y' {} \\; | sort; cat /tmp/canary/file";

#[test]
fn hostile_images_leave_the_hosts_files_modes_and_times_alone() {
    let c = "/tmp/canary";
    // (tag, layer, Some(entry the refusal names) or None: loads, contained).
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "evil/swap:1",
            Layer::new()
                .dir("a/", 0o777)
                .dir("a/b/", 0o700)
                .symlink("a", c)
                .dir("top/", 0o700)
                .symlink("top", "../../../../../../tmp/canary")
                .symlink("s", "/tmp/canary/file")
                .hardlink("s2", "s")
                .finish(),
            None,
        ),
        (
            "evil/through:1",
            Layer::new()
                .symlink("etc", "/etc")
                .file("etc/hostname")
                .finish(),
            Some("etc/hostname"),
        ),
        (
            "evil/dotdot:1",
            Layer::new()
                .file("../../../../../../tmp/canary/file")
                .finish(),
            Some("../../../../../../tmp/canary/file"),
        ),
        (
            "evil/link:1",
            Layer::new()
                .symlink("l", c)
                .hardlink("h", "l/file")
                .finish(),
            Some("h"),
        ),
        (
            "evil/whiteout:1",
            Layer::new().dir("d/", 0o755).file("d/.wh...").finish(),
            Some("d/.wh..."),
        ),
        (
            "evil/loop:1",
            Layer::new()
                .symlink("x", "y")
                .symlink("y", "x")
                .file("x/z")
                .finish(),
            Some("x/z"),
        ),
    ];
    let archives: Vec<Vec<u8>> = cases
        .iter()
        .map(|(tag, layer, _)| docker_save(tag, layer))
        .collect();
    let writes: Vec<(u64, &[u8])> = archives
        .iter()
        .enumerate()
        .map(|(i, a)| {
            assert!((a.len() as u64) < SLOT);
            (i as u64 * SLOT, &a[..])
        })
        .collect();
    let disk = Disk::with_bytes("hostile_images", 16, &writes).unwrap();
    let mut vm = Vm::boot(
        VmOptions::new("hostile_images")
            .unwrap()
            .drive(disk.drive()),
    )
    .expect("QEMU starts");
    vm.expect(READY, BOOT).unwrap();

    let mut sh = |cmd: &str| -> (String, i32) {
        let (out, rc) = vm.sh(cmd, BOOT).unwrap();
        (out.trim().to_string(), rc)
    };
    let (out, rc) = sh(&format!(
        "mkdir -p {c}/b && echo canary > {c}/file && chmod 751 {c}/b && chmod 604 {c}/file \
         && chmod 753 {c} && touch -d '2009-02-13 23:31:30' {c}/b {c}/file {c} /etc/hostname"
    ));
    assert_eq!(rc, 0, "{out}");
    let (before, rc) = sh(STAT);
    assert_eq!(rc, 0, "{before}");
    assert!(before.contains("/tmp/canary/b directory 751"), "{before}");

    for (i, ((tag, _, refused), archive)) in cases.iter().zip(&archives).enumerate() {
        let (out, rc) = sh(&format!(
            "dd if=/dev/vda bs=1M skip={i} count=1 2>/dev/null | head -c {} > /tmp/{i}.tar \
             && system-docker load -i /tmp/{i}.tar",
            archive.len()
        ));
        match refused {
            None => {
                assert_eq!(rc, 0, "{tag}: {out}");
                assert!(
                    out.contains(&format!("Loaded image: {tag}")),
                    "{tag}: {out}"
                );
            }
            Some(entry) => {
                assert_eq!(rc, 1, "{tag} must be refused: {out}");
                assert!(
                    out.contains(&format!("entry {entry:?}")),
                    "{tag}: the error names the entry {entry:?}: {out}"
                );
            }
        }
        let (after, _) = sh(STAT);
        assert_eq!(after, before, "{tag}: the host's canary changed");
    }
    let (images, _) = sh("system-docker images");
    assert!(images.contains("evil/swap"), "{images}");
    assert!(!images.contains("evil/through"), "{images}");
}
