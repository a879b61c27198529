//! `system-docker images` and `system-docker load [-i FILE]`.

use super::client::{Client, ClientError};
use super::table::render;
use serde::Deserialize;
use std::io::{Read, Write};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Image {
    id: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    size: u64,
}

pub fn images(client: &Client, args: &[String]) -> Result<(), ClientError> {
    if let Some(a) = args.first() {
        return Err(ClientError::Usage(format!(
            "images: unknown argument {a:?}"
        )));
    }
    let list: Vec<Image> = client.json("GET", "/images/json", None)?;
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]
        .map(String::from)
        .to_vec()];
    for i in &list {
        let short: String =
            i.id.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
        let tags = i.repo_tags.clone().unwrap_or_default();
        let names = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for t in names {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((&t, "<none>"));
            rows.push(vec![
                repo.to_string(),
                tag.to_string(),
                short.clone(),
                size(i.size),
            ]);
        }
    }
    print!("{}", render(&rows));
    Ok(())
}

/// Docker's `units.HumanSize`: decimal units, three significant digits.
fn size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", units[i])
}

pub fn load(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let mut input: Box<dyn Read> = Box::new(std::io::stdin());
    let mut len = None;
    match args {
        [] => {}
        [flag, file] if flag == "-i" || flag == "--input" => {
            let f = std::fs::File::open(file).map_err(|source| ClientError::Io {
                what: format!("opening {file}"),
                source,
            })?;
            // A block device's metadata says 0 bytes: its size is where a seek to its end lands.
            let mut f = f;
            len = match f.metadata() {
                Ok(m) if m.is_file() => Some(m.len()),
                _ => {
                    use std::io::{Seek, SeekFrom};
                    let end = f.seek(SeekFrom::End(0)).ok();
                    f.seek(SeekFrom::Start(0)).ok().and(end)
                }
            };
            input = Box::new(f);
        }
        _ => return Err(ClientError::Usage("load [-i FILE]".into())),
    }
    // From stdin the length is unknown: spool it first (the daemon wants a Content-Length).
    let mut spooled = Vec::new();
    let len = match len {
        Some(l) => l,
        None => {
            input
                .read_to_end(&mut spooled)
                .map_err(|source| ClientError::Io {
                    what: "reading stdin".into(),
                    source,
                })?;
            let n = spooled.len() as u64;
            input = Box::new(std::io::Cursor::new(std::mem::take(&mut spooled)));
            n
        }
    };
    let resp = client
        .request(
            "POST",
            "/images/load",
            Some(("application/x-tar", len, &mut *input)),
        )?
        .ok()?;
    let text = resp.bytes()?;
    for line in String::from_utf8_lossy(&text).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(s) = v["stream"].as_str() {
            print!("{s}");
        }
    }
    Ok(())
}

/// `save [-o FILE] IMAGE…`: the images as one tar (`docker save`'s format) on stdout or in
/// FILE (written under a temporary name and renamed, so a failed save leaves no half file).
pub fn save(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let usage = || ClientError::Usage("save [-o FILE] IMAGE…".into());
    let mut output = None;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => output = Some(it.next().ok_or_else(usage)?.clone()),
            s if s.starts_with('-') => return Err(usage()),
            _ => names.push(a.clone()),
        }
    }
    if names.is_empty() {
        return Err(usage());
    }
    let query: Vec<String> = names
        .iter()
        .map(|n| format!("names={}", super::encode(n)))
        .collect();
    let resp = client
        .request("GET", &format!("/images/get?{}", query.join("&")), None)?
        .ok()?;
    let io = |what: String| move |source| ClientError::Io { what, source };
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            resp.copy_to(&mut out)?;
            out.flush().map_err(io("writing stdout".into()))?;
        }
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            let tmp = path.with_file_name(format!(
                ".{}.tmp{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
                std::process::id()
            ));
            let mut f =
                std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
            let copied = resp
                .copy_to(&mut f)
                .and_then(|_| {
                    f.sync_all()
                        .map_err(io(format!("writing {}", tmp.display())))
                })
                .and_then(|()| {
                    std::fs::rename(&tmp, &path)
                        .map_err(io(format!("renaming to {}", path.display())))
                });
            if copied.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            copied?;
        }
    }
    Ok(())
}

/// `rmi [-f] IMAGE…`: docker's lines (`Untagged: …`, `Deleted: …`) for each; the engine refuses
/// an image a container uses (without `-f`, or when it runs).
pub fn rmi(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let q = if force { "?force=1" } else { "" };
    super::for_each_name("rmi [-f] IMAGE…", &names, |n| {
        let path = format!("/images/{}{q}", super::encode(n));
        let items: Vec<serde_json::Map<String, serde_json::Value>> =
            client.json("DELETE", &path, None)?;
        for item in items {
            for (k, v) in item {
                println!("{k}: {}", v.as_str().unwrap_or_default());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(1_234_567), "1.235MB");
        assert_eq!(super::size(5_000_000), "5MB");
    }
}

/// `pull IMAGE`: through the engine's registry client (its `rancher.docker` registry
/// settings); each status line printed as it comes, the stream's error as the command's.
pub fn pull(client: &Client, args: &[String]) -> Result<(), ClientError> {
    let [image] = args else {
        return Err(ClientError::Usage("pull IMAGE".into()));
    };
    let path = format!("/images/create?fromImage={}", super::encode(image));
    let resp = client.request("POST", &path, None)?.ok()?;
    let mut lines = StatusLines::default();
    resp.copy_to(&mut lines)?;
    lines.flush_line();
    match lines.error {
        Some(e) => Err(ClientError::Daemon {
            status: 500,
            message: e,
        }),
        None => Ok(()),
    }
}

/// A JSON-lines progress stream printed as it comes: `status` (with `id`), the first `error`
/// kept.
#[derive(Default)]
struct StatusLines {
    partial: Vec<u8>,
    error: Option<String>,
}

impl StatusLines {
    fn flush_line(&mut self) {
        let line = std::mem::take(&mut self.partial);
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
            return;
        };
        if let Some(e) = v["error"].as_str() {
            self.error.get_or_insert_with(|| e.to_string());
        } else if let Some(s) = v["status"].as_str() {
            match v["id"].as_str() {
                Some(id) => println!("{id}: {s}"),
                None => println!("{s}"),
            }
        }
    }
}

impl std::io::Write for StatusLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                self.flush_line();
            } else if self.partial.len() < 1 << 20 {
                self.partial.push(b);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
