//! Finding the state device: `rancher.state.dev` names it by `LABEL=`, `UUID=` or path, and
//! disks show up a little after boot, so it is looked for until `rancher.state.wait` runs out.
//!
//! The disks are reached through the [`BlockDevices`] seam: [`SysBlock`] reads `/sys/class/block`
//! and the device nodes, tests use an in-memory set of disks.

use super::superblock;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a device is named in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Label(String),
    Uuid(String),
    Path(PathBuf),
}

impl DeviceSpec {
    /// `LABEL=X`, `UUID=x`, or a path (`/dev/vda`); None for anything else.
    pub fn parse(s: &str) -> Option<DeviceSpec> {
        let s = s.trim();
        if let Some(l) = s.strip_prefix("LABEL=") {
            return (!l.is_empty()).then(|| DeviceSpec::Label(l.to_string()));
        }
        if let Some(u) = s.strip_prefix("UUID=") {
            return (!u.is_empty()).then(|| DeviceSpec::Uuid(u.to_ascii_lowercase()));
        }
        s.starts_with('/')
            .then(|| DeviceSpec::Path(PathBuf::from(s)))
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The block devices of the machine.
pub trait BlockDevices {
    /// Every block device node (`/dev/vda`, `/dev/vda1`), in name order.
    fn list(&self) -> Vec<PathBuf>;
    /// Read `len` bytes at `offset` of `dev`.
    fn read_at(&self, dev: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

/// The real devices: names from `/sys/class/block`, nodes under `/dev` (devtmpfs).
pub struct SysBlock;

impl BlockDevices for SysBlock {
    fn list(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir("/sys/class/block")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // RAM disks and loop devices never hold the state.
            .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
            .map(|n| Path::new("/dev").join(n))
            .filter(|p| p.exists())
            .collect();
        out.sort();
        out
    }

    fn read_at(&self, dev: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(dev)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

/// The superblock of `dev`, if it holds an ext filesystem.
pub fn superblock_of(devs: &dyn BlockDevices, dev: &Path) -> Option<superblock::Superblock> {
    let bytes = devs
        .read_at(dev, superblock::OFFSET, superblock::LEN)
        .ok()?;
    superblock::parse(&bytes)
}

/// The device `spec` names, if it is there now.
pub fn find(devs: &dyn BlockDevices, spec: &DeviceSpec) -> Option<PathBuf> {
    match spec {
        DeviceSpec::Path(p) => devs.list().into_iter().find(|d| d == p),
        DeviceSpec::Label(l) => devs
            .list()
            .into_iter()
            .find(|d| superblock_of(devs, d).is_some_and(|sb| &sb.label == l)),
        DeviceSpec::Uuid(u) => devs
            .list()
            .into_iter()
            .find(|d| superblock_of(devs, d).is_some_and(|sb| &sb.uuid_string() == u)),
    }
}

/// Look for `spec` until it appears or `wait` has passed, every `every`.
pub fn wait_for(
    devs: &dyn BlockDevices,
    spec: &DeviceSpec,
    wait: Duration,
    every: Duration,
) -> Option<PathBuf> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(d) = find(devs, spec) {
            return Some(d);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Disks held in memory: path → bytes (short disks read as zeros past their data).
    #[derive(Default)]
    pub struct Disks(pub Mutex<BTreeMap<PathBuf, Vec<u8>>>);

    impl Disks {
        pub fn with(disks: &[(&str, Vec<u8>)]) -> Disks {
            Disks(Mutex::new(
                disks.iter().map(|(p, d)| (p.into(), d.clone())).collect(),
            ))
        }
    }

    impl BlockDevices for Disks {
        fn list(&self) -> Vec<PathBuf> {
            self.0.lock().unwrap().keys().cloned().collect()
        }
        fn read_at(&self, dev: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            let g = self.0.lock().unwrap();
            let d = g.get(dev).ok_or(std::io::ErrorKind::NotFound)?;
            let mut out = vec![0u8; len];
            let start = (offset as usize).min(d.len());
            let end = (offset as usize + len).min(d.len());
            out[..end - start].copy_from_slice(&d[start..end]);
            Ok(out)
        }
    }

    /// A disk whose superblock says `label`/`uuid`.
    pub fn ext(label: &str, uuid: [u8; 16]) -> Vec<u8> {
        let mut d = vec![0u8; superblock::OFFSET as usize];
        d.extend(superblock::fake(label, uuid));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{ext, Disks};
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            DeviceSpec::parse("LABEL=RANCHER_STATE"),
            Some(DeviceSpec::Label("RANCHER_STATE".into()))
        );
        assert_eq!(
            DeviceSpec::parse("UUID=AB-cd"),
            Some(DeviceSpec::Uuid("ab-cd".into()))
        );
        assert_eq!(
            DeviceSpec::parse("/dev/vdb"),
            Some(DeviceSpec::Path("/dev/vdb".into()))
        );
        assert_eq!(DeviceSpec::parse("vdb"), None);
        assert_eq!(DeviceSpec::parse("LABEL="), None);
    }

    #[test]
    fn finds_by_label_uuid_and_path() {
        let mut uuid = [0u8; 16];
        uuid[0] = 0xab;
        let devs = Disks::with(&[
            ("/dev/vda", vec![7u8; 4096]),
            ("/dev/vdb", ext("RANCHER_STATE", uuid)),
        ]);
        let label = DeviceSpec::parse("LABEL=RANCHER_STATE").unwrap();
        assert_eq!(find(&devs, &label), Some("/dev/vdb".into()));
        let by_uuid = DeviceSpec::parse("UUID=ab000000-0000-0000-0000-000000000000").unwrap();
        assert_eq!(find(&devs, &by_uuid), Some("/dev/vdb".into()));
        assert_eq!(
            find(&devs, &DeviceSpec::parse("/dev/vda").unwrap()),
            Some("/dev/vda".into())
        );
        assert_eq!(
            find(&devs, &DeviceSpec::parse("LABEL=OTHER").unwrap()),
            None
        );
        assert_eq!(find(&devs, &DeviceSpec::parse("/dev/vdc").unwrap()), None);
    }

    #[test]
    fn waits_for_a_late_disk_and_gives_up_in_time() {
        let devs = std::sync::Arc::new(Disks::default());
        let spec = DeviceSpec::parse("LABEL=RANCHER_STATE").unwrap();
        let t = Instant::now();
        assert_eq!(
            wait_for(
                &*devs,
                &spec,
                Duration::from_millis(100),
                Duration::from_millis(10)
            ),
            None
        );
        assert!(t.elapsed() >= Duration::from_millis(100));
        let late = devs.clone();
        let adder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            late.0
                .lock()
                .unwrap()
                .insert("/dev/vda".into(), ext("RANCHER_STATE", [1; 16]));
        });
        let found = wait_for(
            &*devs,
            &spec,
            Duration::from_secs(5),
            Duration::from_millis(10),
        );
        adder.join().unwrap();
        assert_eq!(found, Some("/dev/vda".into()));
    }
}
