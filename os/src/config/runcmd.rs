//! `runcmd:` / `bootcmd:`: commands to run, in every form found in real cloud-configs.
//!
//! The key may hold one string, a list, or nothing at all, and each list item is either a shell
//! line or an argv list. Serde's untagged enums would accept that but lose the key path and line of
//! a bad item, so the forms are read by hand here.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A line for `sh -c`.
    Shell(String),
    /// An argv, run without a shell. May be empty (an empty item), which runs nothing.
    Argv(Vec<String>),
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Command::Shell(line) => s.serialize_str(line),
            Command::Argv(argv) => {
                let mut seq = s.serialize_seq(Some(argv.len()))?;
                for a in argv {
                    seq.serialize_element(a)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command line or an argv list")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Command, E> {
                Ok(Command::Shell(s.to_string()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Command, E> {
                Ok(Command::Shell(b.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Command, E> {
                Ok(Command::Shell(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Command, E> {
                Ok(Command::Shell(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Command, E> {
                Ok(Command::Shell(n.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Command, E> {
                Ok(Command::Argv(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(Command::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// Read `runcmd:` in any of its forms: a list, one string, or nothing.
pub fn commands<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Command>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Command>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a command line or a list of commands")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(vec![Command::Shell(s.to_string())])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(c) = seq.next_element::<Command>()? {
                out.push(c);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}
