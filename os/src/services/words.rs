//! Splitting a compose `command:` / `entrypoint:` string into argv the way a POSIX shell would
//! split words (single and double quotes, backslash escapes), without running a shell.

/// Split `s` into words. Errors on an unterminated quote.
pub fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn shell_words() {
        assert_eq!(split("ntpd -d -n").unwrap(), ["ntpd", "-d", "-n"]);
        assert_eq!(
            split(r#"sh -c 'echo "a b"' x\ y"#).unwrap(),
            ["sh", "-c", r#"echo "a b""#, "x y"]
        );
        assert_eq!(split(r#"a "b \"c\"" '' "#).unwrap(), ["a", r#"b "c""#, ""]);
        assert!(split("a 'b").is_err());
    }
}
