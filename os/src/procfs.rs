//! `/proc/PID/stat` read the one way: the command name is in parentheses and may hold spaces
//! and parentheses itself (a process names itself), so the fields start after the last `)`.
//! Shared by the engine's `top` and `stats` and PID 1's power button (how old acpid is).

/// The command and the fields after it: `state` is `[0]`, `ppid` `[1]`, `utime` `[11]`,
/// `stime` `[12]`, `starttime` `[19]` (in clock ticks since boot).
pub fn stat_fields(stat: &str) -> Option<(String, Vec<&str>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    Some((comm, stat.get(close + 1..)?.split_whitespace().collect()))
}

/// Clock ticks a second (`_SC_CLK_TCK`), the unit of the times in `stat`; at least 1.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes an integer and touches no memory.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_command_name() {
        let (comm, f) = stat_fields("42 (a) b (c)) S 1 42 42 34816 0 0").unwrap();
        assert_eq!(comm, "a) b (c)");
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "1");
        assert_eq!(f[4], "34816");
        assert!(stat_fields("42 no parens").is_none());
    }

    #[test]
    fn ticks_are_positive() {
        assert!(clock_ticks() >= 1);
    }
}
