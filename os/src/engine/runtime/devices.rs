//! The cgroup v2 device filter: which device nodes a container may open or create. On cgroup v2
//! the kernel asks an eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`) attached to the container's
//! cgroup, on every `open(2)` and `mknod(2)` of a device node by any process in it, exec'd ones
//! included.
//!
//! Why our own and not libcgroups': its `cgroupsv2_devices` feature brings libbpf (a C library
//! with libelf and zlib) into the static PID 1 for what is a dozen instructions and two
//! `bpf(2)` calls. The program is generated from the OCI rules the way runc's and youki's are:
//! default deny, and an allow rule matches on type, access (a subset of its `rwm`), major and
//! minor, `-1`/absent meaning any.
//!
//! The default list is runc's (Docker's): any device may be *created* (`mknod`, harmless on its
//! own), and only `null`, `zero`, `full`, `random`, `urandom`, `tty`, `console`, the
//! container's ptys and `ptmx` may be opened. A device node that arrives in an image's layer,
//! or one a container makes with `CAP_MKNOD`, is therefore inert: opening `/dev/vda`'s numbers
//! fails with `EPERM`. `devices:` adds rules; `privileged` allows everything.
//!
//! The filter is attached by the helper after libcontainer has created the container (its init
//! is in the cgroup and waits for `start`) and before the command runs.

use super::error::RuntimeError;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One allow rule: type (`None`: any), major and minor (`None`: any), access letters.
fn allow(
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(typ.or(Some(LinuxDeviceType::A)));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// runc's default rules: create any node; open only the harmless ones.
pub fn default_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        allow(Some(C), None, None, "m"),
        allow(Some(B), None, None, "m"),
        allow(Some(C), Some(1), Some(3), "rwm"), // null
        allow(Some(C), Some(1), Some(5), "rwm"), // zero
        allow(Some(C), Some(1), Some(7), "rwm"), // full
        allow(Some(C), Some(1), Some(8), "rwm"), // random
        allow(Some(C), Some(1), Some(9), "rwm"), // urandom
        allow(Some(C), Some(5), Some(0), "rwm"), // tty
        allow(Some(C), Some(5), Some(1), "rwm"), // console
        allow(Some(C), Some(136), None, "rwm"),  // pts/*
        allow(Some(C), Some(5), Some(2), "rwm"), // ptmx
    ]
}

/// Every device, every access: what a privileged container gets.
pub fn allow_all() -> Vec<LinuxDeviceCgroup> {
    vec![allow(None, None, None, "rwm")]
}

/// A rule for one device node: `c`/`b`, its numbers, `rwm` letters.
pub fn rule_for(typ: LinuxDeviceType, major: i64, minor: i64, access: &str) -> LinuxDeviceCgroup {
    allow(Some(typ), Some(major), Some(minor), access)
}

/// A rule as `docker run --device-cgroup-rule` and compose's `device_cgroup_rules` write it:
/// `c 13:* r` (type `a`, `b` or `c`; major and minor a number or `*`; `r`, `w`, `m` letters).
pub fn parse_rule(text: &str) -> Result<LinuxDeviceCgroup, RuntimeError> {
    let bad = |why: &str| RuntimeError::Spec(format!("device rule {text:?}: {why}"));
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [typ, numbers, access] = parts.as_slice() else {
        return Err(bad("expected TYPE MAJOR:MINOR ACCESS, e.g. \"c 13:* r\""));
    };
    let typ = match *typ {
        "a" => None,
        "b" => Some(LinuxDeviceType::B),
        "c" => Some(LinuxDeviceType::C),
        other => return Err(bad(&format!("type {other:?} is not a, b or c"))),
    };
    let (major, minor) = numbers
        .split_once(':')
        .ok_or_else(|| bad("expected MAJOR:MINOR"))?;
    let number = |n: &str| -> Result<Option<i64>, RuntimeError> {
        match n {
            "*" => Ok(None),
            _ => n
                .parse::<u32>()
                .map(|v| Some(i64::from(v)))
                .map_err(|_| bad(&format!("{n:?} is not a device number or *"))),
        }
    };
    access_bits(access)?;
    Ok(allow(typ, number(major)?, number(minor)?, access))
}

// The kernel's constants (include/uapi/linux/bpf.h).
const BPF_DEVCG_ACC_MKNOD: u32 = 1;
const BPF_DEVCG_ACC_READ: u32 = 2;
const BPF_DEVCG_ACC_WRITE: u32 = 4;
const BPF_DEVCG_DEV_BLOCK: u32 = 1;
const BPF_DEVCG_DEV_CHAR: u32 = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction (`struct bpf_insn`), encoded as the kernel reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    /// `dst = *(u32 *)(src + off)`
    const fn load_word(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x61, dst, src, off, 0)
    }
    /// `dst &= imm` (32-bit)
    const fn and_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x54, dst, 0, 0, imm)
    }
    /// `dst >>= imm` (32-bit)
    const fn rsh_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x74, dst, 0, 0, imm)
    }
    /// `dst = src` (32-bit)
    const fn mov_reg(dst: u8, src: u8) -> Insn {
        Insn::new(0xbc, dst, src, 0, 0)
    }
    /// `dst = imm` (32-bit)
    const fn mov_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0xb4, dst, 0, 0, imm)
    }
    /// `if dst != imm goto +off`
    const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x55, dst, 0, off, imm)
    }
    /// `if dst != src goto +off`
    const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x5d, dst, src, off, 0)
    }
    const fn exit() -> Insn {
        Insn::new(0x95, 0, 0, 0, 0)
    }
}

fn access_bits(access: &str) -> Result<u32, RuntimeError> {
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => BPF_DEVCG_ACC_READ,
            'w' => BPF_DEVCG_ACC_WRITE,
            'm' => BPF_DEVCG_ACC_MKNOD,
            other => {
                return Err(RuntimeError::Spec(format!(
                    "device access {access:?}: {other:?} is not one of r, w, m"
                )))
            }
        };
    }
    Ok(bits)
}

/// The filter program for allow rules (`allow: false` rules are refused: the default is deny,
/// and a list of allows is all the engine writes).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, RuntimeError> {
    // r2 = device type, r3 = requested access, r4 = major, r5 = minor (bpf_cgroup_dev_ctx).
    let mut prog = vec![
        Insn::load_word(2, 1, 0),
        Insn::and_imm(2, 0xffff),
        Insn::load_word(3, 1, 0),
        Insn::rsh_imm(3, 16),
        Insn::load_word(4, 1, 4),
        Insn::load_word(5, 1, 8),
    ];
    for r in rules {
        if !r.allow() {
            return Err(RuntimeError::Spec(
                "device rules: only allow rules are supported".into(),
            ));
        }
        let access = access_bits(r.access().as_deref().unwrap_or("rwm"))?;
        let all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
        // Each check jumps past the rest of this rule's block when it does not match.
        let mut checks: Vec<Box<dyn Fn(i16) -> Vec<Insn>>> = Vec::new();
        match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => {}
            LinuxDeviceType::B => checks.push(Box::new(|o| {
                vec![Insn::jne_imm(2, BPF_DEVCG_DEV_BLOCK as i32, o)]
            })),
            LinuxDeviceType::C | LinuxDeviceType::U => checks.push(Box::new(|o| {
                vec![Insn::jne_imm(2, BPF_DEVCG_DEV_CHAR as i32, o)]
            })),
            LinuxDeviceType::P => {
                return Err(RuntimeError::Spec(
                    "device rules: FIFOs are not devices the filter sees".into(),
                ))
            }
        }
        if access != all {
            // (requested & allowed) == requested: every requested access is allowed.
            checks.push(Box::new(move |o| {
                vec![
                    Insn::mov_reg(1, 3),
                    Insn::and_imm(1, access as i32),
                    Insn::jne_reg(1, 3, o),
                ]
            }));
        }
        for (reg, num) in [(4u8, r.major()), (5u8, r.minor())] {
            if let Some(n) = num.filter(|n| *n >= 0) {
                let n = i32::try_from(n).map_err(|_| {
                    RuntimeError::Spec(format!("device number {n} is out of range"))
                })?;
                checks.push(Box::new(move |o| vec![Insn::jne_imm(reg, n, o)]));
            }
        }
        // Lay the checks out back to front so each knows how far the block's end is.
        let mut block = vec![Insn::mov_imm(0, 1), Insn::exit()];
        for check in checks.iter().rev() {
            let skip = i16::try_from(block.len()).unwrap_or(i16::MAX);
            let mut insns = check(0);
            // Only the last instruction of a check jumps.
            let last = insns.len() - 1;
            insns[last].off = skip;
            insns.extend(block);
            block = insns;
        }
        let matches_all = checks.is_empty();
        prog.extend(block);
        if matches_all {
            // Nothing after an unconditional allow is reachable, and the verifier refuses
            // unreachable instructions.
            return Ok(prog);
        }
    }
    prog.push(Insn::mov_imm(0, 0));
    prog.push(Insn::exit());
    Ok(prog)
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, the fields up to `expected_attach_type`; the rest of
/// the union the kernel reads as zero (it checks that the tail past our size is zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `repr(C)` struct of the layout the kernel expects
    // for `cmd`, and its size is passed with it; the kernel reads it, and writes only into a
    // log buffer it names, which the caller owns and keeps alive across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Load the filter for `rules` and attach it to the cgroup directory `cgroup` (alongside any
/// program already there: `BPF_F_ALLOW_MULTI`, every attached program must allow).
pub fn attach(cgroup: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), RuntimeError> {
    // Made first: the rules are checked as they were when every set had its program.
    let insns = program(rules)?;
    if rules.iter().any(allows_all) {
        // (`privileged`.) A program that allows everything filters nothing: every program is
        // attached with BPF_F_ALLOW_MULTI (here and on every cgroup the engines make), so the
        // kernel runs the ancestors' programs as well and denies when any of them does;
        // leaving this one out changes no answer, and spares each start a verifier load.
        return Ok(());
    }
    let prog = load(&insns)?;
    let dir = std::fs::File::open(cgroup).map_err(|e| RuntimeError::io(cgroup, e))?;
    let mut at = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut at).map_err(|e| {
        RuntimeError::Spec(format!(
            "attaching the device filter to {}: {e}",
            cgroup.display()
        ))
    })?;
    // The attachment holds the program; our fd may close.
    Ok(())
}

/// Whether a rule allows every access to every device.
fn allows_all(r: &LinuxDeviceCgroup) -> bool {
    r.allow()
        && matches!(r.typ(), None | Some(LinuxDeviceType::A))
        && r.major().is_none_or(|n| n < 0)
        && r.minor().is_none_or(|n| n < 0)
        && access_bits(r.access().as_deref().unwrap_or("rwm"))
            .is_ok_and(|a| a == BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)
}

/// Load a device filter program into the kernel (its verifier checks it).
fn load(insns: &[Insn]) -> Result<OwnedFd, RuntimeError> {
    let license = c"Apache-2.0";
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    // The kernel takes letters, digits, `_` and `.` only.
    load.prog_name[..7].copy_from_slice(b"ros_dev");
    let fd = match bpf(BPF_PROG_LOAD, &mut load) {
        Ok(fd) => fd,
        Err(e) => {
            // Once more with the verifier's log, to say why.
            let mut log = vec![0u8; 16 * 1024];
            load.log_level = 1;
            load.log_size = log.len() as u32;
            load.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut load);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let why = String::from_utf8_lossy(&log[..end]);
            return Err(RuntimeError::Spec(format!(
                "loading the device filter (bpf): {e}: {}",
                why.trim()
            )));
        }
    };
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `program` emits, to check the decisions.
    fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u32 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u32; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[dst] = ctx[(i.off / 4) as usize],
                0x54 => r[dst] &= i.imm as u32,
                0x74 => r[dst] >>= i.imm as u32,
                0xbc => r[dst] = r[src],
                0xb4 => r[dst] = i.imm as u32,
                0x55 if r[dst] != i.imm as u32 => pc += i.off as usize,
                0x5d if r[dst] != r[src] => pc += i.off as usize,
                0x55 | 0x5d => {}
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const C: u32 = BPF_DEVCG_DEV_CHAR;
    const B: u32 = BPF_DEVCG_DEV_BLOCK;
    const R: u32 = BPF_DEVCG_ACC_READ;
    const W: u32 = BPF_DEVCG_ACC_WRITE;
    const M: u32 = BPF_DEVCG_ACC_MKNOD;

    #[test]
    fn the_default_list_opens_only_the_harmless_devices() {
        let p = program(&default_rules()).unwrap();
        assert_eq!(run(&p, C, R | W, 1, 3), 1, "null");
        assert_eq!(run(&p, C, R, 1, 9), 1, "urandom");
        assert_eq!(run(&p, C, R | W, 136, 4), 1, "pts/4");
        assert_eq!(run(&p, C, R | W, 5, 2), 1, "ptmx");
        assert_eq!(run(&p, B, R, 254, 0), 0, "vda");
        assert_eq!(run(&p, B, W, 8, 0), 0, "sda");
        assert_eq!(run(&p, C, R, 1, 1), 0, "mem");
        assert_eq!(run(&p, C, R | W, 10, 229), 0, "fuse");
        assert_eq!(run(&p, B, M, 254, 0), 1, "mknod of a block device");
        assert_eq!(run(&p, C, M | R, 1, 1), 0, "mknod and read of mem");
    }

    #[test]
    fn added_rules_and_allow_all_widen_it() {
        let mut rules = default_rules();
        rules.push(rule_for(LinuxDeviceType::C, 10, 229, "rw"));
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, C, R | W, 10, 229), 1);
        assert_eq!(run(&p, C, R | W, 10, 228), 0);
        let all = program(&allow_all()).unwrap();
        assert_eq!(run(&all, B, R | W | M, 254, 0), 1);
        // Nothing unreachable after the unconditional allow (the verifier refuses it).
        assert_eq!(all.last(), Some(&Insn::exit()));
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn only_an_allow_all_rule_skips_the_filter() {
        assert!(allow_all().iter().any(allows_all));
        assert!(allows_all(&parse_rule("a *:* rwm").unwrap()));
        for narrower in ["a *:* rw", "c *:* rwm", "b 8:* rwm", "a 1:3 rwm"] {
            assert!(!allows_all(&parse_rule(narrower).unwrap()), "{narrower}");
        }
        assert!(!default_rules().iter().any(allows_all));
        // A rule the filter cannot express, before the allow-all, is refused as before.
        let mut deny = parse_rule("c 5:1 rwm").unwrap();
        deny.set_allow(false);
        let rules = [vec![deny], allow_all()].concat();
        assert!(attach(Path::new("/nonexistent"), &rules).is_err());
    }

    #[test]
    fn rules_parse_as_docker_writes_them() {
        let r = parse_rule("c 13:* r").unwrap();
        let p = program(&[r]).unwrap();
        assert_eq!(run(&p, C, R, 13, 64), 1);
        assert_eq!(run(&p, C, W, 13, 64), 0);
        assert_eq!(run(&p, B, R, 13, 64), 0);
        let all = program(&[parse_rule("a *:* rwm").unwrap()]).unwrap();
        assert_eq!(run(&all, B, R | W, 8, 1), 1);
        for bad in ["c 13 r", "x 1:2 r", "c 1:y r", "c 1:2 q", "c -1:2 r", ""] {
            assert!(parse_rule(bad).is_err(), "{bad:?}");
        }
    }

    /// The kernel's verifier (this machine's: tests run as root) takes every program we make.
    #[test]
    fn the_kernel_verifier_accepts_the_programs() {
        let mut more = default_rules();
        more.push(parse_rule("c 13:* r").unwrap());
        for rules in [default_rules(), allow_all(), more] {
            load(&program(&rules).unwrap()).unwrap();
        }
    }

    #[test]
    fn bad_rules_are_named() {
        let mut r = rule_for(LinuxDeviceType::C, 1, 3, "rwx");
        assert!(program(&[r.clone()])
            .unwrap_err()
            .to_string()
            .contains("rwx"));
        r.set_access(Some("r".into()));
        r.set_allow(false);
        assert!(program(&[r]).is_err());
    }
}
