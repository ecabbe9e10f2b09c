//! Idle daemon: `wuyed run` with 1,000 communities and nothing due for a while should cost next to
//! no CPU and stay under 30 MB of resident memory, because the scheduler sleeps until the next
//! slot instead of polling.
//!
//! Generates a config (1,000 communities × 2 workflows: a 09:00 workday reminder and a monthly
//! survey) in a temp dir, starts the real binary with its clock set to 10:00 so nothing is due for
//! ~23 h, waits until it is up, then samples /proc/<pid>/stat (utime + stime) and VmRSS over the
//! measurement window.
//!
//! Then a burst: the same communities with no jitter, clock started just before Monday 09:00, so
//! 1,000 runs come due at once; it reports how long until every one is done (two committed
//! transactions each, synchronous=FULL) with the stand-in executor.
//!
//! cargo bench -p wuye --bench idle --profile dev           (60 s window)
//! WUYE_IDLE_SECS=10 cargo bench -p wuye --bench idle --profile dev

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

const COMMUNITIES: usize = 1000;

fn main() {
    let secs: u64 = std::env::var("WUYE_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    idle(secs);
    burst();
}

/// Starts `wuyed run` and returns once it logged "wuyed running".
fn start(config: &Path, clock_start: &str, log: &str) -> (Child, Lines<BufReader<ChildStderr>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wuyed"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .args(["--clock-start", clock_start])
        .env("RUST_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wuyed");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut loaded = None;
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("wuyed running") => break,
            Some(Ok(line)) if line.contains("database ready") => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                loaded = v["communities"].as_u64();
            }
            Some(Ok(_)) => {}
            _ => {
                let _ = child.wait();
                panic!("wuyed stopped before it was running");
            }
        }
    }
    assert_eq!(
        loaded,
        Some(COMMUNITIES as u64),
        "the daemon must load every community"
    );
    (child, lines)
}

fn stop(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}

fn idle(secs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    write_config(&config, "10m");

    let started = Instant::now();
    let (mut child, lines) = start(
        &config,
        "2026-11-23T10:00:00+08:00",
        "warn,wuye::cli::run=info",
    );
    let pid = child.id();
    let startup = started.elapsed();
    // Keep draining stderr so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let tick = clock_ticks();
    let cpu0 = cpu_ticks(pid);
    let rss0 = rss_kb(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let cpu1 = cpu_ticks(pid);
    let rss1 = rss_kb(pid);
    let idle_cpu = (cpu1 - cpu0) as f64 / tick as f64;
    let status = stop(&mut child);

    println!("idle daemon, {COMMUNITIES} communities x 2 workflows");
    println!(
        "  start-up (config, migrate, plan, log): {:.2} s, CPU {:.2} s",
        startup.as_secs_f64(),
        cpu0 as f64 / tick as f64
    );
    println!(
        "  CPU over {secs} s idle: {:.3} s ({:.3}% of one core)",
        idle_cpu,
        idle_cpu / secs as f64 * 100.0
    );
    println!(
        "  RSS: {:.1} MB after start-up, {:.1} MB after {secs} s",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );
    println!("  exit after SIGTERM: {status}");
}

fn burst() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    write_config(&config, "0s");
    // Monday 2026-11-23, two seconds before the 09:00 fee reminders.
    let (mut child, mut lines) = start(
        &config,
        "2026-11-23T08:59:58+08:00",
        "warn,wuye::cli::run=info,wuye_scheduler=info",
    );
    let pid = child.id();
    let tick = clock_ticks();
    let cpu0 = cpu_ticks(pid);
    let mut first = None;
    let mut done = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("\"run started\"") && first.is_none() {
            first = Some(Instant::now());
        }
        if line.contains("\"run done\"") {
            done += 1;
            if done == COMMUNITIES {
                break;
            }
        }
    }
    let took = first.expect("no run started").elapsed();
    // Keep reading: a daemon whose stderr is closed cannot log its stop.
    std::thread::spawn(move || for _ in lines {});
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / tick as f64;
    let rss = rss_kb(pid);
    let status = stop(&mut child);
    println!("burst: {COMMUNITIES} runs due at the same 09:00 (no jitter), log executor");
    println!(
        "  first start to last done: {:.2} s ({:.0} runs/s), CPU {:.2} s, RSS {:.1} MB",
        took.as_secs_f64(),
        COMMUNITIES as f64 / took.as_secs_f64(),
        cpu,
        rss as f64 / 1024.0
    );
    println!("  exit after SIGTERM: {status}");
}

fn write_config(config: &Path, jitter: &str) {
    std::fs::create_dir_all(config.join("communities")).unwrap();
    std::fs::create_dir_all(config.join("plugins")).unwrap();
    std::fs::write(config.join("plugins/reminder.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::write(
        config.join("wuyed.toml"),
        "[daemon]\ndata_dir = \"data\"\n\n[http]\nlisten = \"\"\n\n[plugins]\ndir = \"plugins\"\n",
    )
    .unwrap();
    for i in 0..COMMUNITIES {
        std::fs::write(
            config.join(format!("communities/c{i:04}.toml")),
            format!(
                "id = \"c{i:04}\"\nname = \"小区 {i}\"\ntimezone = \"Asia/Shanghai\"\n\n\
                 [workflows.fee_reminder]\nplugin = \"reminder\"\nschedule = \"0 9 * * 1-5\"\n\
                 jitter = \"{jitter}\"\n\n\
                 [workflows.survey]\nplugin = \"reminder\"\nschedule = \"0 10 1 * *\"\n"
            ),
        )
        .unwrap();
    }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may contain spaces; fields after its closing ')' are fixed.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the fields start at 3 (state): utime is field 14, stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
