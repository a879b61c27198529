//! Writing to the system console in the one stable form tests and people read: every line PID 1
//! prints starts with `[ros] `. Milestones are `[ros] step <name> ok|failed <ms>ms[: <error>]`,
//! boot completion is exactly one `[ros] ready <seconds since kernel start>`.

use std::io::Write;
use std::time::Duration;

/// Print one `[ros] ` line on stdout (the console for PID 1), ignoring write errors: a console
/// that cannot be written to must never stop the boot.
pub fn say(msg: impl std::fmt::Display) {
    let line = msg.to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[ros] {line}");
    let _ = out.flush();
    let mut journal = JOURNAL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lines) = journal.as_mut().filter(|l| l.len() < JOURNAL_MAX) {
        lines.push(line);
    }
}

/// The lines PID 1 said during boot, kept when [`keep_journal`] asked (PID 1 only), for
/// `/run/ros/boot.log` (the web UI's boot chart and ready time).
static JOURNAL: std::sync::Mutex<Option<Vec<String>>> = std::sync::Mutex::new(None);
/// A boot says a few dozen lines; past this many the rest is not kept.
const JOURNAL_MAX: usize = 1000;

/// Keep what [`say`] prints from now on (see [`journal`]).
pub fn keep_journal() {
    let mut journal = JOURNAL.lock().unwrap_or_else(|p| p.into_inner());
    journal.get_or_insert_with(Vec::new);
}

/// The lines kept since [`keep_journal`]; keeping them ends.
pub fn journal() -> Vec<String> {
    let mut journal = JOURNAL.lock().unwrap_or_else(|p| p.into_inner());
    journal.take().unwrap_or_default()
}

/// Where PID 1 leaves its boot's lines once ready (or degraded).
pub const BOOT_LOG: &str = "/run/ros/boot.log";

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Ok,
    Failed(String),
}

/// Format a step milestone line (without the `[ros] ` prefix).
pub fn step_line(name: &str, outcome: &StepOutcome, took: Duration) -> String {
    let ms = took.as_secs_f64() * 1000.0;
    match outcome {
        StepOutcome::Ok => format!("step {name} ok {ms:.1}ms"),
        StepOutcome::Failed(e) => format!("step {name} failed {ms:.1}ms: {e}"),
    }
}

/// Send `tracing` events at `level` and above to stderr (the console, for PID 1), in the plain
/// form every part of the binary uses. A second call is a no-op.
pub fn init_logging(level: tracing::Level) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}

/// Send `tracing` events at `level` and above to stderr, each stamped with the seconds since
/// the kernel started, as the kernel's own log is: for the engines, whose stderr is a log file
/// (`/var/log/system-docker.log`, `/var/log/docker.log`) read after the fact, beside the
/// console's `[ros]` milestones on the same clock. A second call is a no-op.
pub fn init_logging_stamped(level: tracing::Level) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(
        tracing_subscriber::filter::LevelFilter::from(level),
    );
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_timer(BootClock)
        .with_writer(std::io::stderr);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = STAMPED_LEVEL.set(handle);
    }
}

/// The level of [`init_logging_stamped`]'s events, changed while running.
static STAMPED_LEVEL: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<
        tracing_subscriber::filter::LevelFilter,
        tracing_subscriber::Registry,
    >,
> = std::sync::OnceLock::new();

/// Log at `level` from now on (the system engine at boot, told `rancher.debug` after its
/// start by PID 1). Without [`init_logging_stamped`] first, nothing happens.
pub fn set_stamped_level(level: tracing::Level) {
    if let Some(h) = STAMPED_LEVEL.get() {
        let _ = h.modify(|f| *f = tracing_subscriber::filter::LevelFilter::from(level));
    }
}

/// `[   3.333]`: seconds since boot, as `dmesg` prints them.
struct BootClock;

impl tracing_subscriber::fmt::time::FormatTime for BootClock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "[{:>8.3}]", since_boot())
    }
}

/// Seconds since the kernel started (CLOCK_BOOTTIME).
pub fn since_boot() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestone_lines_are_stable() {
        let d = Duration::from_micros(1234);
        assert_eq!(
            step_line("mount-proc", &StepOutcome::Ok, d),
            "step mount-proc ok 1.2ms"
        );
        assert_eq!(
            step_line("load-config", &StepOutcome::Failed("bad".into()), d),
            "step load-config failed 1.2ms: bad"
        );
    }
}
