//! Kernel arguments of one's own (`rancherctl install --append`, `os upgrade --append`): kept
//! in the boot state as `A_APPEND` / `B_APPEND`, one per slot, which GRUB puts after the
//! built-in arguments (`$append`, unquoted, split into words). An upgrade gives the new slot the
//! booted slot's arguments unless it is given new ones, so they survive every upgrade, and a
//! rollback boots the old slot with the arguments it had.
//!
//! The text lands in a GRUB environment block and is expanded by GRUB's script: only plain
//! words of a small alphabet pass (no quotes, `$`, `\`, `;`, `#`, braces or control
//! characters), at most [`MAX_LEN`] bytes so that both slots' arguments and the boot state fit
//! the one-sector block; `rancher.boot.slot` is GRUB's to say.

/// The most one slot's arguments may take.
pub const MAX_LEN: usize = 200;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AppendError {
    #[error("kernel arguments {0:?}: {1}")]
    Bad(String, String),
}

/// The arguments as they are kept: words joined by one space. Refuses what GRUB or the boot
/// state could not carry as given.
pub fn check(args: &str) -> Result<String, AppendError> {
    let bad = |why: String| AppendError::Bad(args.to_string(), why);
    let words: Vec<&str> = args.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.len() > MAX_LEN {
        return Err(bad(format!(
            "{} bytes, at most {MAX_LEN} fit the boot state",
            joined.len()
        )));
    }
    if let Some(c) = joined
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " ._,:=/+@%-[]~".contains(*c)))
    {
        return Err(bad(format!(
            "{c:?} is not allowed (letters, digits, space and ._,:=/+@%-[]~ are)"
        )));
    }
    if let Some(w) = words.iter().find(|w| w.starts_with("rancher.boot.slot")) {
        return Err(bad(format!("{w:?}: the boot slot is GRUB's to say")));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_pass_and_what_grub_would_read_otherwise_is_named() {
        assert_eq!(
            check("  rancher.autologin=ttyS0   console=ttyS0,115200n8 ").unwrap(),
            "rancher.autologin=ttyS0 console=ttyS0,115200n8"
        );
        assert_eq!(
            check("rancher.cloud_init.datasources=[url:http://10.0.2.2:8080/cc]").unwrap(),
            "rancher.cloud_init.datasources=[url:http://10.0.2.2:8080/cc]"
        );
        assert_eq!(check("").unwrap(), "");
        for (args, says) in [
            ("a=\"b c\"", "'\"' is not allowed"),
            ("x=$foo", "'$' is not allowed"),
            ("a; reboot", "';' is not allowed"),
            ("a\u{7}", "'\\u{7}' is not allowed"),
            ("rancher.boot.slot=SLOT_B", "GRUB's to say"),
        ] {
            let e = check(args).unwrap_err().to_string();
            assert!(e.contains(says), "{args}: {e}");
        }
        assert!(check(&"a".repeat(201))
            .unwrap_err()
            .to_string()
            .contains("at most 200"));
    }
}
