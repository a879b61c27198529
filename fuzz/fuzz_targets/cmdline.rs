//! A kernel command line (any bytes) parsed as PID 1 parses `/proc/cmdline`, and the
//! configuration layer made of its `rancher.*` and `cc.*` words. Asserts what boot relies on:
//! the line PID 1 binds over `/proc/cmdline` (`kernel_line`) reads back as exactly the words
//! before `--` (so none after it, the hidden ones, shows), the kept words after `--`
//! (`init_line`, read back by `Cmdline::from_proc`) read back as themselves, and the layer made
//! from the line is valid (each bad word is refused on its own).

#![no_main]

use libfuzzer_sys::fuzz_target;
use os::cmdline::Cmdline;
use os::config::check_value;
use os::config::layers::{cmdline_layer, CMDLINE_SOURCE};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let c = Cmdline::parse(line);
    let shown = Cmdline::parse(&c.kernel_line());
    assert!(
        shown.init.is_empty(),
        "the sanitized line has words after `--`: {:?}",
        c.kernel_line()
    );
    assert_eq!(
        shown.kernel, c.kernel,
        "the sanitized line reads back otherwise"
    );
    let kept = Cmdline::parse(&format!("-- {}", c.init_line()));
    assert_eq!(kept.init, c.init, "the kept words read back otherwise");

    let (layer, _refused) = cmdline_layer(&c);
    let checked = check_value(CMDLINE_SOURCE, layer);
    assert!(
        checked.errors.is_empty(),
        "the command-line layer is invalid: {:?}",
        checked.errors
    );
});
