//! What the engine asks for ([`ContainerSpec`]), turned into an OCI runtime `config.json` with
//! oci-spec's builders. The engine never writes OCI JSON by hand: it fills this small struct and
//! [`ContainerSpec::to_oci`] makes the full spec, with the defaults Docker gives a container
//! (its capability set, masked and read-only `/proc` paths, a private `/dev`, the device
//! filter's allow list in `linux.resources.devices` ([`super::devices`]) and Docker's seccomp
//! profile ([`super::seccomp`])), and always a cgroup under [`CGROUP_PARENT`]`/<id>`.
//!
//! `CAP_MKNOD` is in the default set, as in Docker: the device filter lets a container create
//! any node but open only the harmless ones, so a node it makes stays inert.

use super::error::RuntimeError;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Every container's cgroup is `<CGROUP_PARENT>/<id>` (under `/sys/fs/cgroup` on cgroup v2).
pub const CGROUP_PARENT: &str = "/system";

/// The OCI runtime-spec version we write.
const OCI_VERSION: &str = "1.0.2";

/// Docker's default capability set.
const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "MKNOD",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability oci-spec knows: what a privileged container gets.
const ALL_CAPS: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETGID",
    "SETFCAP",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// Paths Docker masks (bind-mounts `/dev/null` or an empty tmpfs over) in unprivileged containers.
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths Docker makes read-only in unprivileged containers.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The namespaces a container may share with the host instead of getting its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    Pid,
    Mount,
    Uts,
    Ipc,
    Net,
    Cgroup,
}

impl Namespace {
    fn oci(self) -> LinuxNamespaceType {
        match self {
            Namespace::Pid => LinuxNamespaceType::Pid,
            Namespace::Mount => LinuxNamespaceType::Mount,
            Namespace::Uts => LinuxNamespaceType::Uts,
            Namespace::Ipc => LinuxNamespaceType::Ipc,
            Namespace::Net => LinuxNamespaceType::Network,
            Namespace::Cgroup => LinuxNamespaceType::Cgroup,
        }
    }
}

impl FromStr for Namespace {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pid" => Namespace::Pid,
            "mount" | "mnt" => Namespace::Mount,
            "uts" => Namespace::Uts,
            "ipc" => Namespace::Ipc,
            "net" | "network" => Namespace::Net,
            "cgroup" => Namespace::Cgroup,
            other => return Err(RuntimeError::Spec(format!("unknown namespace {other:?}"))),
        })
    }
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub read_only: bool,
}

impl FromStr for BindMount {
    type Err = RuntimeError;
    /// `SRC:DST[:ro|rw]`, as `docker run -v`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            _ => return Err(RuntimeError::Spec(format!("bad bind mount {s:?}"))),
        };
        if !src.starts_with('/') || !dst.starts_with('/') {
            return Err(RuntimeError::Spec(format!(
                "bind mount paths must be absolute: {s:?}"
            )));
        }
        Ok(BindMount {
            source: src.into(),
            destination: dst.into(),
            read_only: ro,
        })
    }
}

/// A tmpfs mount (`--tmpfs /run:size=64m,mode=1777`): Docker's defaults (`noexec`, `nosuid`,
/// `nodev`) then the options given, each checked against the ones tmpfs and mount(8) know,
/// so nothing else reaches the mount's data string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub destination: PathBuf,
    pub options: Vec<String>,
}

impl TmpfsMount {
    pub fn parse(destination: &str, options: &str) -> Result<TmpfsMount, RuntimeError> {
        let bad = |why: String| RuntimeError::Spec(format!("tmpfs {destination}: {why}"));
        if !destination.starts_with('/')
            || destination.split('/').any(|c| c == "..")
            || destination.trim_end_matches('/').is_empty()
        {
            return Err(bad("the path must be absolute, and not /".into()));
        }
        let mut opts: Vec<String> = ["noexec", "nosuid", "nodev"].map(String::from).to_vec();
        for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            let ok = match k {
                "rw" | "ro" | "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev" | "atime"
                | "noatime" | "relatime" | "strictatime" | "nodiratime" => v.is_empty(),
                "size" => {
                    let digits = v.trim_end_matches(['k', 'm', 'g', 'K', 'M', 'G', '%']);
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                }
                "nr_inodes" | "uid" | "gid" => {
                    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
                }
                "mode" => {
                    !v.is_empty() && v.len() <= 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b))
                }
                _ => false,
            };
            if !ok {
                return Err(bad(format!("option {o:?} is not a tmpfs option")));
            }
            opts.push(o.to_string());
        }
        Ok(TmpfsMount {
            destination: destination.trim_end_matches('/').to_string().into(),
            options: opts,
        })
    }
}

/// A host device node given to the container (`devices: [/dev/fuse:/dev/fuse:rwm]`): the node
/// is made in its `/dev` and the device filter allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub host: PathBuf,
    pub container: PathBuf,
    /// `r`, `w`, `m` letters.
    pub access: String,
}

impl FromStr for DeviceMapping {
    type Err = RuntimeError;
    /// `HOST[:CONTAINER[:PERMS]]`, as `docker run --device`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, c] if c.starts_with('/') => (*h, *c, "rwm"),
            [h, a] => (*h, *h, *a),
            [h, c, a] => (*h, *c, *a),
            _ => return Err(RuntimeError::Spec(format!("bad device {s:?}"))),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(RuntimeError::Spec(format!(
                "device paths must be absolute: {s:?}"
            )));
        }
        if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(RuntimeError::Spec(format!(
                "device {s:?}: permissions {access:?} are not r, w, m letters"
            )));
        }
        Ok(DeviceMapping {
            host: host.into(),
            container: container.into(),
            access: access.into(),
        })
    }
}

/// cgroup limits; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `memory.max`, in bytes.
    pub memory_bytes: Option<i64>,
    /// CPUs' worth of time (`1.5` = 150 ms per 100 ms period: `cpu.max`).
    pub cpus: Option<f64>,
    /// Relative CPU weight in Docker's shares (1024 each; `cpu.weight` on cgroup v2).
    pub cpu_shares: Option<u64>,
    /// `pids.max`.
    pub pids: Option<i64>,
}

/// One container, as the engine asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// `[A-Za-z0-9_+.-]+`: names the state dir, the bundle and the cgroup.
    pub id: String,
    /// The root filesystem, already assembled (an overlay mount or a plain directory).
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// `KEY=value`; a `PATH` is added when missing.
    pub env: Vec<String>,
    pub cwd: PathBuf,
    /// With its own UTS namespace, the container's hostname (default: its id).
    pub hostname: Option<String>,
    /// Namespaces shared with the host; every other one of pid, mount, uts, ipc and net is new.
    /// (A cgroup namespace is made only when asked for with [`ContainerSpec::cgroupns`].)
    pub host_namespaces: HashSet<Namespace>,
    /// Namespaces joined by path instead of made new (a network namespace the engine wired
    /// before the container starts: `/run/docker/netns/<id>`).
    pub namespace_paths: std::collections::BTreeMap<Namespace, PathBuf>,
    /// A private cgroup namespace (the container then sees its cgroup as `/`).
    pub cgroupns: bool,
    /// Every capability, no masked or read-only paths, writable `/sys` (but still a private
    /// `/dev`: host devices are passed as bind mounts).
    pub privileged: bool,
    /// Capability names (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL` in `cap_drop` drops all).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub binds: Vec<BindMount>,
    /// `--tmpfs`: a tmpfs of its own at each destination.
    pub tmpfs: Vec<TmpfsMount>,
    pub read_only_rootfs: bool,
    pub limits: Limits,
    /// Host devices passed in (beyond the default harmless ones).
    pub devices: Vec<DeviceMapping>,
    /// Run as (uid, gid) instead of root (`user:`, or the image's `User`). A non-root user
    /// keeps the bounding set but starts with no effective or permitted capability, as in
    /// Docker.
    pub user: Option<(u32, u32)>,
    /// More device filter rules (`c 13:* r`: compose's `device_cgroup_rules`).
    pub device_rules: Vec<oci_spec::runtime::LinuxDeviceCgroup>,
    /// Docker's default seccomp profile (unless privileged); `false` is
    /// `security_opt: [seccomp=unconfined]`.
    pub seccomp: bool,
    /// Where the container's stdout and stderr go (`/dev/null` when unset). Not part of
    /// `config.json`: the helper opens them and hands them to the container.
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    /// The cgroup the container's cgroup is made in ([`CGROUP_PARENT`] for system services,
    /// `/docker` for the user engine's containers).
    pub cgroup_parent: String,
    /// The cgroup's own name under the parent (default: the id).
    pub cgroup_leaf: Option<String>,
    /// A pseudo-terminal as the container's stdio (`process.terminal`): its master comes back
    /// over a console socket (see `engine::shim`).
    pub terminal: bool,
}

impl ContainerSpec {
    /// A container with the defaults: all namespaces of its own, unprivileged, no limits.
    pub fn new(id: &str, rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ContainerSpec {
            id: id.to_string(),
            rootfs: rootfs.into(),
            args,
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            hostname: None,
            host_namespaces: HashSet::new(),
            namespace_paths: Default::default(),
            cgroupns: false,
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            binds: Vec::new(),
            tmpfs: Vec::new(),
            read_only_rootfs: false,
            limits: Limits::default(),
            devices: Vec::new(),
            device_rules: Vec::new(),
            user: None,
            seccomp: true,
            stdout: None,
            stderr: None,
            cgroup_parent: CGROUP_PARENT.to_string(),
            cgroup_leaf: None,
            terminal: false,
        }
    }

    /// The container's cgroup path (`linux.cgroupsPath`).
    pub fn cgroup_path(&self) -> String {
        let leaf = self.cgroup_leaf.as_deref().unwrap_or(&self.id);
        format!("{}/{}", self.cgroup_parent.trim_end_matches('/'), leaf)
    }

    /// Reject what libcontainer would reject later, with a clearer message.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        validate_id(&self.id)?;
        let parent_ok = self.cgroup_parent.starts_with('/')
            && self.cgroup_parent.split('/').skip(1).all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
            });
        if !parent_ok {
            return Err(RuntimeError::Spec(format!(
                "bad cgroup parent {:?} (want /name[/name…])",
                self.cgroup_parent
            )));
        }
        if let Some(leaf) = &self.cgroup_leaf {
            validate_id(leaf)?;
        }
        if self.args.is_empty() {
            return Err(RuntimeError::Spec("no command (args is empty)".into()));
        }
        if !self.rootfs.is_absolute() {
            return Err(RuntimeError::Spec(format!(
                "rootfs {} is not absolute",
                self.rootfs.display()
            )));
        }
        if !self.cwd.is_absolute() {
            return Err(RuntimeError::Spec(format!(
                "cwd {} is not absolute",
                self.cwd.display()
            )));
        }
        if self.hostname.is_some() && self.host_namespaces.contains(&Namespace::Uts) {
            return Err(RuntimeError::Spec(
                "a hostname needs the container's own UTS namespace".into(),
            ));
        }
        if let Some(c) = self.limits.cpus {
            if !(c > 0.0 && c.is_finite()) {
                return Err(RuntimeError::Spec(format!("bad cpus limit {c}")));
            }
        }
        Ok(())
    }

    /// The capability set: the default (or all, privileged), plus `cap_add`, minus `cap_drop`.
    pub fn capabilities(&self) -> Result<Capabilities, RuntimeError> {
        let base = if self.privileged {
            ALL_CAPS
        } else {
            DEFAULT_CAPS
        };
        let mut caps: Capabilities = base
            .iter()
            .map(|c| parse_cap(c))
            .collect::<Result<_, _>>()?;
        for c in &self.cap_add {
            if c.eq_ignore_ascii_case("ALL") {
                for a in ALL_CAPS {
                    caps.insert(parse_cap(a)?);
                }
            } else {
                caps.insert(parse_cap(c)?);
            }
        }
        for c in &self.cap_drop {
            if c.eq_ignore_ascii_case("ALL") {
                caps.clear();
            } else {
                caps.remove(&parse_cap(c)?);
            }
        }
        Ok(caps)
    }

    /// The OCI runtime spec for this container.
    pub fn to_oci(&self) -> Result<Spec, RuntimeError> {
        self.validate()?;
        let caps = self.capabilities()?;
        let mut env = self.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        let (uid, gid) = self.user.unwrap_or((0, 0));
        // A non-root process holds no capability of its own (it may still gain what the
        // bounding set allows through a file's capabilities, unless no_new_privs).
        let held = if uid == 0 {
            caps.clone()
        } else {
            Capabilities::new()
        };
        let process = ProcessBuilder::default()
            .terminal(self.terminal)
            .user(UserBuilder::default().uid(uid).gid(gid).build()?)
            .args(self.args.clone())
            .env(env)
            .cwd(self.cwd.clone())
            .no_new_privileges(!self.privileged)
            .capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(caps.clone())
                    .effective(held.clone())
                    .permitted(held)
                    .inheritable(Capabilities::new())
                    .ambient(Capabilities::new())
                    .build()?,
            )
            .rlimits(vec![PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(1_048_576u64)
                .soft(1_048_576u64)
                .build()?])
            .build()?;

        let mut namespaces = Vec::new();
        for ns in [
            Namespace::Pid,
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Net,
        ] {
            if self.host_namespaces.contains(&ns) {
                continue;
            }
            let mut b = LinuxNamespaceBuilder::default().typ(ns.oci());
            if let Some(path) = self.namespace_paths.get(&ns) {
                b = b.path(path.clone());
            }
            namespaces.push(b.build()?);
        }
        if self.cgroupns {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(Namespace::Cgroup.oci())
                    .build()?,
            );
        }

        let mut resources = LinuxResourcesBuilder::default();
        if let Some(m) = self.limits.memory_bytes {
            resources = resources.memory(LinuxMemoryBuilder::default().limit(m).build()?);
        }
        if self.limits.cpus.is_some() || self.limits.cpu_shares.is_some() {
            let mut cpu = LinuxCpuBuilder::default();
            if let Some(c) = self.limits.cpus {
                let period: u64 = 100_000;
                cpu = cpu.period(period).quota((c * period as f64).round() as i64);
            }
            if let Some(s) = self.limits.cpu_shares {
                cpu = cpu.shares(s);
            }
            resources = resources.cpu(cpu.build()?);
        }
        if let Some(p) = self.limits.pids {
            resources = resources.pids(LinuxPidsBuilder::default().limit(p).build()?);
        }
        let (devices, mut allowed) = self.device_nodes()?;
        if self.privileged {
            allowed = super::devices::allow_all();
        }
        resources = resources.devices(allowed);

        let mut linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .cgroups_path(PathBuf::from(self.cgroup_path()))
            .resources(resources.build()?)
            .devices(devices);
        if self.seccomp && !self.privileged {
            linux = linux.seccomp(super::seccomp::default_profile(&caps));
        }
        // The builders start from oci-spec's `Default`s (runc's), so both lists are always set.
        let (masked, readonly) = if self.privileged {
            (&[][..], &[][..])
        } else {
            (MASKED_PATHS, READONLY_PATHS)
        };
        linux = linux
            .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>());

        let spec = SpecBuilder::default()
            .version(OCI_VERSION)
            .root(
                RootBuilder::default()
                    .path(self.rootfs.clone())
                    .readonly(self.read_only_rootfs)
                    .build()?,
            )
            .process(process)
            .mounts(self.mounts()?)
            .linux(linux.build()?);
        let mut spec = spec.build()?;
        // Spec's default hostname is "youki"; with the host's UTS namespace there must be none.
        spec.set_hostname(if self.host_namespaces.contains(&Namespace::Uts) {
            None
        } else {
            Some(self.hostname.clone().unwrap_or_else(|| self.id.clone()))
        });
        Ok(spec)
    }

    /// The `devices:` nodes for `linux.devices` (numbers read from the host's node now), and
    /// the device filter's rules: the defaults plus one for each.
    fn device_nodes(
        &self,
    ) -> Result<
        (
            Vec<oci_spec::runtime::LinuxDevice>,
            Vec<oci_spec::runtime::LinuxDeviceCgroup>,
        ),
        RuntimeError,
    > {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let mut nodes = Vec::new();
        let mut rules = super::devices::default_rules();
        for d in &self.devices {
            let m = std::fs::metadata(&d.host).map_err(|e| RuntimeError::io(&d.host, e))?;
            let typ = if m.file_type().is_block_device() {
                LinuxDeviceType::B
            } else if m.file_type().is_char_device() {
                LinuxDeviceType::C
            } else {
                return Err(RuntimeError::Spec(format!(
                    "device {}: not a device node",
                    d.host.display()
                )));
            };
            let (major, minor) = (
                nix::sys::stat::major(m.rdev()) as i64,
                nix::sys::stat::minor(m.rdev()) as i64,
            );
            nodes.push(
                LinuxDeviceBuilder::default()
                    .path(d.container.clone())
                    .typ(typ)
                    .major(major)
                    .minor(minor)
                    .file_mode(m.mode() & 0o777)
                    .uid(m.uid())
                    .gid(m.gid())
                    .build()?,
            );
            rules.push(super::devices::rule_for(typ, major, minor, &d.access));
        }
        rules.extend(self.device_rules.iter().cloned());
        Ok((nodes, rules))
    }

    /// The kernel filesystems every container gets, then the bind mounts.
    fn mounts(&self) -> Result<Vec<Mount>, RuntimeError> {
        let m = |dst: &str, typ: &str, src: &str, opts: &[&str]| {
            MountBuilder::default()
                .destination(dst)
                .typ(typ)
                .source(src)
                .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
        };
        let sys_ro = if self.privileged { "rw" } else { "ro" };
        let mut mounts = vec![m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?];
        // A private /dev even when privileged: libcontainer creates its default device nodes
        // and replaces `/dev/ptmx` in the container's /dev, which must not be the host's.
        mounts.push(m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?);
        mounts.push(m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?);
        mounts.push(m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?);
        mounts.push(m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?);
        if !self.host_namespaces.contains(&Namespace::Net) || self.privileged {
            mounts.push(m(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", sys_ro],
            )?);
        } else {
            // sysfs shows the network namespace it was mounted in: with the host's network,
            // bind the host's /sys read-only, as runc does.
            mounts.push(m(
                "/sys",
                "bind",
                "/sys",
                &["rbind", "nosuid", "noexec", "nodev", "ro"],
            )?);
        }
        mounts.push(m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        )?);
        // Binds and tmpfs mounts, parents before children (as Docker sorts them), so a mount
        // at /a never hides one at /a/b; the order given is kept otherwise.
        let mut own: Vec<(usize, oci_spec::runtime::Mount)> = Vec::new();
        let depth = |p: &Path| p.components().count();
        for b in &self.binds {
            let mode = if b.read_only { "ro" } else { "rw" };
            own.push((
                depth(&b.destination),
                MountBuilder::default()
                    .destination(b.destination.clone())
                    .typ("bind")
                    .source(b.source.clone())
                    .options(vec!["rbind".to_string(), mode.to_string()])
                    .build()?,
            ));
        }
        for t in &self.tmpfs {
            own.push((
                depth(&t.destination),
                MountBuilder::default()
                    .destination(t.destination.clone())
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(t.options.clone())
                    .build()?,
            ));
        }
        own.sort_by_key(|(d, _)| *d);
        mounts.extend(own.into_iter().map(|(_, m)| m));
        Ok(mounts)
    }

    /// Write `<bundle>/config.json`, compact (as containerd writes it): the helper parses it
    /// with oci-spec's `Spec::load`, a byte-at-a-time reader, and with the seccomp profile a
    /// pretty one was 17 KB, half of it indentation.
    pub fn write_bundle(&self, bundle: &Path) -> Result<(), RuntimeError> {
        let spec = self.to_oci()?;
        std::fs::create_dir_all(bundle).map_err(|e| RuntimeError::io(bundle, e))?;
        let path = bundle.join("config.json");
        let json = serde_json::to_vec(&spec)
            .map_err(|e| RuntimeError::Spec(format!("serializing config.json: {e}")))?;
        std::fs::write(&path, json).map_err(|e| RuntimeError::io(&path, e))
    }
}

/// The ids libcontainer accepts (it makes them file names).
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Spec(format!("bad container id {id:?}")))
    }
}

fn parse_cap(name: &str) -> Result<Capability, RuntimeError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare)
        .map_err(|_| RuntimeError::Spec(format!("unknown capability {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_options_are_checked() {
        let t = TmpfsMount::parse("/run/", "size=64m,mode=1777,exec").unwrap();
        assert_eq!(t.destination, PathBuf::from("/run"));
        assert_eq!(
            t.options,
            ["noexec", "nosuid", "nodev", "size=64m", "mode=1777", "exec"]
        );
        for (d, o) in [
            ("/run", "size=1m,lowerdir=/etc"),
            ("/run", "mode=999"),
            ("/run", "size=lots"),
            ("relative", ""),
            ("/", ""),
            ("/a/../b", ""),
        ] {
            assert!(TmpfsMount::parse(d, o).is_err(), "{d} {o}");
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec::new("t1", "/run/t/rootfs", vec!["/bin/true".into()])
    }

    #[test]
    fn defaults_make_a_private_unprivileged_container_in_its_cgroup() {
        let oci = spec().to_oci().unwrap();
        let linux = oci.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/system/t1"))
        );
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert_eq!(
            ns,
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Network
            ]
        );
        let caps = oci
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert!(caps.contains(&Capability::Chown));
        assert!(caps.contains(&Capability::Mknod));
        assert!(!caps.contains(&Capability::SysAdmin));
        let seccomp = linux.seccomp().as_ref().expect("seccomp profile");
        assert!(!super::super::seccomp::allows_unconditionally(
            seccomp, "mount"
        ));
        let devices = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(devices, &super::super::devices::default_rules());
        assert!(linux.masked_paths().as_ref().unwrap().len() > 3);
        assert_eq!(oci.hostname().as_deref(), Some("t1"));
    }

    #[test]
    fn limits_host_namespaces_caps_and_binds_are_applied() {
        let mut s = spec();
        s.limits = Limits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(100),
            cpu_shares: Some(512),
        };
        s.host_namespaces.insert(Namespace::Net);
        s.cap_add.push("cap_net_admin".into());
        s.cap_drop.push("CHOWN".into());
        s.binds.push("/var/log:/log:ro".parse().unwrap());
        s.read_only_rootfs = true;
        let oci = s.to_oci().unwrap();
        let json = serde_json::to_value(&oci).unwrap();
        let r = &json["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["pids"]["limit"], 100);
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["hostname"], "t1");
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(!ns.iter().any(|n| n["type"] == "network"));
        let bounding = json["process"]["capabilities"]["bounding"].to_string();
        assert!(bounding.contains("CAP_NET_ADMIN"), "{bounding}");
        assert!(!bounding.contains("CAP_CHOWN"), "{bounding}");
        let mounts = json["mounts"].as_array().unwrap();
        let log = mounts.iter().find(|m| m["destination"] == "/log").unwrap();
        assert_eq!(log["options"], serde_json::json!(["rbind", "ro"]));
    }

    #[test]
    fn privileged_gets_every_capability_and_no_masked_paths() {
        let mut s = spec();
        s.privileged = true;
        let caps = s.capabilities().unwrap();
        assert_eq!(caps.len(), ALL_CAPS.len());
        let oci = s.to_oci().unwrap();
        let linux = oci.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        assert!(linux.seccomp().is_none());
        let devices = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(devices, &super::super::devices::allow_all());
    }

    #[test]
    fn a_non_root_user_keeps_the_bounding_set_and_holds_no_capability() {
        let mut s = spec();
        s.user = Some((1000, 100));
        let json = serde_json::to_value(s.to_oci().unwrap()).unwrap();
        assert_eq!(json["process"]["user"]["uid"], 1000);
        assert_eq!(json["process"]["user"]["gid"], 100);
        let caps = &json["process"]["capabilities"];
        assert!(caps["bounding"].to_string().contains("CAP_CHOWN"));
        assert_eq!(caps["effective"], serde_json::json!([]));
        assert_eq!(caps["permitted"], serde_json::json!([]));
    }

    #[test]
    fn unconfined_has_no_seccomp_and_devices_add_a_node_and_a_rule() {
        let mut s = spec();
        s.seccomp = false;
        s.devices.push("/dev/null:/dev/mynull:rw".parse().unwrap());
        let oci = s.to_oci().unwrap();
        let linux = oci.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        let node = &linux.devices().as_ref().unwrap()[0];
        assert_eq!(
            (
                node.path().as_path(),
                node.typ(),
                node.major(),
                node.minor()
            ),
            (Path::new("/dev/mynull"), LinuxDeviceType::C, 1, 3)
        );
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(
            rules.len(),
            super::super::devices::default_rules().len() + 1
        );
        assert!("/dev/x:/dev/y:rwx".parse::<DeviceMapping>().is_err());
        assert!("dev/x".parse::<DeviceMapping>().is_err());
        assert_eq!(
            "/dev/fuse:r".parse::<DeviceMapping>().unwrap().container,
            Path::new("/dev/fuse")
        );
        let mut s = spec();
        s.devices.push("/etc/hostname".parse().unwrap());
        assert!(s.to_oci().is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        let mut s = spec();
        s.id = "a/b".into();
        assert!(s.to_oci().is_err());
        let mut s = spec();
        s.args.clear();
        assert!(s.to_oci().is_err());
        let mut s = spec();
        s.cap_add.push("FLY".into());
        assert!(s.to_oci().is_err());
        assert!("rel:/x".parse::<BindMount>().is_err());
        assert!("pidx".parse::<Namespace>().is_err());
    }
}
