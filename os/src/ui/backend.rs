//! What the web UI asks of the host, as one trait: the real one talks to the system engine's
//! socket and the user engine's socket (the UI's only ways into the host), a fake one stands in
//! for the in-process route tests. Calls block (the engines' client is a blocking one); the
//! routes run them on tokio's blocking pool.

use crate::system_docker::client::{Client, ClientError};
use crate::system_docker::encode;
use serde::Deserialize;
use std::io::Read;

/// A system service's line (`rancherctl service list`), as the system engine sends it.
pub use crate::system_services::status::ServiceStatus as Service;

/// The editor's view of the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ConfigView {
    pub text: String,
    pub version: String,
    pub revert_in: Option<u64>,
}

/// One problem of an edited configuration.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: String,
    pub message: String,
}

/// What an apply did (or a check would do).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct Applied {
    pub changed: Vec<String>,
    #[serde(default)]
    pub restarted: Vec<String>,
    #[serde(default)]
    pub revert_in: Option<u64>,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigRefused {
    Problems(Vec<Problem>),
    Other(String),
}

/// A user container's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub status: String,
}

/// An image of the user engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    pub size: u64,
}

/// Which engine a log or an action is for (the kernel: its log, through the system engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    System,
    User,
    Kernel,
}

/// How long a followed log's read waits for data before it fails.
pub const FOLLOW_IDLE: std::time::Duration = std::time::Duration::from_secs(15);

pub trait Backend: Send + Sync + 'static {
    fn services(&self) -> Result<Vec<Service>, String>;
    /// The service's definition, as YAML.
    fn definition(&self, name: &str) -> Result<String, String>;
    fn config(&self) -> Result<ConfigView, String>;
    fn config_check(&self, text: &str) -> Result<Applied, ConfigRefused>;
    fn config_apply(&self, text: &str, version: &str) -> Result<Applied, ConfigRefused>;
    fn config_confirm(&self) -> Result<(), String>;
    /// `start`, `stop`, `restart` on a container of `engine`; `rm` (user containers only).
    fn act(&self, engine: Engine, verb: &str, name: &str) -> Result<(), String>;
    /// `enable` or `disable` a system service (`rancher.services_include`).
    fn include(&self, name: &str, on: bool) -> Result<Applied, ConfigRefused>;
    /// The last `tail` lines of a container's log; with `follow`, then what comes (a read
    /// with nothing for [`FOLLOW_IDLE`] fails, so its reader can look up now and then).
    fn logs(
        &self,
        engine: Engine,
        name: &str,
        tail: usize,
        follow: bool,
    ) -> Result<Box<dyn Read + Send>, String>;
    fn boot_log(&self) -> Result<String, String>;
    /// The kernel's log, as `dmesg` prints it.
    fn kernel_log(&self) -> Result<String, String>;
    fn containers(&self) -> Result<Vec<Container>, String>;
    fn images(&self) -> Result<Vec<Image>, String>;
    fn power(&self, verb: &str) -> Result<(), String>;
    /// `rancherctl os version|list`'s lines, or what it said when it failed.
    fn os_read(&self, verb: &str) -> Result<String, String>;
    /// `rancherctl os upgrade -i IMAGE|rollback --no-reboot`, its output as it comes (the last
    /// line `[exit N]`).
    fn os_change(&self, verb: &str, image: &str) -> Result<Box<dyn Read + Send>, String>;
}

/// The engines' sockets.
pub struct Sockets {
    pub system: Client,
    pub user: Client,
}

impl Sockets {
    pub fn new(system: &str, user: &str) -> Sockets {
        Sockets {
            system: Client {
                socket: system.into(),
            },
            user: Client {
                socket: user.into(),
            },
        }
    }

    fn client(&self, engine: Engine) -> &Client {
        match engine {
            Engine::System | Engine::Kernel => &self.system,
            Engine::User => &self.user,
        }
    }

    fn send_text(&self, path: &str, text: &str) -> Result<serde_json::Value, ConfigRefused> {
        let mut body = text.as_bytes();
        let resp = self
            .system
            .request(
                "POST",
                path,
                Some(("application/yaml", body.len() as u64, &mut body)),
            )
            .map_err(|e| ConfigRefused::Other(e.to_string()))?;
        let status = resp.status;
        let bytes = resp
            .bytes()
            .map_err(|e| ConfigRefused::Other(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ConfigRefused::Other(format!("{path}: not JSON: {e}")))?;
        if status == 200 {
            return Ok(json);
        }
        let problems: Vec<Problem> =
            serde_json::from_value(json["problems"].clone()).unwrap_or_default();
        if problems.is_empty() {
            Err(ConfigRefused::Other(
                json["message"].as_str().unwrap_or("refused").to_string(),
            ))
        } else {
            Err(ConfigRefused::Problems(problems))
        }
    }
}

fn text(e: ClientError) -> String {
    e.to_string()
}

fn applied(v: serde_json::Value) -> Result<Applied, ConfigRefused> {
    serde_json::from_value(v).map_err(|e| ConfigRefused::Other(format!("bad answer: {e}")))
}

impl Backend for Sockets {
    fn services(&self) -> Result<Vec<Service>, String> {
        self.system
            .json("GET", "/rancheros/services", None)
            .map_err(text)
    }

    fn definition(&self, name: &str) -> Result<String, String> {
        let view = self.config()?;
        // The export leaves the built-in defaults out; the definition is in the whole tree.
        let full: serde_json::Value = self
            .system
            .json("GET", "/rancheros/config?full=1", None)
            .map_err(text)?;
        let tree: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(full["text"].as_str().unwrap_or(&view.text))
                .map_err(|e| e.to_string())?;
        match tree
            .get("rancher")
            .and_then(|r| r.get("services"))
            .and_then(|s| s.get(name))
        {
            Some(def) => serde_yaml_ng::to_string(def).map_err(|e| e.to_string()),
            None => Err(format!("no service {name} in the configuration")),
        }
    }

    fn config(&self) -> Result<ConfigView, String> {
        self.system
            .json("GET", "/rancheros/config", None)
            .map_err(text)
    }

    fn config_check(&self, text: &str) -> Result<Applied, ConfigRefused> {
        applied(self.send_text("/rancheros/config/check", text)?)
    }

    fn config_apply(&self, text: &str, version: &str) -> Result<Applied, ConfigRefused> {
        applied(self.send_text(
            &format!("/rancheros/config?version={}", encode(version)),
            text,
        )?)
    }

    fn config_confirm(&self) -> Result<(), String> {
        self.system
            .request("POST", "/rancheros/config/confirm", None)
            .and_then(|r| r.ok())
            .map(|_| ())
            .map_err(text)
    }

    fn act(&self, engine: Engine, verb: &str, name: &str) -> Result<(), String> {
        let (method, path) = match verb {
            "start" | "stop" | "restart" => {
                ("POST", format!("/containers/{}/{verb}", encode(name)))
            }
            "rm" if engine == Engine::User => ("DELETE", format!("/containers/{}", encode(name))),
            other => return Err(format!("no action {other:?}")),
        };
        self.client(engine)
            .request(method, &path, None)
            .and_then(|r| r.ok())
            .map(|_| ())
            .map_err(text)
    }

    fn include(&self, name: &str, on: bool) -> Result<Applied, ConfigRefused> {
        let view = self.config().map_err(ConfigRefused::Other)?;
        let mut tree: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&view.text).map_err(|e| ConfigRefused::Other(e.to_string()))?;
        if !tree.is_mapping() {
            tree = serde_yaml_ng::Value::Mapping(Default::default());
        }
        crate::config::set_key(
            &mut tree,
            &format!("rancher.services_include.{name}"),
            if on { "true" } else { "false" },
        )
        .map_err(ConfigRefused::Other)?;
        let text =
            serde_yaml_ng::to_string(&tree).map_err(|e| ConfigRefused::Other(e.to_string()))?;
        self.config_apply(&text, &view.version)
    }

    fn logs(
        &self,
        engine: Engine,
        name: &str,
        tail: usize,
        follow: bool,
    ) -> Result<Box<dyn Read + Send>, String> {
        if engine == Engine::Kernel {
            // Read whole (the follower polls it: see pages::follow).
            return self
                .kernel_log()
                .map(|t| Box::new(std::io::Cursor::new(t)) as _);
        }
        let mut path = format!(
            "/containers/{}/logs?stdout=1&stderr=1&tail={tail}",
            encode(name)
        );
        if follow {
            path.push_str("&follow=1");
        }
        let client = self.client(engine);
        let resp = if follow {
            client.request_timeout("GET", &path, FOLLOW_IDLE)
        } else {
            client.request("GET", &path, None)
        }
        .and_then(|r| r.ok())
        .map_err(text)?;
        // A container with a terminal has one raw stream; the others Docker's frames.
        let raw = resp
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("raw-stream"));
        if raw {
            Ok(resp.body)
        } else {
            Ok(Box::new(Frames::new(resp.body)))
        }
    }

    fn boot_log(&self) -> Result<String, String> {
        self.system_text("/rancheros/boot")
    }

    fn kernel_log(&self) -> Result<String, String> {
        self.system_text("/rancheros/kmsg")
    }

    fn containers(&self) -> Result<Vec<Container>, String> {
        let all: Vec<serde_json::Value> = self
            .user
            .json("GET", "/containers/json?all=1", None)
            .map_err(text)?;
        Ok(all
            .iter()
            .map(|c| Container {
                id: c["Id"].as_str().unwrap_or_default().to_string(),
                name: c["Names"][0]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: c["Image"].as_str().unwrap_or_default().to_string(),
                state: c["State"].as_str().unwrap_or_default().to_string(),
                status: c["Status"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }

    fn images(&self) -> Result<Vec<Image>, String> {
        let all: Vec<serde_json::Value> =
            self.user.json("GET", "/images/json", None).map_err(text)?;
        Ok(all
            .iter()
            .map(|i| Image {
                id: i["Id"].as_str().unwrap_or_default().to_string(),
                tags: i["RepoTags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                size: i["Size"].as_u64().unwrap_or(0),
            })
            .collect())
    }

    fn power(&self, verb: &str) -> Result<(), String> {
        self.system
            .request("POST", &format!("/rancheros/power/{}", encode(verb)), None)
            .and_then(|r| r.ok())
            .map(|_| ())
            .map_err(text)
    }

    fn os_read(&self, verb: &str) -> Result<String, String> {
        let resp = self
            .system
            .request("GET", &Sockets::os_path(verb, ""), None)
            .and_then(|r| r.ok())
            .map_err(|e| match e {
                ClientError::Daemon { message, .. } => message,
                other => other.to_string(),
            })?;
        let bytes = resp.bytes().map_err(text)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn os_change(&self, verb: &str, image: &str) -> Result<Box<dyn Read + Send>, String> {
        let resp = self
            .system
            .request("POST", &Sockets::os_path(verb, image), None)
            .and_then(|r| r.ok())
            .map_err(text)?;
        Ok(resp.body)
    }
}

impl Sockets {
    /// A text the system engine answers `GET path` with.
    fn system_text(&self, path: &str) -> Result<String, String> {
        let resp = self
            .system
            .request("GET", path, None)
            .and_then(|r| r.ok())
            .map_err(text)?;
        let bytes = resp.bytes().map_err(text)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn os_path(verb: &str, image: &str) -> String {
        if image.is_empty() {
            format!("/rancheros/os/{}", encode(verb))
        } else {
            format!("/rancheros/os/{}?image={}", encode(verb), encode(image))
        }
    }
}

/// A log stream's frames (Docker's 8-byte headers) as one byte stream.
struct Frames {
    demux: crate::engine::api::stream::Demux<Box<dyn Read + Send>>,
    pending: Vec<u8>,
    at: usize,
}

impl Frames {
    fn new(body: Box<dyn Read + Send>) -> Frames {
        Frames {
            demux: crate::engine::api::stream::Demux::new(body),
            pending: Vec::new(),
            at: 0,
        }
    }
}

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.pending.len() {
            match self.demux.next_frame()? {
                Some((_, data)) => {
                    self.pending = data;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
