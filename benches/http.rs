//! Load on `POST /v1/triage` over loopback: requests/s and latency against the number of
//! keep-alive connections. Run it with `cargo bench --bench http`.
//!
//! The server is the real `firstline serve` binary (the one Cargo builds next to this bench),
//! started in a temporary directory on the embedded defaults, with only
//! `FIRSTLINE__HTTP__ADDRESS=127.0.0.1:<free port>` set, so it is measured as deployed and in
//! its own process. The bench waits for `GET /healthz` to answer 200 before loading it and
//! stops it with SIGTERM at the end (a failed run kills it).
//!
//! The load client is closed-loop: for each level of 1, 4, 16 and 64 connections, that many
//! tasks each own one keep-alive HTTP/1.1 connection (one reqwest client per task) and send
//! requests back to back, the next one as soon as the previous response has been read in
//! full. Every level first runs a 2 s warm-up that is not counted, then
//! `FIRSTLINE_BENCH_SECONDS` (default 10) measured seconds; a request belongs to the
//! measurement when it starts inside that window, and the level ends when the last such
//! request has been answered. Each request carries one text from a fixed pool of realistic
//! support messages (short chat lines and email-length texts with pasted logs, built
//! deterministically, no files), drawn from a fixed-seed PRNG per connection.
//!
//! Every response must be 200 with a decision in its JSON body; anything else (another
//! status, a transport error, a 30 s timeout, a body without `"severity"`) is an error,
//! counted in the `errors` column (a failed warm-up request is not in the table but is
//! reported too) and described on stderr, and the run exits with 1.
//!
//! Columns: `requests` = measured requests (answered or failed); `requests/s` = 200 responses
//! per second of the measured window; p50/p90/p99/max = latency of the 200 responses in
//! milliseconds, from just before the request is sent until its body has been read
//! (percentiles by nearest rank over every request); `server CPU` and `client CPU` = CPU time
//! used during the measured window divided by its length, in cores; `other CPU` = the rest of
//! the machine's busy time meanwhile (other processes, the kernel's share not charged to
//! either): a run is only clean when it is near 0 (Linux /proc; "-" elsewhere). Client and
//! server run on the same machine and share its cores; the client is a single-threaded tokio
//! runtime, so it takes at most one core.
//!
//! Without `--bench` on the command line (that is, when `cargo test --all-targets` or
//! `--benches` runs this binary in the test profile, as scripts/test does) it does a smoke run
//! on the test-profile binary: 1 and 4 connections for 1 s each after a short warm-up, failing
//! on any error.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;

const SECONDS_VAR: &str = "FIRSTLINE_BENCH_SECONDS";
const DEFAULT_SECONDS: f64 = 10.0;
const WARM_UP: Duration = Duration::from_secs(2);
const LEVELS: [usize; 4] = [1, 4, 16, 64];

const SMOKE_SECONDS: f64 = 1.0;
const SMOKE_WARM_UP: Duration = Duration::from_millis(200);
const SMOKE_LEVELS: [usize; 2] = [1, 4];

/// Fixed seed of the texts and of every connection's sequence of picks.
const SEED: u64 = 0x4854_5450_5F42_454E;
/// Percent of requests that carry a chat line; the rest carry an email-length text.
const CHAT_PERCENT: u64 = 60;
/// A request that takes longer than this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for a fresh server to answer /healthz.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Error descriptions printed per level (the count is always complete).
const ERRORS_SHOWN: usize = 5;

// ---------------------------------------------------------------------------------------------
// A small deterministic PRNG (splitmix64): the same texts and the same request sequence on
// every machine.

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// The texts: what a helpdesk or chat widget would post to /v1/triage.

/// Short chat messages, as typed into a chat or a ticket title.
const CHAT: &[&str] = &[
    "hn04 is down, none of the CTs answer",
    "ct 2107 won't start after the reboot: 'Unable to start init, probably incorrect template'",
    "backup of CT 318 failed again last night, the backup node has 2 TB free",
    "power panel shows error 500 for all our customers since 9:40",
    "how do I move a container to another node without downtime?",
    "is there a way to limit IOPS for a single container?",
    "prod node pcs12 rebooted by itself twice today, dmesg shows MCE errors",
    "vzctl enter 455 hangs, the CT itself still serves traffic",
    "after yum update the node doesn't boot anymore, stuck in dracut",
    "our lab server lost network after the update, not urgent",
    "can you add a dark mode to the panel pls",
    "customers report slow websites on hn09, load avg 64",
    "migration of CT 1201 stopped at 87% and now the container is stopped on both nodes",
    "license expired message in the management console, but we renewed last week",
    "all 140 containers on storage node st2 offline!!! call me +49 170 5550123",
    "typo on the Power Panel login page: 'Pasword'",
    "ploop mount fails for CT 330: \"Can't mount image: Invalid argument\"",
    "SSL certificate of the panel expired, browsers warn, the panel itself still works",
    "vz service fails to start on hn2 after the kernel update, booting the old kernel works",
    "OOM kills in CT 700 every night around 3am, mysqld dies",
    "question: what's the max number of containers per node you recommend?",
    "one of our test nodes is down, no rush, whenever you have time",
    "restoring yesterday's backup works but takes 6 hours, is that normal?",
    "cluster storage shows 'degraded', 1 of 3 chunk servers offline, VMs still running",
];

/// An email's own words: subject and paragraphs. Variants add logs and quotes to them.
struct Email {
    subject: &'static str,
    paragraphs: &'static [&'static str],
}

const EMAILS: &[Email] = &[
    Email {
        subject: "URGENT: production node hn07 down, all containers offline",
        paragraphs: &[
            "our production hardware node hn07 stopped answering at about 06:10 this morning. None of the 86 containers on it can be reached, and our customers' websites and mail are down with it.",
            "The IPMI console shows the node stuck after the kernel messages; a power cycle through IPMI brought it up for ten minutes, then it froze again in the same way.",
            "Other nodes in the same rack are fine, so we do not think it is the network. We have no spare node with enough room to move the containers to.",
            "Please call me as soon as possible on +44 20 7946 0321, I am at the office all day.",
        ],
    },
    Email {
        subject: "Containers do not start after yesterday's update",
        paragraphs: &[
            "after we installed the latest updates on hn3 yesterday evening and rebooted, five of the containers on that node refuse to start. vzctl start ends with 'Failed to start the Container' and the kernel log shows ploop errors.",
            "The remaining 40 containers on the node came up normally. The five that fail all had been created from the same CentOS 7 template two years ago.",
            "We tried to mount one of them by hand; the mount works, but starting it fails with the same error. Restoring one from last week's backup gives the same result.",
            "Two of the five containers run the online shops of customers, so we would appreciate a quick answer.",
        ],
    },
    Email {
        subject: "Nightly backups failing since Monday",
        paragraphs: &[
            "since Monday the nightly backup job on hn12 fails for about half of the containers. The report says the snapshot could not be created, and the failing containers differ from night to night.",
            "The backup storage is an NFS share on our backup server; it is mounted, writable, and has 3.1 TB free. Manual backups started from the command line fail the same way.",
            "We have not changed the schedule or the backup settings for months. The only change last week was a firmware update of the RAID controller.",
            "Without working backups our contract with two customers does not allow us to keep running, so this is important for us.",
        ],
    },
    Email {
        subject: "Power Panel: 'Operation failed' for customers",
        paragraphs: &[
            "since this morning our customers cannot restart their containers from Power Panel. They get 'Operation failed: connection to the agent lost' after about a minute.",
            "The containers themselves run fine and can be restarted from the command line. We restarted the agent service on the node, which helped for a few minutes only.",
            "About 300 customers use Power Panel on this node. So far twelve of them have opened tickets with us about it.",
        ],
    },
    Email {
        subject: "Very slow disk I/O on hn09 since the migration",
        paragraphs: &[
            "we migrated 60 containers from our old nodes to the new node hn09 two weeks ago. Since then database queries in the containers take three to four times as long as before.",
            "iostat on the node shows the ploop devices at close to 100% utilisation during the day, while the disks of the RAID report normal latency. At night, when the load is low, everything is fast.",
            "We have checked the RAID cache settings and the scheduler, and compared the container limits with the old nodes; they are the same.",
            "A reboot of the node helped for a day. Our customers notice the slowness and have started to complain. Is there anything we can check to find the cause?",
        ],
    },
    Email {
        subject: "Question: live migration between nodes",
        paragraphs: &[
            "we are planning to move about 200 containers from three older nodes to new hardware over the next month and would like to do it without downtime for our customers.",
            "Could you tell us whether live migration works between nodes that run different minor versions, and whether the containers need to be on shared storage for it?",
            "We would also like to know how much free space the target node needs during a migration and whether several migrations can run at the same time.",
            "There is no hurry; we start the migration in three weeks.",
        ],
    },
    Email {
        subject: "Feature request: CSV export of the container list",
        paragraphs: &[
            "our accounting team asked whether the management console could export the list of containers with their limits and owners as a CSV file.",
            "Today we copy the table by hand once a month, which takes an afternoon and is easy to get wrong. An export button, or an API call that returns the same data, would solve it for us.",
            "This is not urgent at all; we just wanted to put it on your list.",
        ],
    },
    Email {
        subject: "New cluster: kernel panic on first boot after installation",
        paragraphs: &[
            "we are setting up a new cluster of four nodes for a customer project that goes live next month. The installation from the ISO finishes without errors on all four servers.",
            "On the first boot, two of the four nodes stop with 'Kernel panic - not syncing: Fatal exception'. Reinstalling gave the same result; the other two nodes boot and run fine.",
            "All four servers are the same model with the same firmware. We attached the console output of the failing boot below.",
            "Nothing runs on these servers yet, but the project plan depends on having the cluster ready in two weeks.",
        ],
    },
];

const GREETINGS: &[&str] = &["Hello,", "Hi support team,", "Dear Sir or Madam,", "Hi,"];
const CLOSINGS: &[&str] = &[
    "Thanks in advance,",
    "Best regards,",
    "Kind regards,",
    "Thank you for your help,",
];
const NAMES: &[&str] = &[
    "Marta Nowak\nSystem administrator, Nordhost GmbH\nTel. +49 30 5550 1840",
    "Chris Walker\nHosting operations, Brightline Ltd.",
    "Jan de Vries\nTeam lead infrastructure\nCloudwerk B.V. | Herengracht 10, Amsterdam",
    "Priya Raman",
];
const LOG_INTROS: &[&str] = &[
    "Here is the relevant part of /var/log/messages:",
    "Output of journalctl -b:",
    "The log from the node:",
];

/// One line of a pasted log; `clock` advances the timestamps.
fn log_line(rng: &mut SplitMix, clock: &mut u32) -> String {
    *clock += 1 + rng.below(40) as u32;
    let (h, m, s) = ((*clock / 3600) % 24, (*clock / 60) % 60, *clock % 60);
    let ct = 100 + rng.below(2400);
    let pid = 1000 + rng.below(60_000);
    let msg = match rng.below(10) {
        0 => format!("kernel: CT: {ct}: started"),
        1 => format!("kernel: CT: {ct}: stopped"),
        2 => format!(
            "kernel: EXT4-fs error (device ploop{pid}p1): ext4_lookup:1606: inode #2: comm init: deleted inode referenced: 1572873"
        ),
        3 => format!(
            "kernel: Out of memory in UB {ct}: OOM killed process {pid} (mysqld) score 0 vm:4134812kB, rss:2897316kB"
        ),
        4 => format!(
            "kernel: blk_update_request: I/O error, dev sdb, sector {}",
            pid * 977
        ),
        5 => format!("vzctl[{pid}]: CT {ct} : Unable to start init, probably incorrect template"),
        6 => format!("prl-disp[{pid}]: Task 'start' finished with error code 0x80000249"),
        7 => format!("vzabackup[{pid}]: Can't create snapshot of CT {ct}: PLOOP_ERR_FSCK"),
        8 => "systemd[1]: vz.service: main process exited, code=killed, status=9/KILL".to_string(),
        _ => format!("sshd[{pid}]: Accepted publickey for root from 10.0.0.5 port 52144 ssh2"),
    };
    format!(
        "Mar {:2} {h:02}:{m:02}:{s:02} hn07 {msg}",
        1 + rng.below(28)
    )
}

/// An email-length text: subject, greeting, the paragraphs, optionally a pasted log of
/// `log_lines` lines, a closing and signature, and optionally a quoted earlier reply.
fn email_text(rng: &mut SplitMix, email: &Email, log_lines: usize, quote: bool) -> String {
    let mut t = String::new();
    let _ = write!(
        t,
        "Subject: {}\n\n{}\n\n",
        email.subject,
        rng.pick(GREETINGS)
    );
    for p in email.paragraphs {
        t.push_str(p);
        t.push_str(if rng.below(3) == 0 { "\n" } else { "\n\n" });
    }
    if log_lines > 0 {
        let _ = write!(t, "{}\n\n", rng.pick(LOG_INTROS));
        let mut clock = 6 * 3600 + rng.below(3600) as u32;
        for _ in 0..log_lines {
            t.push_str(&log_line(rng, &mut clock));
            t.push('\n');
        }
        t.push('\n');
    }
    let _ = write!(t, "{}\n{}\n", rng.pick(CLOSINGS), rng.pick(NAMES));
    if quote {
        t.push_str("\nOn Tue, 4 Mar 2025 at 09:12, Support wrote:\n");
        let earlier = format!(
            "Thank you for contacting support. Your request is ticket [FL-{}]. Could you tell us \
             whether the affected system is in production, how many users are affected, and \
             whether there is a workaround? Please also send a phone number we can call.\n\n{}",
            1000 + rng.below(9000),
            email.paragraphs[0]
        );
        for line in earlier.lines() {
            let _ = writeln!(t, "> {line}");
        }
    }
    t
}

/// The request bodies, pre-serialised: chat lines first, then emails.
struct Texts {
    bodies: Vec<Bytes>,
    chat: usize,
    /// Bytes of the `text` field of each body, for the summary.
    text_len: Vec<usize>,
}

impl Texts {
    fn build() -> Texts {
        let mut rng = SplitMix(SEED);
        let mut texts: Vec<String> = CHAT.iter().map(|s| s.to_string()).collect();
        // Every email four times: without a log, and with short, medium and long pasted logs;
        // half of them also quote an earlier reply. About 1-9 KiB each.
        for email in EMAILS {
            for log_lines in [0, 10, 30, 70] {
                let quote = rng.below(2) == 0;
                texts.push(email_text(&mut rng, email, log_lines, quote));
            }
        }
        let bodies = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let body = serde_json::json!({"id": i, "text": text});
                Bytes::from(serde_json::to_vec(&body).expect("JSON of a string"))
            })
            .collect();
        Texts {
            bodies,
            chat: CHAT.len(),
            text_len: texts.iter().map(String::len).collect(),
        }
    }

    /// The next body of one connection's sequence.
    fn pick(&self, rng: &mut SplitMix) -> Bytes {
        let i = if rng.below(100) < CHAT_PERCENT as usize {
            rng.below(self.chat)
        } else {
            self.chat + rng.below(self.bodies.len() - self.chat)
        };
        self.bodies[i].clone()
    }

    fn describe(&self) -> String {
        let (chat, email) = self.text_len.split_at(self.chat);
        let range = |v: &[usize]| {
            (
                v.iter().copied().min().unwrap_or(0),
                v.iter().copied().max().unwrap_or(0),
            )
        };
        let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
        let ((c_lo, c_hi), (e_lo, e_hi)) = (range(chat), range(email));
        let expected = mean(chat) * CHAT_PERCENT as f64 / 100.0
            + mean(email) * (100 - CHAT_PERCENT) as f64 / 100.0;
        format!(
            "texts: {} chat lines ({c_lo}-{c_hi} bytes) and {} emails ({:.1}-{:.1} KiB); \
             {CHAT_PERCENT}% of requests carry a chat line; mean text {:.0} bytes per request",
            chat.len(),
            email.len(),
            e_lo as f64 / 1024.0,
            e_hi as f64 / 1024.0,
            expected
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The server: `firstline serve` in a temporary directory.

struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts serve on a free loopback port and waits for /healthz; tries another port when
    /// the one picked was taken in between.
    fn start(rt: &tokio::runtime::Runtime) -> Result<Serve, String> {
        let mut last = String::new();
        for _ in 0..5 {
            match Serve::start_once(rt) {
                Ok(s) => return Ok(s),
                Err((retry, e)) if retry => last = e,
                Err((_, e)) => return Err(e),
            }
        }
        Err(last)
    }

    fn start_once(rt: &tokio::runtime::Runtime) -> Result<Serve, (bool, String)> {
        let fail = |e: String| (false, e);
        let dir = tempfile::Builder::new()
            .prefix("firstline-bench-http")
            .tempdir()
            .map_err(|e| fail(format!("temporary directory: {e}")))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("no free loopback port: {e}")))?
            .port();
        let log = dir.path().join("serve.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| fail(format!("{}: {e}", log.display())))?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_firstline"));
        // Only the defaults and the address: nothing from the caller's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FIRSTLINE") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("serve")
            .current_dir(dir.path())
            .env("FIRSTLINE__HTTP__ADDRESS", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| fail(e.to_string()))?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| fail(format!("cannot start firstline serve: {e}")))?;
        let mut serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let client = client().map_err(fail)?;
        let url = format!("{}/healthz", serve.base);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = serve.child.try_wait() {
                let log = serve.log_text();
                let retry = log.contains("cannot listen");
                return Err((
                    retry,
                    format!("serve exited with {status} at start:\n{log}"),
                ));
            }
            let ok = rt.block_on(async {
                match client.get(&url).send().await {
                    Ok(r) => r.status() == reqwest::StatusCode::OK,
                    Err(_) => false,
                }
            });
            if ok {
                return Ok(serve);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(fail(format!(
                    "serve did not answer {url} within {} s:\n{}",
                    START_TIMEOUT.as_secs(),
                    serve.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then up to 30 s for a clean exit.
    fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        let asked = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "serve exited with {status} on SIGTERM:\n{}",
                        self.log_text()
                    ));
                }
                Ok(None) if asked.elapsed() > Duration::from_secs(30) => {
                    return Err("serve did not stop within 30 s of SIGTERM".into());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for serve: {e}")),
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc (Linux), to show how the cores were shared.

struct CpuClock {
    ticks_per_second: f64,
}

impl CpuClock {
    fn new() -> CpuClock {
        let ticks = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0);
        CpuClock {
            ticks_per_second: ticks,
        }
    }

    /// User + system CPU seconds of a process (all its threads), `"self"` or a pid.
    fn seconds(&self, pid: &str) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name in parentheses may hold spaces: count fields after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime) of the whole line; the rest starts at field 3.
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / self.ticks_per_second)
    }

    /// CPU seconds the whole machine spent busy (everything but idle and iowait), all CPUs.
    fn machine_busy_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<f64> = cpu
            .split_whitespace()
            .map(|t| t.parse().unwrap_or(0.0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let busy: f64 = [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| ticks.get(i))
            .sum();
        Some(busy / self.ticks_per_second)
    }

    /// CPU seconds used so far: (server, this process, the whole machine).
    fn sample(&self, server_pid: &str) -> [Option<f64>; 3] {
        [
            self.seconds(server_pid),
            self.seconds("self"),
            self.machine_busy_seconds(),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The load client.

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// One request: Ok when it was answered 200 with a decision, else what went wrong.
async fn triage_once(client: &reqwest::Client, url: &str, body: Bytes) -> Result<(), String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("{status}, body not read: {e}"))?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes);
        return Err(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    if !bytes.windows(10).any(|w| w == b"\"severity\"") {
        let text = String::from_utf8_lossy(&bytes);
        return Err(format!(
            "200 without a decision: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}

/// What one connection saw in the measured window.
#[derive(Default)]
struct ConnectionResult {
    latencies_ns: Vec<u64>,
    errors: usize,
    /// Failed warm-up requests: not in the table, but they fail the run too.
    warm_up_errors: usize,
    error_samples: Vec<String>,
    last_done: Option<Instant>,
}

/// One connection's closed loop: warm-up until `measure_from`, then measured requests until
/// `until` (a request started before `until` is awaited and counted).
async fn connection(
    texts: Arc<Texts>,
    url: Arc<str>,
    seed: u64,
    measure_from: Instant,
    until: Instant,
) -> ConnectionResult {
    let mut result = ConnectionResult::default();
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            result.errors = 1;
            result.error_samples.push(e);
            return result;
        }
    };
    let mut rng = SplitMix(seed);
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let measured = start >= measure_from;
        let outcome = triage_once(&client, &url, texts.pick(&mut rng)).await;
        let done = Instant::now();
        if measured {
            result.last_done = Some(done);
        }
        match outcome {
            Ok(()) if measured => result
                .latencies_ns
                .push((done - start).as_nanos().min(u64::MAX as u128) as u64),
            Ok(()) => {}
            Err(e) => {
                if measured {
                    result.errors += 1;
                } else {
                    result.warm_up_errors += 1;
                }
                if result.error_samples.len() < ERRORS_SHOWN {
                    let phase = if measured { "" } else { "warm-up: " };
                    result.error_samples.push(format!("{phase}{e}"));
                }
            }
        }
    }
    result
}

/// One row of the report.
struct Level {
    connections: usize,
    requests: usize,
    errors: usize,
    ok_per_second: f64,
    /// p50, p90, p99, max in milliseconds.
    latency_ms: [f64; 4],
    warm_up_errors: usize,
    server_cores: Option<f64>,
    client_cores: Option<f64>,
    /// Everything else that ran on the machine meanwhile (other processes, the kernel).
    other_cores: Option<f64>,
}

fn run_level(
    rt: &tokio::runtime::Runtime,
    serve: &Serve,
    texts: &Arc<Texts>,
    connections: usize,
    warm_up: Duration,
    measure: Duration,
    cpu: &CpuClock,
) -> (Level, Vec<String>) {
    let url: Arc<str> = format!("{}/v1/triage", serve.base).into();
    let server_pid = serve.child.id().to_string();
    let (results, window, cpu_used) = rt.block_on(async {
        let measure_from = Instant::now() + warm_up;
        let until = measure_from + measure;
        let tasks: Vec<_> = (0..connections)
            .map(|c| {
                let seed = SEED ^ ((connections as u64) << 32) ^ (c as u64 + 1);
                tokio::spawn(connection(
                    texts.clone(),
                    url.clone(),
                    seed,
                    measure_from,
                    until,
                ))
            })
            .collect();
        tokio::time::sleep_until(measure_from.into()).await;
        let cpu_start = cpu.sample(&server_pid);
        let mut results = Vec::with_capacity(connections);
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| ConnectionResult {
                errors: 1,
                error_samples: vec![format!("client task failed: {e}")],
                ..ConnectionResult::default()
            }));
        }
        let cpu_end = cpu.sample(&server_pid);
        let last = results
            .iter()
            .filter_map(|r| r.last_done)
            .max()
            .unwrap_or(until);
        let window = last.saturating_duration_since(measure_from);
        let used: Vec<Option<f64>> = cpu_start
            .iter()
            .zip(cpu_end)
            .map(|(a, b)| Some(b? - (*a)?))
            .collect();
        (results, window, used)
    });
    let mut latencies: Vec<u64> = results
        .iter()
        .flat_map(|r| r.latencies_ns.iter().copied())
        .collect();
    latencies.sort_unstable();
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let warm_up_errors: usize = results.iter().map(|r| r.warm_up_errors).sum();
    let samples: Vec<String> = results
        .into_iter()
        .flat_map(|r| r.error_samples)
        .take(ERRORS_SHOWN)
        .collect();
    let secs = window.as_secs_f64().max(1e-9);
    let rank = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        // Nearest rank: the smallest value with at least p% of the values at or below it.
        let k = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[k.clamp(1, latencies.len()) - 1] as f64 / 1e6
    };
    let level = Level {
        connections,
        requests: latencies.len() + errors,
        errors,
        warm_up_errors,
        ok_per_second: latencies.len() as f64 / secs,
        latency_ms: [rank(50.0), rank(90.0), rank(99.0), rank(100.0)],
        server_cores: cpu_used[0].map(|s| s / secs),
        client_cores: cpu_used[1].map(|s| s / secs),
        other_cores: match cpu_used[..] {
            [Some(server), Some(client), Some(machine)] => {
                Some((machine - server - client).max(0.0) / secs)
            }
            _ => None,
        },
    };
    (level, samples)
}

fn header() -> String {
    format!(
        "{:>11} {:>9} {:>6} {:>10} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>9}",
        "connections",
        "requests",
        "errors",
        "requests/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "server CPU",
        "client CPU",
        "other CPU"
    )
}

fn row(l: &Level) -> String {
    let cores = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.2}"));
    // No 200 response at all: no latency to show.
    let [p50, p90, p99, max] = l.latency_ms.map(|ms| {
        if ms.is_nan() {
            "-".to_string()
        } else {
            format!("{ms:.2}")
        }
    });
    format!(
        "{:>11} {:>9} {:>6} {:>10.0} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>9}",
        l.connections,
        l.requests,
        l.errors,
        l.ok_per_second,
        p50,
        p90,
        p99,
        max,
        cores(l.server_cores),
        cores(l.client_cores),
        cores(l.other_cores)
    )
}

// ---------------------------------------------------------------------------------------------

fn seconds_from_env() -> Result<f64, String> {
    match std::env::var(SECONDS_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_SECONDS),
        Err(e) => Err(format!("{SECONDS_VAR}: {e}")),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_SECONDS),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
            _ => Err(format!(
                "{SECONDS_VAR} must be a number of seconds > 0, got {v:?}"
            )),
        },
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> ExitCode {
    // cargo bench passes --bench; cargo test (--all-targets, --benches) does not: smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (seconds, warm_up, levels): (f64, Duration, &[usize]) = if smoke {
        (SMOKE_SECONDS, SMOKE_WARM_UP, &SMOKE_LEVELS)
    } else {
        match seconds_from_env() {
            Ok(s) => (s, WARM_UP, &LEVELS),
            Err(e) => {
                eprintln!("http bench: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let measure = Duration::from_secs_f64(seconds);

    println!("firstline HTTP load: POST /v1/triage on loopback, closed loop, keep-alive");
    if smoke {
        println!("smoke run (no --bench argument): 1 and 4 connections, 1 s each; use cargo bench");
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} CPUs (nproc), {}", cpu_model());
    println!("client and server share these cores; the client is one tokio thread in this process");
    let texts = Arc::new(Texts::build());
    println!("{}", texts.describe());

    // The client's runtime: one thread, so the client takes at most one core from the server.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("http bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let serve = match Serve::start(&rt) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("http bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "server: {} serve (pid {}), embedded defaults, {}; healthy after {:.0} ms",
        env!("CARGO_BIN_EXE_firstline"),
        serve.child.id(),
        serve.base,
        started.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "per level: {:.1} s warm-up (not counted), then {seconds} s measured",
        warm_up.as_secs_f64()
    );
    println!();
    println!("{}", header());

    let cpu = CpuClock::new();
    let mut failed = false;
    for &connections in levels {
        let (level, samples) = run_level(&rt, &serve, &texts, connections, warm_up, measure, &cpu);
        println!("{}", row(&level));
        let _ = std::io::stdout().flush();
        if level.errors > 0 || level.warm_up_errors > 0 || level.requests == 0 {
            failed = true;
            eprintln!(
                "http bench: {connections} connections: {} errors in {} measured requests, \
                 {} errors in the warm-up",
                level.errors, level.requests, level.warm_up_errors
            );
            for s in samples {
                eprintln!("  {s}");
            }
        }
    }
    println!();
    println!(
        "units: ms = milliseconds; requests/s counts 200 responses; latency of 200 responses, \
         nearest rank; CPU = CPU seconds / measured seconds, in cores; other = rest of the machine"
    );

    if let Err(e) = serve.stop() {
        eprintln!("http bench: {e}");
        failed = true;
    }
    if failed {
        eprintln!("http bench: FAILED (see the errors above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
