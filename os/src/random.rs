//! Random bytes from the kernel (getrandom(2), the blocking pool): container ids, password
//! salts. One place for the unsafe call and its loop. At early boot it waits for the kernel's
//! generator to be ready (the harness gives its VMs virtio-rng; a machine with neither that
//! nor RDRAND waits about a second for its first id).

/// Fill `buf`. getrandom(2) with no flags fails only when interrupted by a signal (tried
/// again) or given a bad buffer (impossible for a slice), so this always fills it.
pub fn fill(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: getrandom(2) writes at most `rest.len()` bytes into `rest`, which we hold
        // mutably for the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_fills_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        super::fill(&mut a);
        super::fill(&mut b);
        assert_ne!(a, b);
        super::fill(&mut []);
    }
}
