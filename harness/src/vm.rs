//! One QEMU virtual machine, owned for its whole life by a [`Vm`]: started with [`VmOptions`],
//! its serial console captured to `target/vm-logs/<name>.log` and readable with [`Vm::expect`],
//! its QMP socket driven through the `qapi` crate, and killed when dropped. Every test reads as a
//! story over this one type (as Firecracker's `microvm.py`).
//!
//! Networking is QEMU user mode with `restrict=on`: the guest reaches nothing but the ports the
//! harness forwards (`hostfwd`, on 127.0.0.1) and the `guestfwd` services it sets up.

use crate::accel::Accel;
use anyhow::{bail, Context};
use regex::Regex;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The kernel arguments every boot gets (before the per-VM ones).
pub const BASE_CMDLINE: &[&str] = &["console=ttyS0", "quiet", "panic=-1"];

/// PID 1's line once every enabled system service runs.
pub const READY: &str = r"\[ros\] ready (\d+\.\d+)\r?\n";

/// PID 1's first line of every boot.
const BOOT_START: &str = "[ros] init ";

/// The prompt of the serial console's autologin session: `rancher` in the console container
/// (PS1 in `initrd/images/console-rootfs/etc/profile`).
pub const CONSOLE_PROMPT: &str = r"\[rancher@[^\]]*\]\$ ";

/// How [`Vm::sh`] becomes root on the host from the console's autologin session: `sudo`, then
/// PID 1's namespaces (the console container has its own mounts), as a user would.
const BECOME_ROOT: &str = "exec sudo nsenter -t 1 -m -u -i -n -p /bin/sh -l\n";

/// How often a long wait prints a progress line.
const NOTE_EVERY: Duration = Duration::from_secs(15);

/// How long a VM may live before its watchdog kills QEMU (`HARNESS_VM_LIMIT`, seconds). A test
/// that hangs on something inside the guest (a CLI waiting on a stream that never closes) then
/// fails in minutes with its serial log named, instead of holding the whole suite until CI's
/// hard limit. The longest test boots for about 4 minutes under load.
const VM_LIMIT: Duration = Duration::from_secs(15 * 60);

fn vm_limit() -> Duration {
    std::env::var("HARNESS_VM_LIMIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(VM_LIMIT)
}

/// A disk attached as virtio-blk.
#[derive(Debug, Clone)]
pub struct Drive {
    pub path: PathBuf,
    pub format: String,
    pub read_only: bool,
}

/// How to start a VM.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Names the serial log (`target/vm-logs/<name>.log`).
    pub name: String,
    pub memory_mb: u32,
    /// Virtual CPUs (`-smp`). 1 by default: the test suite runs one VM per host core side by
    /// side (`HARNESS_JOBS` lanes), and a second vCPU under TCG is a second host thread that
    /// would compete with the other lane (`harness bench boot --smp 2` measures what it buys).
    pub cpus: u32,
    /// Extra kernel arguments, after [`BASE_CMDLINE`].
    pub cmdline: Vec<String>,
    /// Arguments after `--` (for init).
    pub init_args: Vec<String>,
    pub drives: Vec<Drive>,
    /// Guest TCP ports to forward from 127.0.0.1.
    pub forward: Vec<u16>,
    /// The user network's address range (QEMU's default is 10.0.2.0/24).
    pub net: Option<String>,
    /// Guest connections to `addr:port` run a host command with the connection on its
    /// stdin/stdout (QEMU `guestfwd=tcp:ADDR:PORT-cmd:CMD`), e.g. an HTTP responder.
    pub guestfwd: Vec<(String, String)>,
    /// Network cards beyond the first (each on its own restricted user network, no forwards).
    pub extra_nics: u32,
    /// Let a guest reboot restart the machine (otherwise QEMU exits on reboot).
    pub allow_reboot: bool,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub accel: Accel,
    /// The key [`Vm::ssh`] logs in with (authorized on the kernel command line).
    pub ssh_key: Option<crate::ssh::Key>,
    /// Boot from the first drive by the firmware and its bootloader alone: no `-kernel`,
    /// `-initrd` or `-append` (the kernel line is the bootloader's).
    pub firmware_boot: bool,
    /// UEFI firmware (OVMF) instead of SeaBIOS.
    pub uefi: bool,
    /// An ISO in an IDE CD-ROM drive, first in the firmware's boot order.
    pub cdrom: Option<PathBuf>,
}

/// Debian's OVMF build (`ovmf`): UEFI firmware for QEMU.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

impl VmOptions {
    /// Options for the image in `dist/` (built if needed).
    pub fn new(name: &str) -> anyhow::Result<VmOptions> {
        let img = crate::image::ensure_built()?;
        Ok(VmOptions::with_image(name, &img.kernel, &img.initrd))
    }

    /// Options for a given kernel and initrd.
    pub fn with_image(name: &str, kernel: &Path, initrd: &Path) -> VmOptions {
        VmOptions {
            name: name.to_string(),
            memory_mb: 512,
            cpus: 1,
            cmdline: Vec::new(),
            init_args: Vec::new(),
            drives: Vec::new(),
            forward: Vec::new(),
            net: None,
            guestfwd: Vec::new(),
            extra_nics: 0,
            allow_reboot: false,
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            accel: Accel::from_env(),
            ssh_key: None,
            firmware_boot: false,
            uefi: false,
            cdrom: None,
        }
    }

    /// Boot under UEFI (OVMF) rather than SeaBIOS.
    pub fn uefi(mut self) -> Self {
        self.uefi = true;
        self
    }

    /// `iso` in a CD-ROM drive, booted first by the firmware (with [`VmOptions::firmware_boot`]).
    pub fn cdrom(mut self, iso: &Path) -> Self {
        self.cdrom = Some(iso.to_path_buf());
        self
    }

    /// Boot from the first drive alone (see [`VmOptions::firmware_boot`]).
    pub fn firmware_boot(mut self) -> Self {
        self.firmware_boot = true;
        self
    }

    /// Authorize `key` for the `rancher` user (`cc.ssh_authorized_keys` after `--`) and
    /// forward the guest's port 22, for [`Vm::ssh`].
    pub fn ssh_key(mut self, key: &crate::ssh::Key) -> Self {
        self.init_args.push(key.cmdline_arg());
        if !self.forward.contains(&22) {
            self.forward.push(22);
        }
        self.ssh_key = Some(key.clone());
        self
    }

    /// Log in with `key`, which something else authorizes (a datasource in the test): port 22
    /// forwarded, nothing added to the command line.
    pub fn ssh_identity(mut self, key: &crate::ssh::Key) -> Self {
        if !self.forward.contains(&22) {
            self.forward.push(22);
        }
        self.ssh_key = Some(key.clone());
        self
    }

    pub fn cmdline(mut self, arg: &str) -> Self {
        self.cmdline.push(arg.to_string());
        self
    }

    /// An argument after `--` on the kernel command line (for init, e.g. `cc.hostname=x`).
    pub fn init_arg(mut self, arg: &str) -> Self {
        self.init_args.push(arg.to_string());
        self
    }

    pub fn allow_reboot(mut self) -> Self {
        self.allow_reboot = true;
        self
    }

    pub fn forward(mut self, guest_port: u16) -> Self {
        self.forward.push(guest_port);
        self
    }

    /// The user network's range, e.g. `169.254.0.0/16` for an EC2-style metadata address.
    pub fn net(mut self, cidr: &str) -> Self {
        self.net = Some(cidr.to_string());
        self
    }

    /// Connections from the guest to `addr` (`ip:port`) run `cmd` on the host.
    pub fn guestfwd(mut self, addr: &str, cmd: &str) -> Self {
        self.guestfwd.push((addr.to_string(), cmd.to_string()));
        self
    }

    /// One more network card (`eth1`, `eth2`, …).
    pub fn extra_nic(mut self) -> Self {
        self.extra_nics += 1;
        self
    }

    pub fn drive(mut self, drive: Drive) -> Self {
        self.drives.push(drive);
        self
    }

    /// The full kernel command line.
    pub fn append(&self) -> String {
        let mut words: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
        words.extend(self.cmdline.iter().cloned());
        if !self.init_args.is_empty() {
            words.push("--".into());
            words.extend(self.init_args.iter().cloned());
        }
        words.join(" ")
    }

    /// QEMU arguments, minus the serial console (which differs for people and tests).
    pub fn qemu_args(&self, qmp: &Path, ports: &BTreeMap<u16, u16>) -> Vec<String> {
        let icount = icount();
        let cpus = if icount { 1 } else { self.cpus };
        let mut a: Vec<String> = [
            "-machine",
            "pc",
            "-accel",
            self.accel.qemu_name(),
            "-m",
            &self.memory_mb.to_string(),
            "-smp",
            &cpus.to_string(),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.uefi {
            a.extend(["-bios".into(), OVMF.into()]);
        }
        if !self.firmware_boot {
            a.extend(["-kernel".into(), self.kernel.display().to_string()]);
            a.extend(["-initrd".into(), self.initrd.display().to_string()]);
            a.extend(["-append".into(), self.append()]);
        }
        a.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp.display()),
        ]);
        let mut netdev = "user,id=net0,restrict=on".to_string();
        if let Some(net) = &self.net {
            netdev.push_str(&format!(",net={net}"));
        }
        for (addr, cmd) in &self.guestfwd {
            // QEMU option values escape a comma by doubling it.
            netdev.push_str(&format!(
                ",guestfwd=tcp:{addr}-cmd:{}",
                cmd.replace(',', ",,")
            ));
        }
        for (guest, host) in ports {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        a.extend([
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,netdev=net0".into(),
        ]);
        for i in 1..=self.extra_nics {
            a.extend([
                "-netdev".into(),
                format!("user,id=net{i},restrict=on"),
                "-device".into(),
                format!("virtio-net-pci,netdev=net{i}"),
            ]);
        }
        if icount {
            a.extend(["-icount".into(), "shift=0,sleep=off".into()]);
        }
        // A capture of the first NIC's traffic for a person chasing a network problem
        // (QEMU's filter-dump writes pcap: `tcpdump -r FILE`). Not for tests: every VM of the
        // run writes the same file.
        if let Ok(f) = std::env::var("HARNESS_NETDUMP") {
            a.extend([
                "-object".into(),
                format!("filter-dump,id=fd0,netdev=net0,file={f}"),
            ]);
        }
        a.extend(["-device".into(), "virtio-rng-pci".into()]);
        for (i, d) in self.drives.iter().enumerate() {
            let ro = if d.read_only { ",readonly=on" } else { "" };
            a.extend([
                "-drive".into(),
                format!(
                    "file={},if=virtio,format={},index={i}{ro}",
                    d.path.display(),
                    d.format
                ),
            ]);
        }
        if let Some(iso) = &self.cdrom {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},if=none,id=cd0,media=cdrom,readonly=on,format=raw",
                    iso.display()
                ),
                "-device".into(),
                "ide-cd,drive=cd0,bootindex=0".into(),
            ]);
        }
        if !self.allow_reboot {
            a.push("-no-reboot".into());
        }
        a
    }
}

/// The serial console as received so far, shared with the reader thread.
#[derive(Default)]
struct Serial {
    text: Mutex<(String, bool)>,
    changed: Condvar,
}

/// A running VM. Killed on drop.
pub struct Vm {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    serial: Arc<Serial>,
    cursor: usize,
    qmp_path: PathBuf,
    log_path: PathBuf,
    ports: BTreeMap<u16, u16>,
    started: Instant,
    _dir: tempfile::TempDir,
    seq: u32,
    ssh_key: Option<crate::ssh::Key>,
    /// Where the boot in which [`Vm::sh`] became root began in the serial text.
    root_at: Option<usize>,
    /// The console prompt to become root from comes after this offset.
    prompt_from: usize,
    /// Kills QEMU once the VM outlives [`vm_limit`]; see [`Watchdog`].
    watchdog: Option<Watchdog>,
}

/// Pick a free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Vm {
    /// Start the VM. Returns once QEMU runs; use [`Vm::expect`] to wait for the guest.
    pub fn boot(opts: VmOptions) -> anyhow::Result<Vm> {
        let logs = crate::paths::repo_root().join("target").join("vm-logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("mkdir {}", logs.display()))?;
        let log_path = logs.join(format!("{}.log", opts.name));
        let qemu_log = logs.join(format!("{}.qemu.log", opts.name));
        let dir = tempfile::Builder::new()
            .prefix("vm-")
            .tempdir()
            .context("VM temp dir")?;
        let qmp_path = dir.path().join("qmp.sock");
        let mut ports = BTreeMap::new();
        for g in &opts.forward {
            ports.insert(*g, free_port()?);
        }
        let mut args = opts.qemu_args(&qmp_path, &ports);
        args.extend(["-chardev".into(), "stdio,id=ser0,signal=off".into()]);
        args.extend(["-serial".into(), "chardev:ser0".into()]);
        let mut child = Command::new(crate::setup::QEMU)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&qemu_log).context("QEMU log")?)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (is qemu-system-x86 installed?)",
                    crate::setup::QEMU
                )
            })?;
        let started = Instant::now();
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let serial = Arc::new(Serial::default());
        let mut log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        writeln!(log, "# qemu {}", args.join(" ")).ok();
        let s2 = serial.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let mut g = s2.text.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    g.1 = true;
                    s2.changed.notify_all();
                    return;
                }
                let _ = log.write_all(&buf[..n]);
                g.0.push_str(&String::from_utf8_lossy(&buf[..n]));
                s2.changed.notify_all();
            }
        });
        let watchdog = watchdog(&opts.name, child.id(), &log_path);
        Ok(Vm {
            name: opts.name,
            child,
            stdin,
            serial,
            cursor: 0,
            qmp_path,
            log_path,
            ports,
            started,
            _dir: dir,
            seq: 0,
            ssh_key: opts.ssh_key,
            root_at: None,
            prompt_from: 0,
            watchdog: Some(watchdog),
        })
    }

    /// Where the serial console is logged.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Time since QEMU was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Host port forwarded to `guest_port`.
    pub fn port(&self, guest_port: u16) -> Option<u16> {
        self.ports.get(&guest_port).copied()
    }

    /// Everything the serial console printed so far.
    pub fn serial_text(&self) -> String {
        self.serial
            .text
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Wait until `pattern` appears on the serial console after the previous match; return the
    /// text from the cursor to the end of the match, and move the cursor past it.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> anyhow::Result<String> {
        let caps = self.expect_captures(pattern, timeout)?;
        Ok(caps.into_iter().next().unwrap_or_default())
    }

    /// Like [`Vm::expect`], returning the text before the match followed by the capture groups.
    pub fn expect_captures(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let re = Regex::new(pattern).with_context(|| format!("bad pattern {pattern:?}"))?;
        let (out, end) = self.wait_for(&re, self.cursor, timeout)?;
        self.cursor = end;
        Ok(out)
    }

    /// Wait until `re` matches the serial text after byte `from`: the text from `from` to the
    /// end of the match followed by the capture groups, and where the match ends.
    fn wait_for(
        &self,
        re: &Regex,
        from: usize,
        timeout: Duration,
    ) -> anyhow::Result<(Vec<String>, usize)> {
        let pattern = re.as_str();
        let deadline = Instant::now() + timeout;
        let mut next_note = Instant::now() + NOTE_EVERY;
        let mut g = self.serial.text.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let hay = &g.0[from.min(g.0.len())..];
            if let Some(c) = re.captures(hay) {
                let m = c.get(0).expect("group 0");
                let mut out = vec![hay[..m.end()].to_string()];
                out.extend(
                    c.iter()
                        .skip(1)
                        .map(|x| x.map(|x| x.as_str().to_string()).unwrap_or_default()),
                );
                return Ok((out, from + m.end()));
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                let why = if g.1 { "QEMU exited" } else { "timed out" };
                let tail: Vec<&str> = g.0.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "VM {}: {why} after {:.1}s waiting for /{pattern}/ on the serial console\nserial log: {}\n--- last lines ---\n{}",
                    self.name,
                    self.started.elapsed().as_secs_f64(),
                    self.log_path.display(),
                    tail.join("\n")
                );
            }
            // Long waits say so, every 15 s, naming the VM and its log.
            if now >= next_note {
                eprintln!(
                    "[vm {}] still waiting for /{pattern}/ after {:.0}s (serial log: {})",
                    self.name,
                    self.started.elapsed().as_secs_f64(),
                    self.log_path.display()
                );
                next_note = now + NOTE_EVERY;
            }
            let wake = deadline.min(next_note);
            g = self
                .serial
                .changed
                .wait_timeout(g, wake - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Type `text` on the serial console.
    pub fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(text.as_bytes())
            .context("writing to the serial console")?;
        self.stdin.flush().context("flushing the serial console")
    }

    /// Run a shell command as root on the host (PID 1's namespaces), through the serial
    /// console: return its output and exit code. The first call of each boot becomes root from
    /// the console's autologin session ([`Vm::root_shell`]).
    pub fn sh(&mut self, cmd: &str, timeout: Duration) -> anyhow::Result<(String, i32)> {
        self.root_shell(timeout)?;
        self.console_sh(cmd, timeout)
    }

    /// Where the latest boot began in the serial text (PID 1's first line).
    fn boot_start(&self) -> usize {
        let g = self.serial.text.lock().unwrap_or_else(|e| e.into_inner());
        g.0.rfind(BOOT_START).unwrap_or(0)
    }

    /// Like [`Vm::expect`], but looking from the start of the latest boot rather than from the
    /// cursor: for what the console prints at about the time of `[ros] ready` (a prompt), which
    /// may come before it. The cursor moves past the match when it was behind it.
    pub fn expect_since_boot(
        &mut self,
        pattern: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let re = Regex::new(pattern).with_context(|| format!("bad pattern {pattern:?}"))?;
        let (mut out, end) = self.wait_for(&re, self.boot_start(), timeout)?;
        self.cursor = self.cursor.max(end);
        Ok(out.swap_remove(0))
    }

    /// Make the serial console's shell a root shell on the host, once per boot: wait for the
    /// autologin session's prompt ([`CONSOLE_PROMPT`]) and turn it into `sudo nsenter` into
    /// PID 1's namespaces. A no-op when this boot's shell already is root.
    pub fn root_shell(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let boot_at = self.boot_start();
        if self.root_at == Some(boot_at) {
            return Ok(());
        }
        let re = Regex::new(CONSOLE_PROMPT).expect("valid pattern");
        self.wait_for(&re, boot_at.max(self.prompt_from), timeout)
            .context("waiting for the console's autologin session")?;
        self.send(BECOME_ROOT)?;
        self.root_at = Some(boot_at);
        Ok(())
    }

    /// The serial console's shell has ended (the test typed `exit`): the next [`Vm::sh`]
    /// becomes root again from the session that the console starts next.
    pub fn shell_ended(&mut self) {
        self.root_at = None;
        self.prompt_from = self.cursor;
    }

    /// Run a shell command in the serial console's shell as it is (the autologin session as
    /// `rancher`, or whatever the test made of it); return its output and exit code.
    pub fn console_sh(&mut self, cmd: &str, timeout: Duration) -> anyhow::Result<(String, i32)> {
        self.seq += 1;
        let n = self.seq;
        // One line, so that no typed-ahead echo lands inside the output; `eval` takes any
        // command (`a &`, `a; b`) in the current shell. The markers are printed with printf so
        // the echoed command line never matches them.
        let quoted = cmd.replace('\'', r"'\''");
        self.send(&format!(
            "printf '@@%s\\n' B{n}; eval '{quoted}'; printf '@@%s:%s\\n' E{n} $?\n"
        ))?;
        self.expect(&format!("@@B{n}\r?\n"), timeout)?;
        let caps = self.expect_captures(&format!("@@E{n}:(\\d+)\r?\n"), timeout)?;
        let out = caps[0]
            .rsplit_once("@@E")
            .map(|(o, _)| o)
            .unwrap_or("")
            .replace('\r', "");
        Ok((out, caps[1].parse().unwrap_or(-1)))
    }

    /// The `ssh` arguments to log in to this VM as `user` with `key` (its forwarded port 22 and
    /// its own known_hosts file).
    pub fn ssh_args(&self, key: &Path, user: &str) -> anyhow::Result<Vec<String>> {
        let port = self
            .port(22)
            .context("port 22 is not forwarded (VmOptions::ssh_key or forward(22))")?;
        Ok(crate::ssh::args(
            port,
            key,
            &self._dir.path().join("known_hosts"),
            user,
        ))
    }

    /// Boot and wait for PID 1's `[ros] ready` line; a `[ros] degraded` boot is an error that
    /// names the services that do not run.
    pub fn boot_ready(opts: VmOptions, timeout: Duration) -> anyhow::Result<Vm> {
        let mut vm = Vm::boot(opts)?;
        vm.expect_ready(timeout)?;
        Ok(vm)
    }

    /// Wait for PID 1's end of boot: `[ros] ready T` gives T (seconds since the kernel
    /// started); `[ros] degraded` is an error naming the services that do not run.
    pub fn expect_ready(&mut self, timeout: Duration) -> anyhow::Result<f64> {
        let end = self.expect_captures(r"\[ros\] (ready|degraded) (\d+\.\d+)\r?\n", timeout)?;
        if &end[1] == "degraded" {
            let text = self.serial_text();
            let why = text
                .lines()
                .rev()
                .find(|l| l.contains("[ros] not running: "))
                .unwrap_or("");
            bail!(
                "the boot ended degraded, not ready: {why}\nserial log: {}",
                self.log_path.display()
            );
        }
        Ok(end[2].parse()?)
    }

    /// [`Vm::sh`] that must succeed: its output, trimmed, or an error with the status, the
    /// output and the serial log's path.
    pub fn sh_ok(&mut self, cmd: &str, timeout: Duration) -> anyhow::Result<String> {
        let (out, rc) = self.sh(cmd, timeout)?;
        if rc != 0 {
            bail!(
                "`{cmd}` on the serial console failed ({rc}): {out}\nserial log: {}",
                self.log_path.display()
            );
        }
        Ok(out.trim().to_string())
    }

    /// Run `cmd` (its failure ignored) every second until `done(output)` or `within` passes;
    /// the last output either way.
    pub fn poll(
        &mut self,
        cmd: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let out = self.sh_ok(&format!("{cmd} 2>/dev/null || true"), within)?;
            if done(&out) || Instant::now() >= deadline {
                return Ok(out);
            }
            self.sh_ok("sleep 1", within)?;
        }
    }

    /// [`Vm::ssh`] that must succeed: its stdout, trimmed.
    pub fn ssh_ok(&self, cmd: &str) -> anyhow::Result<String> {
        let out = self.ssh(cmd)?;
        if !out.status.success() {
            bail!(
                "`{cmd}` over SSH failed ({}): {}{}\nserial log: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_path.display()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Run `cmd` over SSH as `rancher` with the VM's key, once (see [`Vm::wait_ssh`]).
    pub fn ssh(&self, cmd: &str) -> anyhow::Result<std::process::Output> {
        let key = self
            .ssh_key
            .as_ref()
            .context("no SSH key for this VM (VmOptions::ssh_key)")?;
        crate::ssh::run(&self.ssh_args(&key.private, crate::ssh::USER)?, cmd)
    }

    /// Try `ssh true` until it works or `timeout` passes; how long it took from now. Says
    /// every 15 s that it is still trying, with the last error.
    pub fn wait_ssh(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut next_note = start + NOTE_EVERY;
        loop {
            let out = self.ssh("true")?;
            if out.status.success() {
                return Ok(start.elapsed());
            }
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if start.elapsed() >= timeout {
                bail!(
                    "VM {}: no SSH login after {:.0}s: {why}\nserial log: {}",
                    self.name,
                    timeout.as_secs_f64(),
                    self.log_path.display()
                );
            }
            if Instant::now() >= next_note {
                eprintln!(
                    "[vm {}] still waiting for SSH after {:.0}s ({why}; serial log: {})",
                    self.name,
                    start.elapsed().as_secs_f64(),
                    self.log_path.display()
                );
                next_note = Instant::now() + NOTE_EVERY;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run a QMP command (a fresh connection each time).
    pub fn qmp<C: qapi::Command>(&self, cmd: &C) -> anyhow::Result<C::Ok> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match UnixStream::connect(&self.qmp_path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).with_context(|| format!("QMP {}", self.qmp_path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut q = qapi::Qmp::from_stream(&stream);
        q.handshake()
            .map_err(|e| anyhow::anyhow!("QMP handshake: {e}"))?;
        q.execute(cmd)
            .map_err(|e| anyhow::anyhow!("QMP {}: {e}", C::NAME))
    }

    /// Press the ACPI power button.
    pub fn powerdown(&self) -> anyhow::Result<()> {
        self.qmp(&qapi::qmp::system_powerdown {}).map(|_| ())
    }

    /// Hard reset.
    pub fn reset(&self) -> anyhow::Result<()> {
        self.qmp(&qapi::qmp::system_reset {}).map(|_| ())
    }

    /// Pull the plug: QEMU quits at once.
    pub fn quit(&self) -> anyhow::Result<()> {
        self.qmp(&qapi::qmp::quit {}).map(|_| ())
    }

    /// `query-status`: whether the guest is running, and its run state.
    pub fn status(&self) -> anyhow::Result<qapi::qmp::StatusInfo> {
        self.qmp(&qapi::qmp::query_status {})
    }

    /// Press keys together (`["ctrl", "alt", "delete"]`: QEMU qcodes).
    pub fn send_keys(&self, keys: &[&str]) -> anyhow::Result<()> {
        let keys = keys
            .iter()
            .map(|k| {
                let code: qapi::qmp::QKeyCode =
                    serde_json::from_value(serde_json::Value::String(k.to_string()))
                        .with_context(|| format!("unknown key {k:?}"))?;
                Ok(qapi::qmp::KeyValue::qcode(qapi::qmp::QKeyCodeWrapper {
                    data: code,
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.qmp(&qapi::qmp::send_key {
            keys,
            hold_time: None,
        })
        .map(|_| ())
    }

    /// Wait for QEMU to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let reaped = {
                // Held while reaping, so the watchdog never signals a recycled pid.
                let lock = self.watchdog.as_ref().map(|w| w.unreaped.clone());
                let mut none = false;
                let mut guard = lock
                    .as_ref()
                    .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
                let unreaped = guard.as_deref_mut().unwrap_or(&mut none);
                let st = self.child.try_wait()?;
                if st.is_some() {
                    *unreaped = false;
                }
                st
            };
            if let Some(st) = reaped {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                bail!(
                    "VM {}: QEMU still running after {:.0}s; serial log: {}",
                    self.name,
                    timeout.as_secs_f64(),
                    self.log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A thread that kills QEMU once the VM has lived [`vm_limit`], unless called off first.
/// `unreaped` is held by whoever reaps QEMU, and checked under the same lock before the kill, so
/// the signal can only reach QEMU itself.
struct Watchdog {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    unreaped: Arc<Mutex<bool>>,
}

fn watchdog(name: &str, pid: u32, log: &Path) -> Watchdog {
    let (stop, rx) = std::sync::mpsc::channel::<()>();
    let unreaped = Arc::new(Mutex::new(true));
    let limit = vm_limit();
    let (name, log, alive) = (name.to_string(), log.to_path_buf(), unreaped.clone());
    let thread = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            let alive = alive.lock().unwrap_or_else(|e| e.into_inner());
            if !*alive {
                return;
            }
            eprintln!(
                "[vm {name}] still running after {}s (HARNESS_VM_LIMIT): killing QEMU; \
                 the test hung on something in the guest; serial log: {}",
                limit.as_secs(),
                log.display()
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    Watchdog {
        stop,
        thread,
        unreaped,
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            let _ = w.stop.send(());
            let _ = w.thread.join();
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `HARNESS_ICOUNT=1`: the guest's clock counts its instructions (QEMU `-icount
/// shift=0,sleep=off`: 1 ns each, idle time skipped), so a boot's figures in guest time
/// (`bench services`, the `[ros]` lines) are the guest's work, the same at every run whatever
/// the host is doing: for telling two images apart by a few percent, which wall-clock runs on
/// these machines (±10 % from run to run) cannot. They leave out QEMU's own costs (translating
/// code the first time it runs, TLB misses), which wall-clock runs include. One vCPU only
/// (QEMU hangs bringing up a second under `-icount`): `-smp` is 1 whatever was asked.
pub fn icount() -> bool {
    std::env::var("HARNESS_ICOUNT").is_ok_and(|v| v == "1")
}
