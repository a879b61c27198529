//! Where cloud-config comes from: the datasources of `rancher.cloud_init.datasources`, in
//! RancherOS's spelling, tried in order; the first that answers is used.
//!
//! - `nocloud`: a vfat or iso9660 filesystem labelled `cidata` with `user-data` and
//!   `meta-data` (cloud-init's NoCloud seed).
//! - `configdrive[:DIR]`: OpenStack's config drive, labelled `config-2`
//!   (`openstack/latest/user_data`, `openstack/latest/meta_data.json`), or a directory holding
//!   that tree.
//! - `url:URL`: user-data from a URL. `cmdline`: the URL of `cloud-config-url=` on the kernel
//!   command line.
//! - `ec2[:BASE]`: an EC2-style metadata service (`http://169.254.169.254/latest/`).
//!
//! Disks are looked up by label and mounted read-only; network sources wait for the network
//! (DHCP runs beside us) up to [`NETWORK_WAIT`].

use super::http::{self, HttpError};
use super::label::{self, FsType};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long network datasources keep trying to connect.
pub const NETWORK_WAIT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
pub const EC2_BASE: &str = "http://169.254.169.254/latest";

/// One datasource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    NoCloud,
    ConfigDrive(Option<PathBuf>),
    Url(String),
    Cmdline,
    Ec2(String),
}

impl Source {
    /// Whether asking it goes over the network (`cmdline_words`: the kernel command line's
    /// words, for `cmdline`, which is a URL only when `cloud-config-url=` is there). Disks and
    /// directories do not: their reader need not wait for the network service.
    pub fn reaches_network<'a>(&self, cmdline_words: impl IntoIterator<Item = &'a str>) -> bool {
        match self {
            Source::NoCloud | Source::ConfigDrive(_) => false,
            Source::Url(_) | Source::Ec2(_) => true,
            Source::Cmdline => cmdline_words
                .into_iter()
                .any(|w| w.starts_with("cloud-config-url=")),
        }
    }

    /// `nocloud`, `configdrive:/media/config-2`, `url:http://…`, `cmdline`, `ec2`.
    pub fn parse(s: &str) -> Result<Source, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        Ok(match (kind, arg) {
            ("nocloud", None) => Source::NoCloud,
            ("configdrive", a) => Source::ConfigDrive(a.map(PathBuf::from)),
            ("url", Some(u)) => Source::Url(u.to_string()),
            ("cmdline", None) => Source::Cmdline,
            ("ec2", None) => Source::Ec2(EC2_BASE.into()),
            ("ec2", Some(b)) => Source::Ec2(b.trim_end_matches('/').to_string()),
            _ => {
                return Err(format!(
                    "unknown datasource {s:?} (nocloud, configdrive[:DIR], url:URL, cmdline, ec2[:URL])"
                ))
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Source::NoCloud => "nocloud".into(),
            Source::ConfigDrive(None) => "configdrive".into(),
            Source::ConfigDrive(Some(d)) => format!("configdrive:{}", d.display()),
            Source::Url(u) => format!("url:{u}"),
            Source::Cmdline => "cmdline".into(),
            Source::Ec2(b) => format!("ec2:{b}"),
        }
    }
}

/// What a datasource gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    pub user_data: Option<Vec<u8>>,
    pub hostname: Option<String>,
    pub keys: Vec<String>,
}

/// Where the datasources look: the device directory (the host's /dev is bind-mounted into
/// the cloud-init container), where seeds are mounted, and the kernel command line.
#[derive(Debug, Clone)]
pub struct Env {
    pub dev: PathBuf,
    pub mnt: PathBuf,
    pub cmdline: String,
}

/// Fetch from `src`: `Ok(None)` when it has nothing (no such disk, no URL given).
pub fn fetch(src: &Source, env: &Env) -> Result<Option<Fetched>, String> {
    match src {
        Source::NoCloud => from_disk(env, "cidata", nocloud),
        Source::ConfigDrive(Some(dir)) if dir.join("openstack").is_dir() => {
            configdrive(dir).map(Some)
        }
        Source::ConfigDrive(_) => from_disk(env, "config-2", configdrive),
        Source::Url(u) => url(u),
        Source::Cmdline => match cmdline_url(&env.cmdline) {
            Some(u) => url(&u),
            None => Ok(None),
        },
        Source::Ec2(base) => ec2(base),
    }
}

/// `cloud-config-url=` on the kernel command line.
pub fn cmdline_url(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("cloud-config-url="))
        .map(str::to_string)
}

/// Find the disk labelled `label`, mount it read-only, read it with `read`, unmount.
fn from_disk(
    env: &Env,
    label: &str,
    read: fn(&Path) -> Result<Fetched, String>,
) -> Result<Option<Fetched>, String> {
    let Some((dev, fs)) = label::find(&env.dev, label) else {
        return Ok(None);
    };
    let at = env.mnt.join(label);
    std::fs::create_dir_all(&at).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
    mount_ro(&dev, &at, fs)?;
    let got = read(&at);
    if let Err(e) = nix::mount::umount(&at) {
        eprintln!("cloud-init: umount {}: {e}", at.display());
    }
    got.map(Some)
        .map_err(|e| format!("{} ({label}): {e}", dev.display()))
}

fn mount_ro(dev: &Path, at: &Path, fs: FsType) -> Result<(), String> {
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some(dev),
        at,
        Some(fs.mount_name()),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "mount {} ({}) on {}: {e}",
            dev.display(),
            fs.mount_name(),
            at.display()
        )
    })
}

fn read_opt(p: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// NoCloud: `user-data`, and `meta-data` (YAML: `local-hostname`, `public-keys`).
pub fn nocloud(dir: &Path) -> Result<Fetched, String> {
    let mut f = Fetched {
        user_data: read_opt(&dir.join("user-data"))?,
        ..Default::default()
    };
    if let Some(meta) = read_opt(&dir.join("meta-data"))? {
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_slice(&meta).map_err(|e| format!("meta-data: {e}"))?;
        f.hostname = ["local-hostname", "hostname"]
            .iter()
            .find_map(|k| v.get(k).and_then(|h| h.as_str()).map(str::to_string));
        f.keys = match v.get("public-keys") {
            Some(serde_yaml_ng::Value::Sequence(s)) => s
                .iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
            Some(serde_yaml_ng::Value::Mapping(m)) => m
                .values()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
            Some(serde_yaml_ng::Value::String(k)) => vec![k.clone()],
            _ => Vec::new(),
        };
    }
    Ok(f)
}

/// ConfigDrive: `openstack/latest/user_data` and `meta_data.json` (`hostname`, `public_keys`).
pub fn configdrive(dir: &Path) -> Result<Fetched, String> {
    let latest = dir.join("openstack/latest");
    let mut f = Fetched {
        user_data: read_opt(&latest.join("user_data"))?,
        ..Default::default()
    };
    if let Some(meta) = read_opt(&latest.join("meta_data.json"))? {
        let v: serde_json::Value =
            serde_json::from_slice(&meta).map_err(|e| format!("meta_data.json: {e}"))?;
        f.hostname = v["hostname"].as_str().map(str::to_string);
        if let Some(keys) = v["public_keys"].as_object() {
            f.keys = keys
                .values()
                .filter_map(|k| k.as_str().map(|s| s.trim().to_string()))
                .collect();
        }
    }
    Ok(f)
}

/// GET with retries while the network comes up: connection errors are retried until
/// [`NETWORK_WAIT`]; an HTTP answer (even an error status) is final.
fn get_waiting(url: &str) -> Result<Option<Vec<u8>>, String> {
    let until = Instant::now() + NETWORK_WAIT;
    loop {
        match http::get(url, HTTP_TIMEOUT) {
            Err(HttpError::Io { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(500))
            }
            r => return r.map_err(|e| e.to_string()),
        }
    }
}

fn url(u: &str) -> Result<Option<Fetched>, String> {
    match get_waiting(u)? {
        Some(body) => Ok(Some(Fetched {
            user_data: Some(body),
            ..Default::default()
        })),
        None => Err(format!("{u}: HTTP 404")),
    }
}

/// EC2: `user-data`, `meta-data/local-hostname`, `meta-data/public-keys/N/openssh-key`.
fn ec2(base: &str) -> Result<Option<Fetched>, String> {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).trim().to_string();
    let meta = format!("{base}/meta-data");
    // The first request also tells whether there is a metadata service at all.
    let Some(_) = get_waiting(&format!("{meta}/"))? else {
        return Ok(None);
    };
    let mut f = Fetched {
        user_data: get_waiting(&format!("{base}/user-data"))?,
        ..Default::default()
    };
    for key in ["local-hostname", "hostname"] {
        if let Some(h) = get_waiting(&format!("{meta}/{key}"))? {
            f.hostname = Some(text(h));
            break;
        }
    }
    if let Some(list) = get_waiting(&format!("{meta}/public-keys/"))? {
        for line in text(list).lines() {
            let idx = line.split('=').next().unwrap_or("").trim();
            if idx.is_empty() {
                continue;
            }
            if let Some(k) = get_waiting(&format!("{meta}/public-keys/{idx}/openssh-key"))? {
                f.keys.push(text(k));
            }
        }
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_urls_and_metadata_services_reach_the_network() {
        let none: [&str; 0] = [];
        let with_url = ["console=ttyS0", "cloud-config-url=http://10.0.2.100/u"];
        for (src, words, over) in [
            (Source::NoCloud, &with_url[..], false),
            (Source::ConfigDrive(None), &with_url[..], false),
            (Source::ConfigDrive(Some("/d".into())), &none[..], false),
            (Source::Url("http://x/".into()), &none[..], true),
            (Source::Ec2(EC2_BASE.into()), &none[..], true),
            (Source::Cmdline, &with_url[..], true),
            (
                Source::Cmdline,
                &["console=ttyS0", "cloud-config-urlx=1"][..],
                false,
            ),
            (Source::Cmdline, &none[..], false),
        ] {
            assert_eq!(
                src.reaches_network(words.iter().copied()),
                over,
                "{src:?} {words:?}"
            );
        }
    }

    #[test]
    fn datasource_names_parse_as_rancheros_writes_them() {
        assert_eq!(Source::parse("nocloud"), Ok(Source::NoCloud));
        assert_eq!(
            Source::parse("configdrive:/media/config-2"),
            Ok(Source::ConfigDrive(Some("/media/config-2".into())))
        );
        assert_eq!(
            Source::parse("url:http://x/y"),
            Ok(Source::Url("http://x/y".into()))
        );
        assert_eq!(Source::parse("ec2"), Ok(Source::Ec2(EC2_BASE.into())));
        assert!(Source::parse("gce")
            .unwrap_err()
            .contains("unknown datasource \"gce\""));
    }

    #[test]
    fn the_kernel_command_line_names_a_url() {
        assert_eq!(
            cmdline_url("console=ttyS0 cloud-config-url=http://10.0.2.100/cc quiet"),
            Some("http://10.0.2.100/cc".into())
        );
        assert_eq!(cmdline_url("console=ttyS0"), None);
    }

    #[test]
    fn nocloud_and_configdrive_trees() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("user-data"), "#cloud-config\nhostname: a\n").unwrap();
        std::fs::write(
            d.path().join("meta-data"),
            "instance-id: i-1\nlocal-hostname: seeded\npublic-keys:\n  - ssh-ed25519 AAAA x@y\n",
        )
        .unwrap();
        let f = nocloud(d.path()).unwrap();
        assert_eq!(f.hostname.as_deref(), Some("seeded"));
        assert_eq!(f.keys, ["ssh-ed25519 AAAA x@y"]);
        assert!(f.user_data.unwrap().starts_with(b"#cloud-config"));

        let c = tempfile::tempdir().unwrap();
        let latest = c.path().join("openstack/latest");
        std::fs::create_dir_all(&latest).unwrap();
        std::fs::write(
            latest.join("meta_data.json"),
            r#"{"uuid":"u","hostname":"drive","public_keys":{"k":"ssh-rsa BBBB z\n"}}"#,
        )
        .unwrap();
        let f = configdrive(c.path()).unwrap();
        assert_eq!(f.hostname.as_deref(), Some("drive"));
        assert_eq!(f.keys, ["ssh-rsa BBBB z"]);
        assert_eq!(f.user_data, None);
        assert!(configdrive(&c.path().join("nope"))
            .unwrap()
            .hostname
            .is_none());
    }
}
