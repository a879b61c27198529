//! The web UI (`ros ui`, os/src/ui) in a VM, driven from this machine by Debian's `chromium`
//! through `chromium-driver` (WebDriver, headless, via fantoccini), as an operator would.
//!
//! Per push: the UI is off by default; once `rancher.ui.enabled` is set and `ui` is up, it
//! serves HTTPS with a
//! certificate its own CA (`rancherctl ui ca`) signs for the address the browser uses; a wrong
//! token is refused; the link `rancherctl ui token` prints logs in; the hostname is changed in
//! the config editor, reviewed as a diff, applied, and seen on the overview and over SSH.
//! Nightly: invalid YAML shows its line and writes nothing; a service restarted from its page
//! shows its state and new log lines arriving live, and the kernel's; a network change is
//! confirmed, another undone by itself; a read-only session changes nothing; a spent token is
//! refused; on the A/B disk image, an upgrade with its progress, the reboot, and a rollback. Screenshots of each page: `target/vm-logs/ui-*.png`.

use fantoccini::{Client, ClientBuilder, Locator};
use harness::ssh::Key;
use harness::vm::{Vm, VmOptions, READY};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(300);
const PORT: u16 = 9443;

fn ssh(vm: &Vm, cmd: &str) -> String {
    vm.ssh_ok(cmd).unwrap()
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Option<Driver> {
    if Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_err()
    {
        harness::setup::tool_missing("chromedriver (chromium-driver)");
        return None;
    }
    let port = harness::vm::free_port().unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Driver { child, port })
}

async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    // The UI's CA is checked separately (curl --cacert below): the browser has no store to put
    // it in here.
    caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a chromium session")
}

fn vm_with_ui(name: &str, key: &Key) -> Vm {
    let opts = VmOptions::new(name)
        .unwrap()
        .ssh_key(key)
        .forward(PORT)
        .cmdline("rancher.ui.enabled=true");
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    vm
}

/// A login link from the console, pointed at the forwarded port.
fn token(vm: &Vm, args: &str) -> String {
    let t = Instant::now();
    loop {
        let out = vm.ssh(&format!("sudo rancherctl ui token {args}")).unwrap();
        if out.status.success() {
            let url = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap()
                .to_string();
            let token = url.split("token=").nth(1).unwrap().to_string();
            return format!("{}/login?token={token}", base(vm));
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no token: {}; serial log {}",
            String::from_utf8_lossy(&out.stderr),
            vm.log_path().display()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn base(vm: &Vm) -> String {
    format!("https://127.0.0.1:{}", vm.port(PORT).unwrap())
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = harness::paths::repo_root().join("target/vm-logs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("ui-{name}.png")), png).unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    match c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => fail(c, css, e).await,
    }
}

/// Panic with the page the browser is on (and keep its picture).
async fn fail(c: &Client, what: &str, e: impl std::fmt::Display) -> ! {
    let url = c.current_url().await.map(|u| u.to_string());
    let page = c.source().await.unwrap_or_default();
    shot(c, "failed").await;
    panic!("{what}: {e}; at {url:?}:\n{page}")
}

/// Click a button that submits a form, and wait until the next page has replaced this one
/// (an element of this page goes stale), so that what is read next is the new page's.
async fn click(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.click().await.unwrap(),
        Err(e) => fail(c, css, e).await,
    }
    let t = Instant::now();
    while old.tag_name().await.is_ok() {
        if t.elapsed() > Duration::from_secs(60) {
            fail(c, css, "the page did not change after the click").await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Log in with `url` in the browser.
async fn login(c: &Client, url: &str) {
    c.goto(url).await.unwrap();
    click(c, "#login").await;
}

/// Replace the editor's text (select all, then type: what a person does).
async fn edit(c: &Client, text: &str) {
    let area = c.find(Locator::Css("#config-text")).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys(text).await.unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_browser_logs_in_changes_the_hostname_and_sees_it_applied() {
    let Some(d) = driver() else { return };
    let key = Key::generate("ui_edit").unwrap();
    // Off by default; on once enabled, without a reboot.
    let opts = VmOptions::new("ui_edit")
        .unwrap()
        .ssh_key(&key)
        .forward(PORT);
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.wait_ssh(BOOT).unwrap();
    let list = ssh(&vm, "sudo rancherctl service list");
    assert!(!list.lines().any(|l| l.starts_with("ui ")), "{list}");
    let out = vm.ssh("sudo rancherctl ui token").unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
    ssh(
        &vm,
        "sudo rancherctl config set rancher.ui.enabled true && sudo rancherctl service up ui",
    );
    let url = token(&vm, "");
    assert!(
        ssh(&vm, "sudo rancherctl service list").contains("ui "),
        "the ui service is listed"
    );

    // HTTPS with a certificate the UI's CA signs for this address.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ssh(&vm, "sudo rancherctl ui ca") + "\n").unwrap();
    let curl = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca)
        .arg(format!("{}/login", base(&vm)))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let plain = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{}/login", vm.port(PORT).unwrap()))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "no plain HTTP");

    rt().block_on(async {
        let c = browser(&d).await;
        // A wrong token.
        login(&c, &format!("{}/login?token=0123", base(&vm))).await;
        assert!(text_of(&c, "#notice-error").await.contains("not valid"));
        shot(&c, "login-refused").await;
        // The console's link.
        login(&c, &url).await;
        assert_eq!(text_of(&c, "#hostname").await, "rancher");
        assert!(text_of(&c, "#health").await.contains(" running"));
        shot(&c, "overview").await;

        // The config editor: add a hostname, review the diff, apply.
        c.goto(&format!("{}/config", base(&vm))).await.unwrap();
        let area = c.find(Locator::Css("#config-text")).await.unwrap();
        let before = area.prop("value").await.unwrap().unwrap_or_default();
        assert!(before.starts_with("#cloud-config"), "{before}");
        edit(&c, &format!("{}hostname: uitest\n", before)).await;
        shot(&c, "config-edit").await;
        click(&c, "#review").await;
        let diff = text_of(&c, "#diff").await;
        assert!(diff.contains("+ hostname: uitest"), "{diff}");
        shot(&c, "config-review").await;
        click(&c, "#apply").await;
        let done = text_of(&c, "#notice-ok").await;
        assert!(done.contains("Saved: hostname"), "{done}");

        c.goto(&format!("{}/", base(&vm))).await.unwrap();
        assert_eq!(text_of(&c, "#hostname").await, "uitest");
        c.close().await.unwrap();
    });
    assert_eq!(ssh(&vm, "hostname"), "uitest");
    assert!(
        ssh(&vm, "sudo cat /var/lib/rancher/conf/cloud-config.yml").contains("hostname: uitest")
    );
    let audit = ssh(&vm, "sudo cat /proc/1/root/var/lib/rancher/ui/audit.log");
    assert!(audit.contains("\"action\":\"config apply\""), "{audit}");
}

#[test]
#[ignore = "nightly: the UI's other browser stories (per push: login, edit, apply in a_browser_logs_in_changes_the_hostname_and_sees_it_applied)"]
fn invalid_yaml_live_logs_and_what_a_session_may_not_do() {
    let Some(d) = driver() else { return };
    let key = Key::generate("ui_more").unwrap();
    let vm = vm_with_ui("ui_more", &key);
    let url = token(&vm, "");
    let read_only = token(&vm, "--read-only --ttl 5m");
    let pid_of = |vm: &Vm| {
        ssh(vm, "sudo rancherctl service list")
            .lines()
            .find(|l| l.starts_with("ntp "))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
            .unwrap()
    };
    let ntp_pid = pid_of(&vm);
    rt().block_on(async {
        let c = browser(&d).await;
        login(&c, &url).await;
        // Invalid YAML: the problem at its line, no apply, nothing written.
        let saved_before = vm
            .ssh("sudo cat /var/lib/rancher/conf/cloud-config.yml 2>/dev/null")
            .unwrap()
            .stdout;
        c.goto(&format!("{}/config", base(&vm))).await.unwrap();
        edit(&c, "#cloud-config\nhostname: x\nrancher: [\n").await;
        click(&c, "#review").await;
        let problems = text_of(&c, "#problems").await;
        assert!(problems.contains("nothing was written") && problems.contains("line "), "{problems}");
        assert!(c.find(Locator::Css("#apply")).await.is_err());
        shot(&c, "config-invalid").await;
        let saved_after = vm
            .ssh("sudo cat /var/lib/rancher/conf/cloud-config.yml 2>/dev/null")
            .unwrap()
            .stdout;
        assert_eq!(saved_before, saved_after, "invalid YAML wrote nothing");

        // A network change waits for its confirmation; one not confirmed is undone.
        async fn network_change(c: &Client, vm: &Vm, nameserver: &str) {
            c.goto(&format!("{}/config", base(vm))).await.unwrap();
            let area = c.find(Locator::Css("#config-text")).await.unwrap();
            let text = area.prop("value").await.unwrap().unwrap_or_default();
            assert!(text.contains("\nrancher:\n"), "{text}");
            let text = match text.find("      - 10.0.2.3\n") {
                Some(_) => text.replace("      - 10.0.2.3\n", &format!("      - {nameserver}\n")),
                None => text.replacen(
                    "\nrancher:\n",
                    &format!("\nrancher:\n  network:\n    dns:\n      nameservers:\n      - {nameserver}\n"),
                    1,
                ),
            };
            edit(c, &text).await;
            click(c, "#review").await;
            click(c, "#apply").await;
            let done = text_of(c, "#notice-ok").await;
            assert!(done.contains("Restarted: network"), "{done}");
            assert!(text_of(c, "#pending").await.contains("undone in"));
        }
        network_change(&c, &vm, "10.0.2.3").await;
        click(&c, "#confirm").await;
        let kept = text_of(&c, "#notice-ok").await;
        assert!(kept.contains("kept"), "{kept}");
        assert!(c.find(Locator::Css("#pending")).await.is_err());
        network_change(&c, &vm, "10.0.2.4").await;
        shot(&c, "config-pending").await;
        let t = Instant::now();
        loop {
            let saved = ssh(&vm, "sudo cat /var/lib/rancher/conf/cloud-config.yml");
            if !saved.contains("10.0.2.4") {
                assert!(saved.contains("10.0.2.3"), "the confirmed change stays: {saved}");
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "not undone: {saved}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        eprintln!("network change undone {:.0} s after it was applied", t.elapsed().as_secs_f64());
        assert!(vm.serial_text().contains("the network change was not confirmed within 60 s: undone"));

        // A restart from the service's page: its state and new lines arrive live.
        c.goto(&format!("{}/services/ntp", base(&vm))).await.unwrap();
        let t = Instant::now();
        while !text_of(&c, "#live-state").await.starts_with("running") {
            assert!(t.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        click(&c, "#action-restart").await;
        let done = text_of(&c, "#notice-ok").await;
        assert!(done.contains("restart done"), "{done}");
        // Watching the page, a restart from the console: its lines and state arrive live.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = text_of(&c, "#live-log").await;
        let exits_before = before.matches("service ntp exited").count();
        assert!(vm.ssh("sudo rancherctl service restart ntp").unwrap().status.success());
        let t = Instant::now();
        loop {
            let log = text_of(&c, "#live-log").await;
            let state = text_of(&c, "#live-state").await;
            let after_exit = log
                .rsplit("service ntp exited")
                .next()
                .unwrap_or_default()
                .to_string();
            if log.matches("service ntp exited").count() > exits_before
                && after_exit.contains("ntpd: servers")
                && state.starts_with("running")
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no live lines: state {state:?}, log {log:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        shot(&c, "service").await;
        for page in ["services", "containers", "logs", "logs/ntp", "system"] {
            c.goto(&format!("{}/{page}", base(&vm))).await.unwrap();
            text_of(&c, "h1").await;
            shot(&c, &page.replace('/', "-")).await;
        }
        c.goto(&format!("{}/kernel-log?filter=linux+version", base(&vm)))
            .await
            .unwrap();
        let kernel = text_of(&c, "#log").await;
        assert!(kernel.starts_with('[') && kernel.contains("Linux version"), "{kernel}");
        assert_eq!(kernel.lines().count(), 1, "{kernel}");
        // The kernel's log followed: a record written while the page is open arrives on it
        // (written again every few seconds: the page's follower starts from the moment its
        // request reaches the engine, which under TCG may be after the first write).
        c.goto(&format!("{}/kernel-log", base(&vm))).await.unwrap();
        text_of(&c, "#live-log").await;
        let t = Instant::now();
        let mut n = 0;
        while !text_of(&c, "#live-log").await.contains("ros-ui-kernel-marker") {
            if t.elapsed() > Duration::from_secs(60) {
                let page = text_of(&c, "#live-log").await;
                panic!(
                    "the kernel's records did not arrive live: page {page:?}; dmesg {}; ui log {}; engine log {}",
                    ssh(&vm, "sudo dmesg | tail -2"),
                    ssh(&vm, "sudo tail -5 /var/log/ui.log"),
                    ssh(&vm, "sudo grep -i kmsg /var/log/system-docker.log | tail -5; true"),
                );
            }
            if t.elapsed().as_secs() >= n * 3 {
                n += 1;
                ssh(&vm, &format!("echo ros-ui-kernel-marker-{n} | sudo tee /dev/kmsg"));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // A spent token.
        click(&c, "#logout").await;
        login(&c, &url).await;
        assert!(text_of(&c, "#notice-error").await.contains("not valid"));
        // A read-only session: the buttons are off, and a change is refused.
        login(&c, &read_only).await;
        c.goto(&format!("{}/services/ntp", base(&vm))).await.unwrap();
        text_of(&c, "#live-state").await;
        let restart = c.find(Locator::Css("#action-restart")).await.unwrap();
        assert!(restart.attr("disabled").await.unwrap().is_some());
        let status: serde_json::Value = c
            .execute_async(
                "const done = arguments[0];
                 const csrf = document.querySelector('input[name=csrf]').value;
                 fetch('/services/ntp/restart', {method: 'POST', headers: {'X-CSRF-Token': csrf}})
                   .then(r => done(r.status));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, 403);
        c.close().await.unwrap();
    });
    assert_ne!(pid_of(&vm), ntp_pid, "ntp was restarted by the UI");
    let audit = ssh(&vm, "sudo cat /proc/1/root/var/lib/rancher/ui/audit.log");
    assert!(audit.contains("\"action\":\"service restart\""), "{audit}");
}

/// The installed system (the A/B disk image, v1 in slot A) upgraded and rolled back from the
/// OS page: the releases the index offers, the upgrade's progress as it comes, the reboot it offers, v2 booted on trial, the
/// UI back with its CA and its setting, then a rollback.
#[test]
#[ignore = "nightly: an upgrade and a rollback from the browser (per push: rancherctl os upgrade|rollback in disk_image.rs)"]
fn an_upgrade_and_a_rollback_from_the_os_page() {
    use harness::vm::Drive;
    let Some(d) = driver() else { return };
    let img = harness::image::ensure_built().unwrap();
    let dir = harness::paths::repo_root().join("target").join("disks");
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("ui_upgrade.img");
    harness::diskimage::build(&img.kernel, &img.initrd, "1.0.0-v1", &disk).unwrap();
    let v2 = harness::osimage::build(
        &img.kernel,
        &img.initrd,
        "2.0.0-v2",
        &dir.join("ui-os-v2.tar"),
    )
    .unwrap();
    // The release index `rancher.upgrade.url` names, served from this machine.
    let index = tempfile::tempdir().unwrap();
    std::fs::write(
        index.path().join("releases.yml"),
        "current: rancher/os:2.0.0-v2\navailable: [rancher/os:1.0.0-v1, rancher/os:2.0.0-v2]\n",
    )
    .unwrap();
    let serve = format!(
        "{} serve-http {}",
        env!("CARGO_BIN_EXE_harness"),
        index.path().display()
    );
    let opts = VmOptions::new("ui_upgrade")
        .unwrap()
        .firmware_boot()
        .allow_reboot()
        .forward(PORT)
        .guestfwd("10.0.2.100:80", &serve)
        .drive(Drive {
            path: disk,
            format: "raw".into(),
            read_only: false,
        })
        .drive(Drive {
            path: v2,
            format: "raw".into(),
            read_only: true,
        });
    let mut vm = Vm::boot(opts).unwrap();
    vm.expect(READY, BOOT).unwrap();
    vm.sh_ok(
        "rancherctl config set rancher.upgrade.url http://10.0.2.100/releases.yml && rancherctl config set rancher.ui.enabled true && rancherctl service up ui",
        BOOT,
    )
    .unwrap();
    let console_token = |vm: &mut Vm| {
        let t = Instant::now();
        loop {
            let (out, code) = vm.sh("rancherctl ui token 2>&1", BOOT).unwrap();
            if code == 0 {
                let token = out
                    .split("token=")
                    .nth(1)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
                    .to_string();
                return format!("{}/login?token={token}", base(vm));
            }
            assert!(t.elapsed() < Duration::from_secs(120), "{out}");
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    let url = console_token(&mut vm);
    let ca_before = vm.sh_ok("rancherctl ui ca", BOOT).unwrap();
    rt().block_on(async {
        let c = browser(&d).await;
        login(&c, &url).await;
        c.goto(&format!("{}/system", base(&vm))).await.unwrap();
        let version = text_of(&c, "#version").await;
        assert!(
            version.contains("version: 1.0.0-v1") && version.contains("SLOT_A"),
            "{version}"
        );
        c.find(Locator::Css("#image"))
            .await
            .unwrap()
            .send_keys("/dev/vdb")
            .await
            .unwrap();
        click(&c, "#upgrade").await;
        let done = text_of(&c, "#notice-ok").await;
        assert!(done.contains("next boot"), "{done}");
        let progress = text_of(&c, "#progress").await;
        assert!(
            progress.contains("SLOT_B holds 2.0.0-v2 and boots next, on trial")
                && progress.contains("[exit 0]"),
            "{progress}"
        );
        shot(&c, "upgrade").await;
        click(&c, "#reboot").await;
        assert!(text_of(&c, "#notice-ok").await.contains("reboot"));
        c.close().await.unwrap();
    });
    vm.expect(r"\[ros\] shutdown complete", BOOT).unwrap();
    vm.shell_ended();
    vm.expect(r"booting SLOT_B \(trial 1\)", BOOT).unwrap();
    vm.expect(READY, BOOT).unwrap();
    let url = console_token(&mut vm);
    assert_eq!(
        vm.sh_ok("rancherctl ui ca", BOOT).unwrap(),
        ca_before,
        "the CA is kept"
    );
    rt().block_on(async {
        let c = browser(&d).await;
        login(&c, &url).await;
        c.goto(&format!("{}/system", base(&vm))).await.unwrap();
        let version = text_of(&c, "#version").await;
        assert!(
            version.contains("version: 2.0.0-v2") && version.contains("SLOT_B"),
            "{version}"
        );
        click(&c, "#rollback").await;
        let progress = text_of(&c, "#progress").await;
        assert!(progress.contains("SLOT_A boots next"), "{progress}");
        assert!(text_of(&c, "#notice-ok").await.contains("next boot"));
        shot(&c, "rollback").await;
        c.close().await.unwrap();
    });
    let audit = vm
        .sh_ok("cat /proc/1/root/var/lib/rancher/ui/audit.log", BOOT)
        .unwrap();
    assert!(
        audit.contains("\"action\":\"os upgrade\"") && audit.contains("\"action\":\"os rollback\""),
        "{audit}"
    );
}
