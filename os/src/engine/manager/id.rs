//! Container ids and names: an id is 64 random hex digits (Docker's form; a prefix of at least
//! one digit finds it); a name is the user's (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, Docker's rule) or a
//! made-up `adjective_noun`, unique within the engine.

/// 32 random bytes from the kernel, as hex.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    crate::random::fill(&mut b);
    hex::encode(b)
}

/// Docker's rule for a container name (a leading `/` is Docker's own and is dropped).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nifty", "quirky", "serene", "sharp", "stoic", "tender", "upbeat", "vigilant", "wizardly",
    "zealous",
];
const NOUNS: &[&str] = &[
    "babbage",
    "curie",
    "darwin",
    "euler",
    "fermat",
    "gauss",
    "hopper",
    "kepler",
    "lovelace",
    "mirzakhani",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
    "yalow",
    "zuse",
    "torvalds",
];

/// A made-up name not in `taken`.
pub fn new_name(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0..64u32 {
        let r = new_id();
        let a = usize::from_str_radix(&r[..4], 16).unwrap_or(0) % ADJECTIVES.len();
        let n = usize::from_str_radix(&r[4..8], 16).unwrap_or(0) % NOUNS.len();
        let name = if attempt < 8 {
            format!("{}_{}", ADJECTIVES[a], NOUNS[n])
        } else {
            format!("{}_{}{}", ADJECTIVES[a], NOUNS[n], attempt)
        };
        if !taken(&name) {
            return name;
        }
    }
    new_id()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-web") && !valid_name("") && !valid_name("a/b"));
        assert!(!valid_name("a b"));
        let n = new_name(|_| false);
        assert!(valid_name(&n), "{n}");
        let taken = new_name(|_| true);
        assert!(valid_name(&taken), "{taken}");
    }
}
