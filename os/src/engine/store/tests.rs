//! Tests of the image store: images are built here (tar layers, OCI layouts, `docker save`
//! archives), loaded into a temporary store, and the unpacked result is checked on disk. One test
//! uses the local Docker Engine, if one answers, to make a real `docker save` archive.

use super::unpack::{unpack_layer, LayerSource, OPAQUE_XATTR};
use super::*;
use serde_json::json;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use tar::{EntryType, Header};

const MTIME: u64 = 1_600_000_000;

// ---------------------------------------------------------------------------------------------
// Building layers and images.

/// A layer tar under construction.
struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    /// An entry with a raw name (no validation: traversal tests need `..`).
    fn raw(
        mut self,
        kind: EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
        (mode, uid, gid, mtime): (u32, u64, u64, u64),
    ) -> Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let slot = &mut h.as_old_mut().name;
        slot[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        self.raw(EntryType::Directory, name, None, b"", (mode, 0, 0, MTIME))
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.raw(
            EntryType::Regular,
            name,
            None,
            data.as_bytes(),
            (0o644, 0, 0, MTIME),
        )
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(
            EntryType::Symlink,
            name,
            Some(target),
            b"",
            (0o777, 0, 0, MTIME),
        )
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(
            EntryType::Link,
            name,
            Some(target),
            b"",
            (0o644, 0, 0, MTIME),
        )
    }

    fn chardev(mut self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_path(name).unwrap();
        h.set_size(0);
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.0.append(&h, &b""[..]).unwrap();
        self
    }

    /// Apply `f` only if `cond` (entries the environment cannot unpack are left out).
    fn when(self, cond: bool, f: impl FnOnce(Self) -> Self) -> Self {
        if cond {
            f(self)
        } else {
            self
        }
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// What this environment lets an unpack do: device nodes (whiteouts are 0/0 character devices)
/// and `trusted.*` xattrs (opaque directories) need root with CAP_MKNOD / CAP_SYS_ADMIN and a
/// file system with xattrs. Where one is missing, fixtures leave those entries out and the tests
/// skip those assertions, with a note.
struct Caps {
    mknod: bool,
    trusted_xattr: bool,
}

fn caps() -> &'static Caps {
    static CAPS: std::sync::OnceLock<Caps> = std::sync::OnceLock::new();
    CAPS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let caps = Caps {
            mknod: sys::mknod(&dir.path().join("dev"), libc::S_IFCHR, 0, 0).is_ok(),
            trusted_xattr: sys::lsetxattr(dir.path(), "trusted.ros-probe", b"1").is_ok(),
        };
        if !caps.mknod {
            eprintln!("note: mknod is not permitted here: whiteout and device assertions skipped");
        }
        if !caps.trusted_xattr {
            eprintln!("note: trusted.* xattrs cannot be set here: opaque-dir assertions skipped");
        }
        caps
    })
}

fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::stream::encode_all(tar, 3).unwrap(),
    }
}

fn media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

#[derive(Clone)]
struct TestLayer {
    tar: Vec<u8>,
    blob: Vec<u8>,
    media_type: String,
}

impl TestLayer {
    fn new(tar: Vec<u8>, c: Compression) -> Self {
        TestLayer {
            blob: compress(&tar, c),
            tar,
            media_type: media_type(c).to_string(),
        }
    }
    fn diff_id(&self) -> Digest {
        Digest::of(&self.tar)
    }
    fn digest(&self) -> Digest {
        Digest::of(&self.blob)
    }
}

#[derive(Clone)]
struct TestImage {
    config: Vec<u8>,
    layers: Vec<TestLayer>,
}

impl TestImage {
    fn new(layers: Vec<TestLayer>) -> Self {
        Self::with_arch(layers, &oci_spec::image::Arch::default().to_string())
    }

    fn with_arch(layers: Vec<TestLayer>, arch: &str) -> Self {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id().to_string()).collect();
        let config = json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": arch,
            "os": "linux",
            "config": {
                "Entrypoint": ["/bin/tool"],
                "Cmd": ["--serve", "80"],
                "Env": ["PATH=/usr/bin:/bin", "MODE=test"],
                "WorkingDir": "/srv",
                "User": "1000:50",
                "Labels": {"org.example.role": "fixture"},
                "ExposedPorts": {"80/tcp": {}},
                // Docker writes fields the OCI spec does not have: they must be ignored.
                "Hostname": "",
                "AttachStdin": false
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "container_config": {"Hostname": "x"}
        });
        TestImage {
            config: serde_json::to_vec(&config).unwrap(),
            layers,
        }
    }

    fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    fn manifest(&self) -> Vec<u8> {
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| json!({"mediaType": l.media_type, "digest": l.digest().to_string(), "size": l.blob.len()}))
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.config_digest().to_string(),
                "size": self.config.len()
            },
            "layers": layers
        }))
        .unwrap()
    }

    fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest())
    }
}

fn write_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.hex()), bytes).unwrap();
    d
}

fn write_image_blobs(layout: &Path, image: &TestImage) -> serde_json::Value {
    write_blob(layout, &image.config);
    for l in &image.layers {
        write_blob(layout, &l.blob);
    }
    let manifest = image.manifest();
    let d = write_blob(layout, &manifest);
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": d.to_string(),
        "size": manifest.len(),
    })
}

/// An OCI image layout directory; each image with its `ref.name` annotation, if any.
fn write_oci_layout(layout: &Path, images: &[(&TestImage, Option<&str>)]) {
    fs::create_dir_all(layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let manifests: Vec<_> = images
        .iter()
        .map(|(image, name)| {
            let mut desc = write_image_blobs(layout, image);
            if let Some(n) = name {
                desc["annotations"] = json!({"org.opencontainers.image.ref.name": n});
            }
            desc
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// A classic `docker save` directory (Docker ≤ 24): `<id>.json`, `<v1id>/layer.tar`, identical
/// layers linked to the first copy as Docker does.
fn write_docker_save_classic(dir: &Path, images: &[(&TestImage, &[&str])]) {
    fs::create_dir_all(dir).unwrap();
    let mut manifest = Vec::new();
    let mut written: Vec<(Digest, String)> = Vec::new();
    for (image, tags) in images {
        let config_name = format!("{}.json", image.config_digest().hex());
        fs::write(dir.join(&config_name), &image.config).unwrap();
        let mut layers = Vec::new();
        for (i, l) in image.layers.iter().enumerate() {
            // A v1 layer ID: not a digest of anything the store can check.
            let v1 = Digest::of(format!("{}{i}{}", image.config_digest(), l.diff_id()).as_bytes());
            let name = format!("{}/layer.tar", v1.hex());
            fs::create_dir_all(dir.join(v1.hex())).unwrap();
            match written.iter().find(|(d, _)| *d == l.diff_id()) {
                Some((_, first)) => {
                    std::os::unix::fs::symlink(format!("../{first}"), dir.join(&name)).unwrap()
                }
                None => {
                    fs::write(dir.join(&name), &l.tar).unwrap();
                    written.push((l.diff_id(), name.clone()));
                }
            }
            layers.push(name);
        }
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": layers}));
    }
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
}

/// A tar file of a directory, symlinks kept as symlinks.
fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

fn base_layer(c: Compression) -> TestLayer {
    let tar = TarBuilder::new()
        .dir("bin/", 0o755)
        .raw(
            EntryType::Regular,
            "bin/tool",
            None,
            b"#!tool\n",
            (0o755, 1000, 50, MTIME + 7),
        )
        .hardlink("bin/tool2", "bin/tool")
        .symlink("bin/sh", "tool")
        .symlink("bin/abs", "/etc/hostname")
        .raw(
            EntryType::Regular,
            "bin/suid",
            None,
            b"s",
            (0o4755, 0, 0, MTIME),
        )
        .dir("etc/", 0o755)
        .file("etc/hostname", "base\n")
        .file("etc/motd", "hello\n")
        .raw(
            EntryType::Directory,
            "private/",
            None,
            b"",
            (0o700, 1000, 50, MTIME + 3),
        )
        .file("private/key", "k")
        .dir("opt/", 0o755)
        .file("opt/old", "old")
        .when(caps().mknod, |t| t.chardev("dev/null", 1, 3))
        .finish();
    TestLayer::new(tar, c)
}

fn top_layer(c: Compression) -> TestLayer {
    let tar = TarBuilder::new()
        .file("etc/hostname", "top\n")
        .when(caps().mknod, |t| t.file("etc/.wh.motd", ""))
        .when(caps().trusted_xattr, |t| t.file("opt/.wh..wh..opq", ""))
        .file("opt/new", "new")
        .finish();
    TestLayer::new(tar, c)
}

fn store_in(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("store")).unwrap()
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

// ---------------------------------------------------------------------------------------------
// Loading OCI layouts.

#[test]
fn an_oci_layout_loads_with_files_modes_links_devices_and_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let image = TestImage::new(vec![
        base_layer(Compression::Gzip),
        top_layer(Compression::Zstd),
    ]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("docker.io/example/app:1.0"))]);

    let loaded = store.load(&layout, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!((loaded[0].layers_unpacked, loaded[0].layers_reused), (2, 0));
    let img = &loaded[0].image;
    assert_eq!(img.names, ["example/app:1.0"]);
    assert_eq!(img.id, image.config_digest());
    assert_eq!(img.manifest, image.manifest_digest());
    assert_eq!(img.created.as_deref(), Some("2024-01-02T03:04:05Z"));

    // Every way of naming it finds it.
    for q in [
        "example/app:1.0".to_string(),
        "docker.io/example/app:1.0".to_string(),
        img.id.to_string(),
        img.id.short().to_string(),
        img.manifest.to_string(),
        format!("example/app@{}", img.manifest),
    ] {
        assert_eq!(store.resolve(&q).unwrap().manifest, img.manifest, "{q}");
    }
    assert!(matches!(
        store.resolve("example/app:2.0"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list().unwrap(), vec![img.clone()]);

    let dirs = store.lower_dirs(img).unwrap();
    let (top, base) = (&dirs[0], &dirs[1]);
    assert_eq!(dirs.len(), 2);
    assert_eq!(*top, store.layer_diff_dir(&image.layers[1].diff_id()));
    assert_eq!(*base, store.layer_diff_dir(&image.layers[0].diff_id()));

    // Base layer: contents, modes, ownership, mtimes, links, devices.
    assert_eq!(read(base.join("etc/hostname")), "base\n");
    let tool = fs::symlink_metadata(base.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o755);
    if sys::is_root() {
        assert_eq!((tool.uid(), tool.gid()), (1000, 50));
    }
    assert_eq!(tool.mtime(), (MTIME + 7) as i64);
    let tool2 = fs::symlink_metadata(base.join("bin/tool2")).unwrap();
    assert_eq!(tool2.ino(), tool.ino(), "hard link shares the inode");
    assert_eq!(
        fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::read_link(base.join("bin/abs")).unwrap(),
        Path::new("/etc/hostname"),
        "absolute symlink targets are kept as they are"
    );
    assert_eq!(
        fs::symlink_metadata(base.join("bin/sh")).unwrap().mtime(),
        MTIME as i64
    );
    let suid = fs::metadata(base.join("bin/suid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid bit kept");
    let private = fs::metadata(base.join("private")).unwrap();
    assert_eq!(private.mode() & 0o7777, 0o700);
    if sys::is_root() {
        assert_eq!((private.uid(), private.gid()), (1000, 50));
    }
    assert_eq!(
        private.mtime(),
        (MTIME + 3) as i64,
        "dir mtime set after its children"
    );
    if caps().mknod {
        let null = fs::symlink_metadata(base.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        assert_eq!(
            fs::metadata(base.join("dev")).unwrap().mode() & 0o7777,
            0o755,
            "implicit parent directories are 0755"
        );
    }

    // Top layer: the whiteout is a 0/0 character device, the opaque dir has the xattr.
    assert_eq!(read(top.join("etc/hostname")), "top\n");
    if caps().mknod {
        let wh = fs::symlink_metadata(top.join("etc/motd")).unwrap();
        assert!(wh.file_type().is_char_device(), "whiteout is a char device");
        assert_eq!(wh.rdev(), 0);
        assert!(!top.join("etc/.wh.motd").exists());
    }
    assert!(!top.join("opt/.wh..wh..opq").exists());
    assert_eq!(read(top.join("opt/new")), "new");
    if caps().trusted_xattr {
        assert_eq!(
            sys::lgetxattr(&top.join("opt"), OPAQUE_XATTR).unwrap(),
            Some(b"y".to_vec())
        );
        assert_eq!(
            sys::lgetxattr(&top.join("etc"), OPAQUE_XATTR).unwrap(),
            None
        );
    }

    let cfg = store.image_config(img).unwrap();
    assert_eq!(cfg.entrypoint, ["/bin/tool"]);
    assert_eq!(cfg.cmd, ["--serve", "80"]);
    assert_eq!(cfg.env, ["PATH=/usr/bin:/bin", "MODE=test"]);
    assert_eq!(cfg.working_dir.as_deref(), Some("/srv"));
    assert_eq!(cfg.user.as_deref(), Some("1000:50"));
    assert_eq!(cfg.labels["org.example.role"], "fixture");
    assert_eq!(cfg.exposed_ports, ["80/tcp"]);
    assert_eq!(cfg.os, "linux");

    // The index is a readable JSON file, written without leftovers.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store.root().join("repositories.json")).unwrap()).unwrap();
    assert_eq!(index["names"]["example/app:1.0"], img.manifest.to_string());
    let leftovers: Vec<_> = fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn plain_gzip_and_zstd_layers_load_even_when_the_media_type_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let mut layers = Vec::new();
    for (i, c) in [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let tar = TarBuilder::new()
            .file(&format!("f{i}"), &format!("{c:?}"))
            .finish();
        layers.push(TestLayer::new(tar, c));
    }
    // A zstd blob declared as gzip, and a gzip blob declared as plain tar: the bytes decide.
    let mut liar = TestLayer::new(
        TarBuilder::new().file("liar1", "z").finish(),
        Compression::Zstd,
    );
    liar.media_type = media_type(Compression::Gzip).into();
    layers.push(liar);
    let mut liar = TestLayer::new(
        TarBuilder::new().file("liar2", "g").finish(),
        Compression::Gzip,
    );
    liar.media_type = media_type(Compression::None).into();
    layers.push(liar);
    let image = TestImage::new(layers);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("mixed:1"))]);
    let loaded = store.load(&layout, &LoadOptions::default()).unwrap();
    let dirs = store.lower_dirs(&loaded[0].image).unwrap();
    assert_eq!(dirs.len(), 5);
    assert_eq!(read(dirs[4].join("f0")), "None");
    assert_eq!(read(dirs[3].join("f1")), "Gzip");
    assert_eq!(read(dirs[2].join("f2")), "Zstd");
    assert_eq!(read(dirs[1].join("liar1")), "z");
    assert_eq!(read(dirs[0].join("liar2")), "g");
}

#[test]
fn an_oci_layout_loads_from_a_tar_and_a_gzipped_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let image = TestImage::new(vec![base_layer(Compression::Gzip)]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("tarred:1"))]);
    let tar = tmp.path().join("image.tar");
    tar_dir(&layout, &tar);
    let tgz = tmp.path().join("image.tar.gz");
    fs::write(&tgz, compress(&fs::read(&tar).unwrap(), Compression::Gzip)).unwrap();

    for (i, input) in [&tar, &tgz].into_iter().enumerate() {
        let store = Store::open(tmp.path().join(format!("store{i}"))).unwrap();
        let loaded = store.load(input, &LoadOptions::default()).unwrap();
        assert_eq!(loaded[0].image.names, ["tarred:1"]);
        let dirs = store.lower_dirs(&loaded[0].image).unwrap();
        assert_eq!(read(dirs[0].join("etc/motd")), "hello\n");
        let scratch: Vec<_> = fs::read_dir(store.root().join("tmp")).unwrap().collect();
        assert!(scratch.is_empty(), "the decompressed copy is removed");
    }
}

#[test]
fn a_multi_platform_index_loads_this_machines_image_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let host = oci_spec::image::Arch::default().to_string();
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let mine = TestImage::with_arch(
        vec![TestLayer::new(
            TarBuilder::new().file("mine", "1").finish(),
            Compression::Gzip,
        )],
        &host,
    );
    let theirs = TestImage::with_arch(
        vec![TestLayer::new(
            TarBuilder::new().file("theirs", "1").finish(),
            Compression::Gzip,
        )],
        other,
    );
    let layout = tmp.path().join("layout");
    fs::create_dir_all(&layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut d_mine = write_image_blobs(&layout, &mine);
    d_mine["platform"] = json!({"architecture": host, "os": "linux"});
    // The other platform's blobs are not even in the layout: they must not be needed.
    let mut d_theirs = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": theirs.manifest_digest().to_string(),
        "size": theirs.manifest().len(),
    });
    d_theirs["platform"] = json!({"architecture": other, "os": "linux"});
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [d_theirs, d_mine],
    }))
    .unwrap();
    let nested_digest = write_blob(&layout, &nested);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": nested_digest.to_string(),
        "size": nested.len(),
        "annotations": {"io.containerd.image.name": "docker.io/library/multi:latest",
                        "org.opencontainers.image.ref.name": "latest"},
    }]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let loaded = store.load(&layout, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].image.names, ["multi:latest"]);
    assert_eq!(loaded[0].image.id, mine.config_digest());
    assert_eq!(
        store.image_config(&loaded[0].image).unwrap().architecture,
        host
    );
}

#[test]
fn a_tag_only_ref_name_takes_the_given_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let image = TestImage::new(vec![top_layer(Compression::Gzip)]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("1.0"))]);
    let opts = LoadOptions {
        name: Some("example/tool".into()),
    };
    let loaded = store.load(&layout, &opts).unwrap();
    assert_eq!(loaded[0].image.names, ["example/tool:1.0"]);

    // Without a name it loads unnamed, reachable by ID.
    let store2 = Store::open(tmp.path().join("store2")).unwrap();
    let loaded = store2.load(&layout, &LoadOptions::default()).unwrap();
    assert!(loaded[0].image.names.is_empty());
    assert_eq!(
        store2.resolve(loaded[0].image.id.short()).unwrap(),
        loaded[0].image
    );
}

// ---------------------------------------------------------------------------------------------
// docker save archives.

#[test]
fn a_classic_docker_save_tar_loads_with_linked_shared_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let base = base_layer(Compression::None);
    let a = TestImage::new(vec![
        base.clone(),
        TestLayer::new(TarBuilder::new().file("a", "A").finish(), Compression::None),
    ]);
    let b = TestImage::new(vec![
        base,
        TestLayer::new(TarBuilder::new().file("b", "B").finish(), Compression::None),
    ]);
    let dir = tmp.path().join("save");
    write_docker_save_classic(
        &dir,
        &[(&a, &["app-a:latest", "app-a:1"]), (&b, &["app-b:2"])],
    );
    let tar = tmp.path().join("save.tar");
    tar_dir(&dir, &tar);

    let loaded = store.load(&tar, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].image.names, ["app-a:1", "app-a:latest"]);
    assert_eq!(loaded[1].image.names, ["app-b:2"]);
    assert_eq!((loaded[0].layers_unpacked, loaded[0].layers_reused), (2, 0));
    assert_eq!((loaded[1].layers_unpacked, loaded[1].layers_reused), (1, 1));
    assert_eq!(loaded[0].image.id, a.config_digest());
    let b_dirs = store
        .lower_dirs(&store.resolve("app-b:2").unwrap())
        .unwrap();
    assert_eq!(read(b_dirs[0].join("b")), "B");
    assert_eq!(read(b_dirs[1].join("etc/hostname")), "base\n");
    assert_eq!(
        store.image_config(&loaded[1].image).unwrap().cmd,
        ["--serve", "80"]
    );

    // Loading the same archive again changes nothing and unpacks nothing.
    let again = store.load(&tar, &LoadOptions::default()).unwrap();
    assert_eq!(again[0].image.manifest, loaded[0].image.manifest);
    assert_eq!(again[0].layers_unpacked + again[1].layers_unpacked, 0);
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn a_docker_25_save_loads_by_its_oci_layout_with_repo_tags_as_names() {
    let tmp = tempfile::tempdir().unwrap();
    let image = TestImage::new(vec![
        base_layer(Compression::None),
        top_layer(Compression::None),
    ]);
    let dir = tmp.path().join("save");
    write_oci_layout(&dir, &[(&image, None)]);
    let layers: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", l.digest().hex()))
        .collect();
    let manifest = json!([{
        "Config": format!("blobs/sha256/{}", image.config_digest().hex()),
        "RepoTags": ["new-docker:25"],
        "Layers": layers,
    }]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();

    let store = store_in(&tmp);
    let loaded = store.load(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(loaded[0].image.names, ["new-docker:25"]);
    assert_eq!(
        loaded[0].image.manifest,
        image.manifest_digest(),
        "the real manifest is kept"
    );

    // Without the OCI files, manifest.json alone still loads it (blob names are digests).
    fs::remove_file(dir.join("oci-layout")).unwrap();
    let store2 = Store::open(tmp.path().join("store2")).unwrap();
    let loaded = store2.load(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(loaded[0].image.names, ["new-docker:25"]);
    assert_eq!(loaded[0].image.id, image.config_digest());
    let dirs = store2.lower_dirs(&loaded[0].image).unwrap();
    assert_eq!(read(dirs[0].join("opt/new")), "new");
}

/// Run `docker` with arguments; `None` if it cannot run or fails.
fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn a_real_docker_save_archive_loads() {
    if docker(&["image", "ls"]).is_none() {
        eprintln!("note: no docker CLI or no daemon answering; skipping the real docker save test");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs.tar");
    fs::write(
        &rootfs,
        TarBuilder::new()
            .dir("etc/", 0o755)
            .file("etc/greeting", "hello from docker\n")
            .finish(),
    )
    .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("ros-store-test:{}-{nanos}", std::process::id());
    struct Untag(String);
    impl Drop for Untag {
        fn drop(&mut self) {
            let _ = docker(&["rmi", "-f", &self.0]);
        }
    }
    let rootfs_arg = rootfs.to_string_lossy().into_owned();
    docker(&[
        "import",
        "--change",
        r#"CMD ["/bin/greet"]"#,
        "--change",
        "ENV GREETING=hi",
        &rootfs_arg,
        &tag,
    ])
    .expect("docker import");
    let _untag = Untag(tag.clone());
    let saved = tmp.path().join("saved.tar");
    let saved_arg = saved.to_string_lossy().into_owned();
    docker(&["save", "-o", &saved_arg, &tag]).expect("docker save");
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).expect("inspect");

    let store = store_in(&tmp);
    let loaded = store.load(&saved, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 1);
    let img = store.resolve(&tag).unwrap();
    assert_eq!(img.names, std::slice::from_ref(&tag));
    assert_eq!(img.id.to_string(), id, "the image ID is Docker's");
    let dirs = store.lower_dirs(&img).unwrap();
    assert_eq!(dirs.len(), 1);
    assert_eq!(read(dirs[0].join("etc/greeting")), "hello from docker\n");
    let cfg = store.image_config(&img).unwrap();
    assert_eq!(cfg.cmd, ["/bin/greet"]);
    assert!(
        cfg.env.contains(&"GREETING=hi".to_string()),
        "{:?}",
        cfg.env
    );
}

// ---------------------------------------------------------------------------------------------
// Verification.

fn assert_nothing_indexed(store: &Store) {
    assert!(store.list().unwrap().is_empty());
    let layers: Vec<_> = fs::read_dir(store.root().join("layers")).unwrap().collect();
    assert!(layers.is_empty(), "no layer directory is left: {layers:?}");
}

#[test]
fn a_tampered_blob_is_rejected_naming_both_digests_and_nothing_is_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let image = TestImage::new(vec![base_layer(Compression::Gzip)]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("tampered:1"))]);
    let layer = &image.layers[0];
    let blob_path = layout.join("blobs/sha256").join(layer.digest().hex());
    let mut bytes = layer.blob.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // same size, other content
    fs::write(&blob_path, &bytes).unwrap();

    let err = store.load(&layout, &LoadOptions::default()).unwrap_err();
    match &err {
        StoreError::DigestMismatch {
            blob,
            expected,
            actual,
        } => {
            assert!(blob.contains(layer.digest().hex()), "{blob}");
            assert_eq!(*expected, layer.digest());
            assert_eq!(*actual, Digest::of(&bytes));
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&layer.digest().to_string()) && msg.contains(&Digest::of(&bytes).to_string()),
        "{msg}"
    );
    assert_nothing_indexed(&store);
    assert!(!store.blob_path(&layer.digest()).exists());

    // A blob of the wrong size is refused too.
    bytes.push(0);
    fs::write(&blob_path, &bytes).unwrap();
    let err = store.load(&layout, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    assert_nothing_indexed(&store);
}

#[test]
fn a_wrong_diff_id_is_rejected_and_the_layer_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let good = base_layer(Compression::Gzip);
    let mut image = TestImage::new(vec![good.clone()]);
    // The config claims another layer's diff_id.
    let wrong = Digest::of(b"not this layer");
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
    config["rootfs"]["diff_ids"] = json!([wrong.to_string()]);
    image.config = serde_json::to_vec(&config).unwrap();
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("wrong:1"))]);

    let err = store.load(&layout, &LoadOptions::default()).unwrap_err();
    match err {
        StoreError::DiffIdMismatch {
            layer,
            expected,
            actual,
        } => {
            assert!(layer.contains(&good.digest().to_string()), "{layer}");
            assert_eq!(expected, wrong);
            assert_eq!(actual, good.diff_id());
        }
        other => panic!("expected a diff_id mismatch, got {other}"),
    }
    assert_nothing_indexed(&store);
}

fn unpack_tar(tar: &[u8], dest: &Path) -> Result<UnpackStats> {
    fs::create_dir_all(dest).unwrap();
    let what = LayerSource {
        layer: "test",
        src: Path::new("test.tar"),
        media_type: None,
    };
    unpack_layer(tar, &what, dest).map(|(_, s)| s)
}

#[test]
fn path_traversal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", TarBuilder::new().file("../escaped", "x").finish()),
        (
            "inner dotdot",
            TarBuilder::new().file("a/../../escaped", "x").finish(),
        ),
        (
            "through a symlink",
            TarBuilder::new()
                .symlink("link", tmp.path().to_str().unwrap())
                .file("link/escaped", "x")
                .finish(),
        ),
        (
            "through a relative symlink",
            TarBuilder::new()
                .symlink("up", "..")
                .file("up/escaped", "x")
                .finish(),
        ),
        (
            "hard link out",
            TarBuilder::new().hardlink("h", "../escaped").finish(),
        ),
        (
            "whiteout of ..",
            TarBuilder::new()
                .dir("d/", 0o755)
                .file("d/.wh...", "")
                .finish(),
        ),
    ];
    for (i, (label, tar)) in cases.into_iter().enumerate() {
        let dest = tmp.path().join(format!("case{i}/layer"));
        let err = unpack_tar(&tar, &dest).unwrap_err();
        assert!(
            matches!(err, StoreError::PathTraversal { .. }),
            "{label}: {err}"
        );
        assert!(!tmp.path().join("escaped").exists(), "{label}");
        assert!(
            !tmp.path().join(format!("case{i}/escaped")).exists(),
            "{label}"
        );
    }

    // An absolute name lands inside the layer.
    let dest = tmp.path().join("abs/layer");
    unpack_tar(&TarBuilder::new().file("/etc/inside", "x").finish(), &dest).unwrap();
    assert_eq!(read(dest.join("etc/inside")), "x");

    // Through a full load: refused, typed, nothing indexed.
    let store = store_in(&tmp);
    let evil = TestLayer::new(
        TarBuilder::new().file("../../evil", "x").finish(),
        Compression::Gzip,
    );
    let image = TestImage::new(vec![evil]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("evil:1"))]);
    let err = store.load(&layout, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::PathTraversal { .. }), "{err}");
    assert_nothing_indexed(&store);
}

#[test]
fn within_a_layer_a_file_wins_over_its_whiteout_and_later_entries_replace_earlier_ones() {
    if !caps().mknod {
        return; // whiteouts are device nodes: noted in caps()
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("layer");
    let tar = TarBuilder::new()
        .file(".wh.kept", "")
        .file("kept", "real")
        .file("twice", "first")
        .file("twice", "second")
        .file("gone/.wh.x", "")
        .finish();
    let stats = unpack_tar(&tar, &dest).unwrap();
    assert_eq!(read(dest.join("kept")), "real");
    assert_eq!(read(dest.join("twice")), "second");
    assert!(fs::symlink_metadata(dest.join("gone/x"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(stats.whiteouts, 2);
    assert_eq!(stats.tar_bytes, tar.len() as u64);
}

#[test]
fn unsupported_compression_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_tar(b"BZh91AY&SY", &tmp.path().join("l")).unwrap_err();
    assert!(
        matches!(err, StoreError::BadLayer { ref reason, .. } if reason.contains("bzip2")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sharing, crash recovery, names, removal.

#[test]
fn a_layer_shared_by_a_second_image_is_not_unpacked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let base = base_layer(Compression::Gzip);
    let a = TestImage::new(vec![base.clone(), top_layer(Compression::Gzip)]);
    let b = TestImage::new(vec![
        base.clone(),
        TestLayer::new(
            TarBuilder::new().file("only-b", "b").finish(),
            Compression::Zstd,
        ),
    ]);
    let (la, lb) = (tmp.path().join("a"), tmp.path().join("b"));
    write_oci_layout(&la, &[(&a, Some("a:1"))]);
    write_oci_layout(&lb, &[(&b, Some("b:1"))]);

    let first = store.load(&la, &LoadOptions::default()).unwrap();
    assert_eq!(first[0].layers_unpacked, 2);
    let base_dir = store.layer_diff_dir(&base.diff_id());
    // A file the unpacker would never write: it survives only if the layer is not redone.
    fs::write(base_dir.join("sentinel"), "still here").unwrap();
    let marker = store.layer_dir(&base.diff_id()).join("complete");
    let marker_ino = fs::metadata(&marker).unwrap().ino();

    let second = store.load(&lb, &LoadOptions::default()).unwrap();
    assert_eq!((second[0].layers_unpacked, second[0].layers_reused), (1, 1));
    assert_eq!(read(base_dir.join("sentinel")), "still here");
    assert_eq!(fs::metadata(&marker).unwrap().ino(), marker_ino);
    let (da, db) = (
        store.lower_dirs(&first[0].image).unwrap(),
        store.lower_dirs(&second[0].image).unwrap(),
    );
    assert_eq!(da[1], db[1], "both images use the same base directory");
}

#[test]
fn an_interrupted_unpack_is_redone_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let base = base_layer(Compression::Gzip);
    let image = TestImage::new(vec![base.clone()]);
    // A crash mid-unpack left a layer directory without its completion marker.
    let half = store.layer_diff_dir(&base.diff_id());
    fs::create_dir_all(half.join("etc")).unwrap();
    fs::write(half.join("etc/hostname"), "half-writt").unwrap();
    fs::write(half.join("junk"), "x").unwrap();
    let img_tmp = Image {
        repo_digests: vec![],
        id: image.config_digest(),
        manifest: image.manifest_digest(),
        names: vec![],
        layers: vec![Layer {
            blob: base.digest(),
            diff_id: base.diff_id(),
            media_type: base.media_type.clone(),
            size: base.blob.len() as u64,
        }],
        created: None,
    };
    assert!(matches!(
        store.lower_dirs(&img_tmp),
        Err(StoreError::LayerMissing { .. })
    ));

    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("redo:1"))]);
    let loaded = store.load(&layout, &LoadOptions::default()).unwrap();
    assert_eq!((loaded[0].layers_unpacked, loaded[0].layers_reused), (1, 0));
    assert!(!half.join("junk").exists());
    assert_eq!(read(half.join("etc/hostname")), "base\n");
    assert!(store.has_layer(&base.diff_id()));
}

#[test]
fn a_name_moves_to_a_newer_image_and_the_old_one_stays_by_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let v1 = TestImage::new(vec![TestLayer::new(
        TarBuilder::new().file("v", "1").finish(),
        Compression::Gzip,
    )]);
    let v2 = TestImage::new(vec![TestLayer::new(
        TarBuilder::new().file("v", "2").finish(),
        Compression::Gzip,
    )]);
    let (l1, l2) = (tmp.path().join("v1"), tmp.path().join("v2"));
    write_oci_layout(&l1, &[(&v1, Some("app:latest"))]);
    write_oci_layout(&l2, &[(&v2, Some("app:latest"))]);
    store.load(&l1, &LoadOptions::default()).unwrap();
    store.load(&l2, &LoadOptions::default()).unwrap();

    assert_eq!(store.resolve("app").unwrap().id, v2.config_digest());
    let old = store.resolve(v1.config_digest().hex()).unwrap();
    assert!(old.names.is_empty(), "dangling, as in Docker");
    store.tag(v1.config_digest().short(), "app:old").unwrap();
    assert_eq!(store.resolve("app:old").unwrap().id, v1.config_digest());
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn remove_then_gc_reclaims_only_what_no_image_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let base = base_layer(Compression::Gzip);
    let only_a = top_layer(Compression::Gzip);
    let only_b = TestLayer::new(TarBuilder::new().file("b", "b").finish(), Compression::Gzip);
    let a = TestImage::new(vec![base.clone(), only_a.clone()]);
    let b = TestImage::new(vec![base.clone(), only_b.clone()]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&a, Some("a:1")), (&b, Some("b:1"))]);
    store.load(&layout, &LoadOptions::default()).unwrap();
    store.tag("a:1", "a:also").unwrap();
    // A leftover of an interrupted load.
    fs::write(store.root().join("tmp/load-stale.tar"), "x").unwrap();

    // One of two names: the image stays.
    let r = store.remove("a:1").unwrap();
    assert_eq!(
        (r.untagged.as_slice(), r.deleted.as_ref()),
        (&["a:1".to_string()][..], None)
    );
    let r = store.remove("a:also").unwrap();
    assert_eq!(r.deleted, Some(a.manifest_digest()));
    assert!(matches!(
        store.resolve("a:also"),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.has_layer(&only_a.diff_id()),
        "remove alone deletes no data"
    );

    let report = store.gc().unwrap();
    assert_eq!(report.layers_removed, 1);
    assert_eq!(
        report.blobs_removed, 3,
        "a's manifest, config and top layer blob"
    );
    assert_eq!(report.leftovers_removed, 1);
    assert!(!store.has_layer(&only_a.diff_id()));
    assert!(store.has_layer(&base.diff_id()));
    let b_img = store.resolve("b:1").unwrap();
    assert_eq!(store.lower_dirs(&b_img).unwrap().len(), 2);
    assert!(store.blob_path(&base.digest()).exists());

    // By ID: the image and its names go; gc then empties the store.
    let r = store.remove(b_img.id.short()).unwrap();
    assert_eq!(r.untagged, ["b:1"]);
    assert_eq!(store.gc().unwrap().layers_removed, 2);
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
}

#[test]
fn ambiguous_prefixes_and_bad_inputs_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&tmp);
    let mut images = Vec::new();
    for i in 0..20 {
        images.push(TestImage::new(vec![TestLayer::new(
            TarBuilder::new().file("n", &i.to_string()).finish(),
            Compression::None,
        )]));
    }
    let layout = tmp.path().join("layout");
    let refs: Vec<(&TestImage, Option<&str>)> = images.iter().map(|i| (i, None)).collect();
    write_oci_layout(&layout, &refs);
    store.load(&layout, &LoadOptions::default()).unwrap();
    // 20 images: at least two IDs share a first hex digit.
    let err = (0..16)
        .map(|d| format!("{d:x}"))
        .find_map(|p| match store.resolve(&p) {
            Err(e @ StoreError::Ambiguous { .. }) => Some(e),
            _ => None,
        })
        .expect("some one-digit prefix is ambiguous");
    assert!(err.to_string().contains("ambiguous"));

    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        store.load(&empty, &LoadOptions::default()),
        Err(StoreError::BadArchive { .. })
    ));
    assert!(matches!(
        store.load(&tmp.path().join("missing"), &LoadOptions::default()),
        Err(StoreError::Io { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Hostile layers: every entry is written through the layer root's descriptor, so none of these
// reaches the canary directory beside the layer, whatever symlinks the layer plants first.

/// Everything about a tree that an escaping write would change: per path, its kind, mode,
/// owner, link count, mtime (to the nanosecond) and content or symlink target.
fn snapshot(root: &Path) -> Vec<(String, u32, u32, u64, i64, i64, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let body = if m.file_type().is_symlink() {
            fs::read_link(&p).unwrap().display().to_string()
        } else if m.is_file() {
            read(&p)
        } else {
            String::new()
        };
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.push((
            rel,
            m.mode(),
            m.uid(),
            m.nlink(),
            m.mtime(),
            m.mtime_nsec(),
            body,
        ));
    }
    out.sort();
    out
}

/// A canary tree outside any layer: a file, a subdirectory `b` and a nested file, with odd
/// modes and fixed times so that any chmod, chown, utimes or write through an escape shows.
fn canary(at: &Path) -> Vec<(String, u32, u32, u64, i64, i64, String)> {
    fs::create_dir_all(at.join("b")).unwrap();
    fs::write(at.join("file"), "canary").unwrap();
    fs::write(at.join("b/inner"), "inner").unwrap();
    for (p, mode) in [
        ("b/inner", 0o640),
        ("file", 0o604),
        ("b", 0o751),
        ("", 0o753),
    ] {
        let p = at.join(p);
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        sys::set_mtime_nofollow(&p, 1_234_567_890).unwrap();
    }
    snapshot(at)
}

#[test]
fn hostile_layers_are_refused_or_contained_and_the_canary_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let canary_dir = tmp.path().join("canary");
    let before = canary(&canary_dir);
    let c = canary_dir.to_str().unwrap().to_string();
    let cf = format!("{c}/file");

    // (label, tar, Some(entry named by a PathTraversal) | None for contained).
    #[allow(clippy::type_complexity)]
    let refused: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot name",
            TarBuilder::new().file("../canary/file", "x").finish(),
            "../canary/file",
        ),
        (
            "dotdot inside a name",
            TarBuilder::new()
                .dir("a/", 0o755)
                .file("a/../../canary/new", "x")
                .finish(),
            "a/../../canary/new",
        ),
        (
            "absolute symlink then a file through it",
            TarBuilder::new()
                .symlink("etc", &c)
                .file("etc/passwd", "root::0:0::/:/bin/sh\n")
                .finish(),
            "etc/passwd",
        ),
        (
            "a directory through a nested absolute symlink",
            TarBuilder::new()
                .dir("x/", 0o755)
                .symlink("x/y", &c)
                .dir("x/y/b/", 0o777)
                .finish(),
            "x/y/b/",
        ),
        (
            "relative symlink out, then a file through it",
            TarBuilder::new()
                .symlink("up", "../../canary")
                .file("up/file", "x")
                .finish(),
            "up/file",
        ),
        (
            "hard link up and out",
            TarBuilder::new()
                .hardlink("h", "../../canary/file")
                .finish(),
            "h",
        ),
        (
            "hard link through a symlink out",
            TarBuilder::new()
                .symlink("lnk", &c)
                .hardlink("h", "lnk/file")
                .finish(),
            "h",
        ),
        (
            "whiteout of ..",
            TarBuilder::new()
                .dir("d/", 0o755)
                .file("d/.wh...", "")
                .finish(),
            "d/.wh...",
        ),
        (
            "whiteout of . at the top",
            TarBuilder::new().file(".wh..", "").finish(),
            ".wh..",
        ),
        (
            "symlink loop",
            TarBuilder::new()
                .symlink("a", "b")
                .symlink("b", "a")
                .file("a/x", "x")
                .finish(),
            "a/x",
        ),
        (
            "symlink to itself",
            TarBuilder::new()
                .symlink("s", "s")
                .file("s/x", "x")
                .finish(),
            "s/x",
        ),
        (
            "whiteout through a symlink",
            TarBuilder::new()
                .symlink("w", &c)
                .file("w/.wh.file", "")
                .finish(),
            "w/.wh.file",
        ),
    ];
    for (i, (label, tar, entry)) in refused.into_iter().enumerate() {
        let dest = tmp.path().join(format!("r{i}/layer"));
        match unpack_tar(&tar, &dest) {
            Err(StoreError::PathTraversal { entry: e, .. }) => assert_eq!(e, entry, "{label}"),
            other => panic!("{label}: expected a path traversal naming {entry:?}, got {other:?}"),
        }
        assert_eq!(snapshot(&canary_dir), before, "{label}: the canary changed");
        assert!(!tmp.path().join(format!("r{i}/canary")).exists(), "{label}");
    }

    // An absolute hard-link target is taken inside the layer: here there is none, so the
    // entry is refused as a link to nothing (never a link to the host's /etc/passwd).
    let dest = tmp.path().join("abs-link/layer");
    let err = unpack_tar(
        &TarBuilder::new().hardlink("h", "/etc/passwd").finish(),
        &dest,
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::BadLayer { ref entry, .. } if entry == "h"),
        "{err}"
    );
    // With its own etc/passwd, the absolute target is the layer's.
    let dest = tmp.path().join("abs-link2/layer");
    unpack_tar(
        &TarBuilder::new()
            .file("etc/passwd", "layer's")
            .hardlink("h", "/etc/passwd")
            .finish(),
        &dest,
    )
    .unwrap();
    assert_eq!(read(dest.join("h")), "layer's");
    assert_eq!(fs::metadata(dest.join("h")).unwrap().nlink(), 2);

    // Contained: directories whose modes were recorded, then replaced by symlinks to the
    // canary (absolute and relative) or whose parent was; the deferred modes and times are
    // not applied through the symlinks. A hard link to a symlink links the symlink itself.
    let contained = TarBuilder::new()
        .dir("a/", 0o777)
        .raw(
            EntryType::Directory,
            "a/b/",
            None,
            b"",
            (0o700, 4321, 4321, MTIME),
        )
        .symlink("a", &c)
        .raw(
            EntryType::Directory,
            "top/",
            None,
            b"",
            (0o700, 4321, 4321, MTIME),
        )
        .symlink("top", "../../canary")
        .symlink("s", &cf)
        .hardlink("s2", "s")
        .finish();
    let dest = tmp.path().join("contained/layer");
    unpack_tar(&contained, &dest).unwrap();
    assert_eq!(
        snapshot(&canary_dir),
        before,
        "contained: the canary changed"
    );
    assert_eq!(fs::read_link(dest.join("a")).unwrap(), canary_dir);
    assert_eq!(
        fs::read_link(dest.join("s2")).unwrap().to_str(),
        Some(cf.as_str())
    );
}

#[test]
fn a_saved_image_loads_back_under_its_name_by_both_formats() {
    use super::save::SaveItem;
    let tmp = tempfile::tempdir().unwrap();
    let image = TestImage::new(vec![
        base_layer(Compression::Gzip),
        top_layer(Compression::None),
    ]);
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[(&image, Some("saved:1"))]);
    let store = store_in(&tmp);
    let loaded = store.load(&layout, &LoadOptions::default()).unwrap();
    let img = loaded[0].image.clone();
    let out = tmp.path().join("saved.tar");
    store
        .save(
            &[SaveItem {
                image: img.clone(),
                names: vec!["saved:1".into()],
            }],
            fs::File::create(&out).unwrap(),
        )
        .unwrap();
    // By its OCI layout (our loader prefers index.json).
    let again = Store::open(tmp.path().join("again")).unwrap();
    let back = again.load(&out, &LoadOptions::default()).unwrap();
    assert_eq!(back[0].image.id, img.id);
    assert_eq!(back[0].image.names, ["saved:1"]);
    let dirs = again.lower_dirs(&back[0].image).unwrap();
    assert_eq!(dirs.len(), 2);
    assert_eq!(read(dirs.last().unwrap().join("etc/motd")), "hello\n");
    // By manifest.json alone (what dockerd 20.10 reads).
    let unpacked = tmp.path().join("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(fs::File::open(&out).unwrap())
        .unpack(&unpacked)
        .unwrap();
    fs::remove_file(unpacked.join("index.json")).unwrap();
    fs::remove_file(unpacked.join("oci-layout")).unwrap();
    let classic = Store::open(tmp.path().join("classic")).unwrap();
    let back = classic.load(&unpacked, &LoadOptions::default()).unwrap();
    assert_eq!(back[0].image.id, img.id);
    assert_eq!(back[0].image.names, ["saved:1"]);
    // A blob changed on disk is not exported.
    let layer = store.blobs.path(&img.layers[0].blob);
    let mut bytes = fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer, bytes).unwrap();
    let err = store
        .save(
            &[SaveItem {
                image: img,
                names: vec![],
            }],
            std::io::sink(),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
}

/// An OCI layout of one small image named `name`, for tests of the store's users
/// (`system_services::preload`).
pub(crate) fn tiny_layout(dir: &Path, name: &str) -> std::path::PathBuf {
    let layout = dir.join("tiny-layout");
    let image = TestImage::new(vec![top_layer(Compression::None)]);
    write_oci_layout(&layout, &[(&image, Some(name))]);
    layout
}
