//! A thread's nice value, or `SCHED_IDLE`: work done beside the boot's critical path (a
//! container prepared ahead, files read ahead) runs at a lower priority than that path, and
//! goes back to 0 when it becomes the path.

/// Set the nice value of thread `tid` (0: the calling one; Linux's nice is per thread).
pub fn set_nice(tid: i32, nice: i32) -> std::io::Result<()> {
    set(libc::PRIO_PROCESS, tid, nice)
}

/// Set the nice value of every thread of process group `pgrp`.
pub fn set_group_nice(pgrp: i32, nice: i32) -> std::io::Result<()> {
    set(libc::PRIO_PGRP, pgrp, nice)
}

fn set(which: libc::__priority_which_t, who: i32, nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority(2) with plain integers; no memory is involved.
    let rc = unsafe { libc::setpriority(which, who as libc::id_t, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Make the calling thread `SCHED_IDLE`: it runs only on a CPU nothing else wants (a nice
/// value still takes a share of a busy CPU: nice 19 about 1.5 % against one task at 0).
pub fn set_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on the calling thread (0) reads `param`, which lives
    // across the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
