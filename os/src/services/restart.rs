//! The compose `restart:` key. The engine's restart policy (`engine::manager`'s `exit`, Docker's
//! rules and delays: 100 ms doubling up to a minute, reset by a run of ten seconds) acts on it.

/// `restart:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure,
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" | "" => Ok(RestartPolicy::No),
            "always" | "unless-stopped" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            other => Err(format!("{other:?} is not one of no, always, on-failure")),
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert_eq!("unless-stopped".parse(), Ok(RestartPolicy::Always));
        assert_eq!("on-failure".parse(), Ok(RestartPolicy::OnFailure));
        assert_eq!(RestartPolicy::OnFailure.to_string(), "on-failure");
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }
}
