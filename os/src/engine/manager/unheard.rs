//! Whether a signal sent now would be lost on a container's process. The kernel drops a signal
//! sent from outside to its pid namespace's init (PID 1 in there) when that process neither
//! catches nor blocks it, the default action notwithstanding. A process just started has not
//! set its handlers yet, nor has the runtime's init before it execs the command: a `stop` that
//! comes then (a shutdown at once after boot, `docker run -d` then `docker stop`) is lost, and
//! KILL follows at the deadline although the program would have stopped cleanly. `stop` asks
//! here before it signals; when the signal would be lost it sends it again once the process
//! takes it. A program that never takes it (`sleep` as PID 1) still gets KILL at the deadline,
//! as under Docker.

/// True when `sig` sent to `pid` now would be dropped: the process is its pid namespace's init
/// (`NSpid:` ends in 1, below the host's) and `sig` is neither caught nor blocked. False when
/// its status cannot be read (gone, or never known).
pub(super) fn would_drop(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| drops(&s, sig))
        .unwrap_or(false)
}

fn drops(status: &str, sig: i32) -> bool {
    if !(1..=64).contains(&sig) || sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return false;
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let ns_init = field("NSpid:").is_some_and(|v| {
        let ids: Vec<&str> = v.split_whitespace().collect();
        ids.len() > 1 && ids.last() == Some(&"1")
    });
    let has = |name: &str| {
        field(name)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
    };
    ns_init && !has("SigBlk:") && !has("SigCgt:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(nspid: &str, blk: &str, cgt: &str) -> String {
        format!(
            "Name:\tntpd\nNSpid:\t{nspid}\nSigQ:\t0/95\nSigPnd:\t0000000000000000\n\
             SigBlk:\t{blk}\nSigIgn:\t0000000000000000\nSigCgt:\t{cgt}\n"
        )
    }
    const NONE: &str = "0000000000000000";
    /// Bit 14: SIGTERM (15).
    const TERM: &str = "0000000000004000";

    #[test]
    fn a_namespace_init_without_a_handler_drops_term() {
        assert!(drops(&status("812\t1", NONE, NONE), libc::SIGTERM));
        assert!(
            drops(&status("812\t1", NONE, NONE), libc::SIGINT),
            "nor INT"
        );
    }

    #[test]
    fn a_handler_or_a_block_takes_it() {
        assert!(!drops(&status("812\t1", TERM, NONE), libc::SIGTERM));
        assert!(!drops(&status("812\t1", NONE, TERM), libc::SIGTERM));
        assert!(
            drops(&status("812\t1", TERM, NONE), libc::SIGINT),
            "only the signal's own bit counts"
        );
    }

    #[test]
    fn outside_a_namespace_or_for_kill_nothing_is_dropped() {
        assert!(
            !drops(&status("812", NONE, NONE), libc::SIGTERM),
            "host pid namespace: the default action applies"
        );
        assert!(
            !drops(&status("812\t7", NONE, NONE), libc::SIGTERM),
            "not the namespace's init"
        );
        assert!(!drops(&status("812\t1", NONE, NONE), libc::SIGKILL));
        assert!(!drops(&status("812\t1", NONE, NONE), 0));
        assert!(!drops(&status("812\t1", NONE, NONE), 65));
        assert!(!drops("", libc::SIGTERM), "unreadable: not known to drop");
    }

    #[test]
    fn this_process_is_read() {
        // The test process is not a namespace init (or, in a container, is not PID 1 there).
        assert!(!would_drop(std::process::id() as i32, libc::SIGTERM));
        assert!(!would_drop(0, libc::SIGTERM));
    }
}
