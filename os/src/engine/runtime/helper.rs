//! `ros container-helper <verb> …`: the short-lived process that runs libcontainer. Hidden: the
//! engine starts it through [`Runtime`](super::Runtime); people use it only to debug and test.
//!
//! ```text
//! ros container-helper [--root DIR] [--debug] create --id ID --bundle DIR [--stdout F] [--stderr F] [--start]
//! ros container-helper [--root DIR] start  --id ID
//! ros container-helper [--root DIR] kill   --id ID [--signal SIG] [--all]
//! ros container-helper [--root DIR] delete --id ID [--force]
//! ros container-helper [--root DIR] state  --id ID
//! ros container-helper exec --pid PID [--seccomp-from CONFIG.JSON] [--env K=V]… [--user U] [--cwd DIR] [--tty] -- CMD [ARG…]
//! ros container-helper archive (--pid PID | --rootfs DIR) stat|get|put PATH [--keep-owner]
//! ros container-helper [--root DIR] run    --id ID --rootfs DIR [spec flags] [--detach] [--timing] -- CMD [ARG…]
//!   spec flags: --env K=V  --cwd DIR  --hostname H  --host-ns pid,mount,uts,ipc,net  --cgroupns
//!               --privileged  --cap-add CAP  --cap-drop CAP  --bind SRC:DST[:ro]  --read-only
//!               --memory BYTES[k|m|g]  --cpus N  --pids N  --stdout F  --stderr F
//! ```
//!
//! Every verb prints one JSON line on stdout: the container's state, `{"done": …}`, or
//! `{"error": …}` (exit 1). `run` without `--detach` prints nothing of its own on stdout (the
//! container's output is there) and exits with the container's exit code; nor does `exec`
//! (see `container_exec`), whose stdout and stderr are the command's.

use super::container_archive;
use super::container_create::{CreateArgs, Output};
use super::container_exec::{self, ExecArgs};
use super::container_run::RunArgs;
use super::error::RuntimeError;
use super::spec::{BindMount, ContainerSpec, Namespace};
use super::state::{ContainerState, Reply};
use super::{container_create, container_delete, container_kill, container_run, container_start};
use super::{Paths, DEFAULT_ROOT};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Entry point of `ros container-helper`.
pub fn main(args: &[String]) -> ExitCode {
    let t0 = Instant::now();
    reset_signals();
    let mut args = Args(args.iter());
    let mut root = PathBuf::from(DEFAULT_ROOT);
    let mut debug = false;
    let verb = loop {
        match args.next() {
            Some("--root") => match args.value("--root") {
                Ok(v) => root = v.into(),
                Err(e) => return fail(&e),
            },
            Some("--debug") => debug = true,
            Some(v) => break v.to_string(),
            None => return fail(&RuntimeError::Usage("container-helper <verb> …".into())),
        }
    };
    // Errors only by default: without libseccomp libcontainer warns on every start that it
    // cannot apply seccomp (we ask for none; no_new_privileges is still set).
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::ERROR
    };
    if debug {
        // Stamped with the boot clock: `--debug` is for finding where a start's time goes.
        crate::console::init_logging_stamped(level);
    } else {
        crate::console::init_logging(level);
    }
    if verb == "exec" {
        return exec_main(&mut args);
    }
    if verb == "archive" {
        return archive_main(&mut args);
    }
    if verb == "netns" {
        return crate::engine::network::sandbox::main(args.0.as_slice());
    }
    let paths = Paths { root };
    match dispatch(&verb, &mut args, &paths, t0) {
        Ok(Outcome::Reply(r)) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(Outcome::Exit(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => fail(&e),
    }
}

/// `exec`: errors are text on stderr (stdout is the command's) and exit 126 (127: not found).
fn exec_main(args: &mut Args) -> ExitCode {
    let code = match parse_exec(args).and_then(|a| container_exec::exec(&a)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exec: {}", error_chain(&e));
            container_exec::CANNOT_RUN
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `archive`: errors are text on stderr, the exit code says which (see `container_archive`).
fn archive_main(args: &mut Args) -> ExitCode {
    let r = parse_archive(args)
        .map_err(container_archive::Failure::from)
        .and_then(|a| container_archive::run(&a));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(container_archive::Failure(code, msg)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}

fn parse_archive(args: &mut Args) -> Result<container_archive::ArchiveArgs, RuntimeError> {
    use container_archive::Where;
    let at = match args.next() {
        Some("--pid") => Where::Pid(args.parsed("--pid")?),
        Some("--rootfs") => Where::Root(args.value("--rootfs")?.into()),
        _ => {
            return Err(RuntimeError::Usage(
                "archive needs --pid PID or --rootfs DIR".into(),
            ))
        }
    };
    let verb = required(args.next(), "stat|get|put")?.to_string();
    let path = required(args.next(), "PATH")?.to_string();
    let keep_owner = match args.next() {
        None => false,
        Some("--keep-owner") if verb == "put" => true,
        Some(other) => return Err(unknown(other)),
    };
    Ok(container_archive::ArchiveArgs {
        at,
        verb,
        path,
        keep_owner,
    })
}

fn parse_exec(args: &mut Args) -> Result<ExecArgs, RuntimeError> {
    let mut a = ExecArgs::default();
    let mut pid = None;
    while let Some(f) = args.next() {
        match f {
            "--pid" => pid = Some(args.parsed(f)?),
            "--seccomp-from" => a.seccomp_from = Some(args.value(f)?.into()),
            "--env" => a.env.push(args.value(f)?.to_string()),
            "--user" => a.user = Some(args.value(f)?.to_string()),
            "--cwd" => a.cwd = Some(args.value(f)?.to_string()),
            "--tty" => a.tty = true,
            "--" => break,
            other => return Err(unknown(other)),
        }
    }
    a.cmd = args.0.by_ref().cloned().collect();
    a.pid = required(pid, "--pid")?;
    if a.cmd.is_empty() {
        return Err(RuntimeError::Usage("exec needs a command after --".into()));
    }
    Ok(a)
}

enum Outcome {
    Reply(Reply),
    /// `run` in the foreground: the container's exit code.
    Exit(i32),
}

fn dispatch(
    verb: &str,
    args: &mut Args,
    paths: &Paths,
    t0: Instant,
) -> Result<Outcome, RuntimeError> {
    let state = |s| Ok(Outcome::Reply(Reply::State(s)));
    match verb {
        "create" => state(container_create::create(paths, &parse_create(args)?)?),
        "start" => state(container_start::start(paths, &args.only_id()?)?),
        "kill" => {
            let (id, signal, all) = parse_kill(args)?;
            state(container_kill::kill(paths, &id, &signal, all)?)
        }
        "delete" => {
            let (id, force) = parse_delete(args)?;
            container_delete::delete(paths, &id, force)?;
            Ok(Outcome::Reply(Reply::Done { done: id }))
        }
        "state" => state(ContainerState::of(&paths.load(&args.only_id()?)?)),
        "run" => {
            let a = parse_run(args, t0)?;
            let s = container_run::run(paths, &a)?;
            match s.exit_code {
                Some(code) if !a.detach => Ok(Outcome::Exit(code)),
                _ => state(s),
            }
        }
        other => Err(RuntimeError::Usage(format!("unknown verb {other:?}"))),
    }
}

fn fail(e: &RuntimeError) -> ExitCode {
    let msg = error_chain(e);
    eprintln!("container-helper: {msg}");
    println!(
        "{}",
        serde_json::to_string(&Reply::Error { error: msg }).unwrap_or_default()
    );
    ExitCode::FAILURE
}

/// The error and its sources, `: `-joined (libcontainer nests them deeply).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !msg.contains(&m) {
            msg.push_str(": ");
            msg.push_str(&m);
        }
        src = s.source();
    }
    msg
}

/// Give the container a clean signal state. libcontainer execs the container's command without
/// resetting what it inherits, and ignored signals survive `exec` (see [`crate::signals`]):
/// without this `yes | head` would never end inside a container. The mask is cleared too, in
/// case the caller (PID 1 blocks its signals for its signalfd) leaked one. We are
/// single-threaded here, so glibc's own signals are not needed.
fn reset_signals() {
    crate::signals::reset_all();
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// The remaining command-line words.
struct Args<'a>(std::slice::Iter<'a, String>);

impl<'a> Args<'a> {
    fn next(&mut self) -> Option<&'a str> {
        self.0.next().map(|s| s.as_str())
    }

    fn value(&mut self, flag: &str) -> Result<&'a str, RuntimeError> {
        self.next()
            .ok_or_else(|| RuntimeError::Usage(format!("{flag} needs a value")))
    }

    fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, RuntimeError> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| RuntimeError::Usage(format!("{flag}: bad value {v:?}")))
    }

    /// `--id ID` and nothing else.
    fn only_id(&mut self) -> Result<String, RuntimeError> {
        let mut id = None;
        while let Some(a) = self.next() {
            match a {
                "--id" => id = Some(self.value(a)?.to_string()),
                other => return Err(unknown(other)),
            }
        }
        id.ok_or_else(|| RuntimeError::Usage("--id is required".into()))
    }
}

fn unknown(flag: &str) -> RuntimeError {
    RuntimeError::Usage(format!("unknown argument {flag:?}"))
}

fn required<T>(v: Option<T>, flag: &str) -> Result<T, RuntimeError> {
    v.ok_or_else(|| RuntimeError::Usage(format!("{flag} is required")))
}

fn parse_create(args: &mut Args) -> Result<CreateArgs, RuntimeError> {
    let (mut id, mut bundle) = (None, None);
    let (mut stdout, mut stderr) = (Output::Null, Output::Null);
    let mut start = false;
    while let Some(a) = args.next() {
        match a {
            "--id" => id = Some(args.value(a)?.to_string()),
            "--bundle" => bundle = Some(PathBuf::from(args.value(a)?)),
            "--stdout" => stdout = Output::File(args.value(a)?.into()),
            "--stderr" => stderr = Output::File(args.value(a)?.into()),
            "--start" => start = true,
            other => return Err(unknown(other)),
        }
    }
    Ok(CreateArgs {
        id: required(id, "--id")?,
        bundle: required(bundle, "--bundle")?,
        stdout,
        stderr,
        start,
    })
}

fn parse_kill(args: &mut Args) -> Result<(String, String, bool), RuntimeError> {
    let (mut id, mut signal, mut all) = (None, "KILL".to_string(), false);
    while let Some(a) = args.next() {
        match a {
            "--id" => id = Some(args.value(a)?.to_string()),
            "--signal" => signal = args.value(a)?.to_string(),
            "--all" => all = true,
            other => return Err(unknown(other)),
        }
    }
    Ok((required(id, "--id")?, signal, all))
}

fn parse_delete(args: &mut Args) -> Result<(String, bool), RuntimeError> {
    let (mut id, mut force) = (None, false);
    while let Some(a) = args.next() {
        match a {
            "--id" => id = Some(args.value(a)?.to_string()),
            "--force" => force = true,
            other => return Err(unknown(other)),
        }
    }
    Ok((required(id, "--id")?, force))
}

fn parse_run(args: &mut Args, t0: Instant) -> Result<RunArgs, RuntimeError> {
    let mut spec = ContainerSpec::new("", "", Vec::new());
    let (mut id, mut rootfs) = (None, None);
    let (mut detach, mut timing) = (false, false);
    while let Some(a) = args.next() {
        match a {
            "--id" => id = Some(args.value(a)?.to_string()),
            "--rootfs" => rootfs = Some(PathBuf::from(args.value(a)?)),
            "--env" => spec.env.push(args.value(a)?.to_string()),
            "--cwd" => spec.cwd = args.value(a)?.into(),
            "--hostname" => spec.hostname = Some(args.value(a)?.to_string()),
            "--host-ns" => {
                for ns in args.value(a)?.split(',').filter(|s| !s.is_empty()) {
                    spec.host_namespaces.insert(ns.parse::<Namespace>()?);
                }
            }
            "--cgroupns" => spec.cgroupns = true,
            "--privileged" => spec.privileged = true,
            "--cap-add" => spec.cap_add.push(args.value(a)?.to_string()),
            "--cap-drop" => spec.cap_drop.push(args.value(a)?.to_string()),
            "--bind" => spec.binds.push(args.value(a)?.parse::<BindMount>()?),
            "--read-only" => spec.read_only_rootfs = true,
            "--memory" => spec.limits.memory_bytes = Some(parse_bytes(args.value(a)?)?),
            "--cpus" => spec.limits.cpus = Some(args.parsed(a)?),
            "--pids" => spec.limits.pids = Some(args.parsed(a)?),
            "--stdout" => spec.stdout = Some(args.value(a)?.into()),
            "--stderr" => spec.stderr = Some(args.value(a)?.into()),
            "--detach" => detach = true,
            "--timing" => timing = true,
            "--" => break,
            other => return Err(unknown(other)),
        }
    }
    spec.args = args.0.by_ref().cloned().collect();
    spec.id = required(id, "--id")?;
    spec.rootfs = required(rootfs, "--rootfs")?;
    Ok(RunArgs {
        spec,
        detach,
        timing,
        t0,
    })
}

/// `1048576`, `64k`, `64m`, `1g` (binary units; a trailing `b` is allowed).
fn parse_bytes(v: &str) -> Result<i64, RuntimeError> {
    let bad = || RuntimeError::Usage(format!("--memory: bad size {v:?}"));
    let lower = v.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, shift) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 10),
        Some(b'm') => (&lower[..lower.len() - 1], 20),
        Some(b'g') => (&lower[..lower.len() - 1], 30),
        _ => (lower, 0),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(1i64 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn run_flags_make_a_spec() {
        let w = words(
            "--id t1 --rootfs /r --memory 64m --pids 50 --host-ns net,ipc --cap-drop ALL \
             --bind /a:/b:ro --timing -- /bin/busybox sh -c true",
        );
        let a = parse_run(&mut Args(w.iter()), Instant::now()).unwrap();
        assert_eq!(a.spec.id, "t1");
        assert_eq!(a.spec.limits.memory_bytes, Some(64 << 20));
        assert_eq!(a.spec.limits.pids, Some(50));
        assert!(a.spec.host_namespaces.contains(&Namespace::Net));
        assert_eq!(a.spec.args, ["/bin/busybox", "sh", "-c", "true"]);
        assert!(a.timing && !a.detach);
        assert!(a.spec.binds[0].read_only);
    }

    #[test]
    fn sizes_and_bad_flags() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("64k").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert!(parse_bytes("lots").is_err());
        let w = words("--id x --frobnicate");
        assert!(parse_delete(&mut Args(w.iter())).is_err());
        let w = words("--bundle /b");
        assert!(parse_create(&mut Args(w.iter())).is_err());
    }
}
