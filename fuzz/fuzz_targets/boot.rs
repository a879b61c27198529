//! What the boot side reads from outside (issue 13), as any bytes: an OS image tar
//! (`bootstate::osimage::read_from`), the release index (`bootstate::releases::parse`), a boot
//! state block (`bootstate::grubenv::Env::parse`) and kernel arguments
//! (`bootstate::append::check`). The first byte picks the reader. Asserts no panic, and what
//! the readers promise: a block that parses renders and parses back to the same variables;
//! arguments that pass are a fixed point and stay within their alphabet and length; an index
//! that parses has its current image among the available ones.

#![no_main]

use libfuzzer_sys::fuzz_target;
use os::bootstate::{append, grubenv, osimage, releases};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let _ = osimage::read_from(rest, "fuzz.tar");
        }
        1 => {
            if let Ok(r) = releases::parse(rest, "fuzz") {
                assert!(r.available.contains(&r.current));
                assert!(r.available.iter().all(|i| releases::valid_reference(i)));
            }
        }
        2 => {
            if let Ok(env) = grubenv::Env::parse(rest, "fuzz") {
                if let Ok(block) = env.render(4096, "fuzz") {
                    let back =
                        grubenv::Env::parse(&block, "fuzz").expect("a rendered block parses");
                    // Values with a newline cannot be carried; all else reads back.
                    if env.vars.iter().all(|(k, v)| {
                        !k.contains(['\n', '='])
                            && !v.contains('\n')
                            && !k.starts_with('#')
                            && !k.is_empty()
                    }) {
                        assert_eq!(back, env);
                    }
                }
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(kept) = append::check(text) {
                assert!(kept.len() <= append::MAX_LEN);
                assert_eq!(append::check(&kept).as_deref(), Ok(kept.as_str()));
                assert!(!kept.contains(['"', '\'', '$', '\\', ';', '#', '\n']));
            }
        }
    }
});
