//! The kernel command line, split the way the kernel splits it (spaces, double quotes), and the
//! part after `--`, which the kernel hands to init and which RancherOS uses for settings that
//! services should not see in `/proc/cmdline`.

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

    /// Read `/proc/cmdline`.
    pub fn from_proc() -> std::io::Result<Cmdline> {
        Ok(Cmdline::parse(&std::fs::read_to_string("/proc/cmdline")?))
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
    fn splits_quotes_and_dashes() {
        let c = Cmdline::parse("console=ttyS0 rancher.a=\"x y\" quiet -- rancher.password=p\n");
        assert_eq!(c.kernel, vec!["console=ttyS0", "rancher.a=x y", "quiet"]);
        assert_eq!(c.init, vec!["rancher.password=p"]);
        let pairs: Vec<_> = c.pairs_with_prefix("rancher.").collect();
        assert_eq!(pairs, vec![("rancher.a", "x y"), ("rancher.password", "p")]);
    }

    #[test]
    fn empty_quotes_make_an_empty_word() {
        assert_eq!(Cmdline::parse("a=\"\" b").kernel, vec!["a=", "b"]);
    }
}
