//! The kernel command line, split the way the kernel splits it (spaces, double quotes), and the
//! part after `--`, which the kernel hands to init and which RancherOS uses for settings that
//! services should not see in `/proc/cmdline`.

/// The kernel command line without the words after `--`, which PID 1 binds over
/// `/proc/cmdline` for everyone else.
pub const SANITIZED_PATH: &str = "/run/ros/cmdline";
/// The words after `--`, kept by PID 1 for root's tools (`rancherctl config`), mode 0600.
pub const INIT_ARGS_PATH: &str = "/run/ros/init-args";

/// One parsed command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// Words before `--`.
    pub kernel: Vec<String>,
    /// Words after `--`.
    pub init: Vec<String>,
}

impl Cmdline {
    /// Parse a command line such as the contents of `/proc/cmdline`.
    pub fn parse(line: &str) -> Cmdline {
        let mut out = Cmdline::default();
        let mut after_dashes = false;
        for word in split_words(line) {
            if word == "--" && !after_dashes {
                after_dashes = true;
            } else if after_dashes {
                out.init.push(word);
            } else {
                out.kernel.push(word);
            }
        }
        out
    }

    /// Read `/proc/cmdline`, with the words after `--` that PID 1 hid from it when they can be
    /// read ([`INIT_ARGS_PATH`], root only).
    pub fn from_proc() -> std::io::Result<Cmdline> {
        let mut c = Cmdline::parse(&std::fs::read_to_string("/proc/cmdline")?);
        if c.init.is_empty() {
            if let Ok(kept) = std::fs::read_to_string(INIT_ARGS_PATH) {
                c.init = Cmdline::parse(&format!("-- {kept}")).init;
            }
        }
        Ok(c)
    }

    /// The words before `--` as a command line again (what services see as `/proc/cmdline`):
    /// a word with whitespace gets its value quoted back, as it was written.
    pub fn kernel_line(&self) -> String {
        join_quoted(&self.kernel)
    }

    /// The words after `--` as a line, quoted the same way.
    pub fn init_line(&self) -> String {
        join_quoted(&self.init)
    }

    /// All words, both sides of `--`, in order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.kernel
            .iter()
            .chain(self.init.iter())
            .map(String::as_str)
    }

    /// `key=value` pairs whose key starts with `prefix` (e.g. `rancher.`), in order.
    pub fn pairs_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.words().filter_map(move |w| {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            k.starts_with(prefix).then_some((k, v))
        })
    }
}

/// Words joined by spaces, a word with whitespace getting its value quoted back (the whole word
/// when its key has whitespace too), an empty word as `""`: [`Cmdline::parse`] reads the line
/// back as the same words.
fn join_quoted(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| {
            let key_value = w
                .split_once('=')
                .filter(|(k, _)| !k.contains(char::is_whitespace));
            if !w.is_empty() && !w.contains(char::is_whitespace) {
                w.clone()
            } else if let Some((k, v)) = key_value {
                format!("{k}=\"{v}\"")
            } else {
                format!("\"{w}\"")
            }
        })
        .collect();
    quoted.join(" ")
}

/// Split on unquoted whitespace; double quotes group words and are removed (as the kernel does).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    words.push(std::mem::take(&mut cur));
                    has_word = false;
                }
            }
            c => {
                cur.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_line_drops_init_words_and_keeps_quotes() {
        let c = Cmdline::parse(
            r#"console=ttyS0 rancher.services.x.command="sh -c 'a b'" -- rancher.password=secret"#,
        );
        assert_eq!(
            c.kernel_line(),
            r#"console=ttyS0 rancher.services.x.command="sh -c 'a b'""#
        );
        assert_eq!(Cmdline::parse(&c.kernel_line()).kernel, c.kernel);
    }

    #[test]
    fn splits_quotes_and_dashes() {
        let c = Cmdline::parse("console=ttyS0 rancher.a=\"x y\" quiet -- rancher.password=p\n");
        assert_eq!(c.kernel, vec!["console=ttyS0", "rancher.a=x y", "quiet"]);
        assert_eq!(c.init, vec!["rancher.password=p"]);
        let pairs: Vec<_> = c.pairs_with_prefix("rancher.").collect();
        assert_eq!(pairs, vec![("rancher.a", "x y"), ("rancher.password", "p")]);
    }

    /// Found by the `cmdline` fuzz target: a word whose key has whitespace (an unclosed or
    /// early quote) was quoted after its `=` only, so the sanitized line read back as other
    /// words, a `--` among them turning the rest into hidden words; an empty word vanished.
    #[test]
    fn the_kernel_line_reads_back_as_the_same_words() {
        for line in [
            r#"x "a -- b"=c y"#,
            r#"x "a b=c d" y"#,
            r#"a "" b"#,
            r#"k="" "#,
            r#"x b' c=d e -- p=1"#,
            r#"x "unclosed -- p=secret"#,
        ] {
            let c = Cmdline::parse(line);
            let back = Cmdline::parse(&c.kernel_line());
            assert_eq!(back.kernel, c.kernel, "{line:?} -> {:?}", c.kernel_line());
            assert!(back.init.is_empty(), "{line:?} -> {:?}", c.kernel_line());
            let kept = Cmdline::parse(&format!("-- {}", c.init_line()));
            assert_eq!(kept.init, c.init, "{line:?}");
        }
    }

    #[test]
    fn empty_quotes_make_an_empty_word() {
        assert_eq!(Cmdline::parse("a=\"\" b").kernel, vec!["a=", "b"]);
    }
}
