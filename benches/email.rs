//! `firstline serve` end to end over real mail servers on loopback: Dovecot (IMAP, with IDLE)
//! in, aiosmtpd (tests/support/smtp_sink.py) out, the reply's copy to the support address
//! delivered back into Dovecot's INBOX as a local MTA would (so serve also reads its own
//! copies, as in a real deployment). Run it with `cargo bench --bench email`.
//!
//! 1. Latency: one customer message at a time is APPENDed to INBOX, and the next one only
//!    after the reply to it was accepted by the SMTP server, so queueing plays no part. The
//!    latency of a message is the time from just before its APPEND starts until its reply is
//!    accepted (the sink's `NNNNNN.eml` file appears; it is polled every millisecond).
//!    Median, p90, p99 (nearest rank) and max over `FIRSTLINE_BENCH_LATENCY_N` messages
//!    (default 200). serve runs on the default settings (IDLE).
//! 2. Backlog: serve is stopped (SIGTERM), `FIRSTLINE_BENCH_BACKLOG_N` distinct customer
//!    messages (default 5,000; different senders, subjects and bodies) are APPENDed, serve is
//!    started again on the same store, and the wall time from its start until the SMTP server
//!    has accepted every reply gives the throughput. The peak memory of the serve process is
//!    its VmHWM (from /proc/PID/status, read just before it is stopped), and the largest VmRSS
//!    sampled every 50 ms while it drains.
//!
//! To read the numbers: Dovecot's own share of the latency is measured apart (APPEND to a
//! mailbox serve does not read, until a second connection in IDLE there hears `* N EXISTS`;
//! Dovecot waits about half a second before it notifies). serve's CPU time (user + system,
//! /proc/PID/stat) and the whole machine's CPU use are shown too: a drain far below 100% CPU
//! waits on something else than computing. Last, the time until every message in INBOX (the
//! copies too) carries its severity keyword. serve's HTTP API stays on, on a free port.
//!
//! Every reply is checked afterwards: exactly one per message, to its sender, in order for
//! the latency run. The messages are generated from a fixed seed (no files): realistic
//! hosting support mails, plain text, text + HTML, or with a log attached.
//!
//! Units: ms = milliseconds, s = seconds, MiB = 1024 * 1024 bytes, messages/s.
//!
//! Without `--bench` on the command line (that is, when `cargo test --all-targets` or
//! `--benches` runs this binary in the test profile, as scripts/test does) it does a smoke run
//! instead: 5 latency messages and a backlog of 50, still failing when a reply is missing.
//! Both sizes can be set with the two variables above in either mode.
//!
//! Needs Dovecot and aiosmtpd, as the integration tests do (scripts/test installs them).

#[path = "../tests/integration/support.rs"]
mod support;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use support::{Dovecot, ImapTestClient, SmtpSink};

const LATENCY_VAR: &str = "FIRSTLINE_BENCH_LATENCY_N";
const BACKLOG_VAR: &str = "FIRSTLINE_BENCH_BACKLOG_N";
const FULL_LATENCY: usize = 200;
const FULL_BACKLOG: usize = 5_000;
const SMOKE_LATENCY: usize = 5;
const SMOKE_BACKLOG: usize = 50;

/// The support mailbox: replies come from it, and their copies go back into it.
const SUPPORT: &str = "support@firstline.test";

/// How often the sink's folder is looked at for the next reply.
const POLL: Duration = Duration::from_millis(1);
/// How often serve's VmRSS is sampled while it drains the backlog.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The longest wait for one reply (serve's start, one latency message).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// The backlog fails when no reply arrives for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest wait for every message in INBOX (copies too) to be labelled.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Reply cap per sender set for the run (the default, 5 an hour, is a production guard).
const SENDER_CAP: &str = "1000000";

const MIB: f64 = 1024.0 * 1024.0;

/// Fixed seed: every run appends the same messages.
const SEED: u64 = 0x5EED_E3A1_0000_0003;

type Result<T> = std::result::Result<T, String>;

// ---------------------------------------------------------------------------------------------
// Deterministic customer mail
// ---------------------------------------------------------------------------------------------

/// splitmix64: a few lines, no dependency, the same numbers on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    fn percent(&mut self, p: usize) -> bool {
        self.between(0, 100) < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.between(0, items.len())]
    }
}

const FIRST_NAMES: [&str; 40] = [
    "Anna", "Lars", "Marta", "Pieter", "Sofia", "Jonas", "Elena", "Tomas", "Ines", "Karl", "Nadia",
    "Oskar", "Lena", "Milan", "Clara", "Rafael", "Julia", "Henrik", "Aylin", "Marco", "Eva",
    "Bruno", "Petra", "Igor", "Laura", "Stefan", "Nora", "Dmitri", "Alice", "Paolo", "Katrin",
    "Hugo", "Mira", "Viktor", "Sara", "Felix", "Olga", "Daniel", "Rosa", "Emil",
];

const LAST_NAMES: [&str; 40] = [
    "Berg",
    "Novak",
    "Jansen",
    "Rossi",
    "Keller",
    "Dubois",
    "Lindqvist",
    "Horvat",
    "Costa",
    "Weber",
    "Kowalski",
    "Moreau",
    "Fischer",
    "Nielsen",
    "Popescu",
    "Santos",
    "Bauer",
    "Meyer",
    "Olsen",
    "Ricci",
    "Vogel",
    "Marin",
    "Schulz",
    "Petrov",
    "Laine",
    "Hofmann",
    "Varga",
    "Brandt",
    "Silva",
    "Kraus",
    "Lambert",
    "Wolf",
    "Ivanova",
    "Haas",
    "Nowak",
    "Garcia",
    "Engel",
    "Koch",
    "Sorensen",
    "Frank",
];

/// (company, mail domain, short name used in host names)
const COMPANIES: [(&str, &str, &str); 30] = [
    ("Nordhost AB", "nordhost.example", "nh"),
    ("Webfarm Lyon SARL", "webfarm-lyon.example", "wfl"),
    ("Alpenserver GmbH", "alpenserver.example", "alp"),
    ("Baltic Cloud", "balticcloud.example", "bc"),
    ("Hostwerk", "hostwerk.example", "hw"),
    ("Datacenter Iberia", "dc-iberia.example", "dci"),
    ("Polar VPS", "polarvps.example", "pv"),
    ("Tiber Hosting", "tiberhosting.example", "tib"),
    ("Danube Data", "danubedata.example", "dd"),
    ("Fjord Networks", "fjordnet.example", "fj"),
    ("Greenrack", "greenrack.example", "gr"),
    ("Kestrel Web Services", "kestrelws.example", "kws"),
    ("Lowlands IT", "lowlands-it.example", "lit"),
    ("Meridian Hosting", "meridianhost.example", "mer"),
    ("Nimbus Nine", "nimbus9.example", "n9"),
    ("Orbit Servers", "orbitservers.example", "orb"),
    ("Pannonia Cloud", "pannonia.example", "pan"),
    ("Quarry Host", "quarryhost.example", "qh"),
    ("Riverbank ISP", "riverbank-isp.example", "rb"),
    ("Silesia Net", "silesianet.example", "sn"),
    ("Tatra VPS", "tatravps.example", "tv"),
    ("Umbria Web", "umbriaweb.example", "uw"),
    ("Vltava Hosting", "vltava.example", "vlt"),
    ("Westcoast Colo", "westcoast-colo.example", "wcc"),
    ("Xenon Datacenters", "xenondc.example", "xdc"),
    ("Yellowstone Hosting", "yshosting.example", "ysh"),
    ("Zephyr Cloud", "zephyrcloud.example", "zc"),
    ("Adriatic Servers", "adriatic.example", "adr"),
    ("Bohemia IT", "bohemia-it.example", "bit"),
    ("Carpathia Cloud", "carpathia.example", "cc"),
];

const PEOPLE: usize = FIRST_NAMES.len() * LAST_NAMES.len() * COMPANIES.len();

/// A customer of the vendor: who writes.
struct Customer {
    name: String,
    address: String,
    company: &'static str,
    domain: &'static str,
    short: &'static str,
}

/// Customer number `n`: a different address for every `n`, people and companies mixed.
fn customer(n: usize) -> Customer {
    // 7919 is prime and does not divide PEOPLE: n -> j is a permutation of 0..PEOPLE.
    let j = (n % PEOPLE * 7919 + 17) % PEOPLE;
    let first = FIRST_NAMES[j % FIRST_NAMES.len()];
    let last = LAST_NAMES[(j / FIRST_NAMES.len()) % LAST_NAMES.len()];
    let (company, domain, short) = COMPANIES[j / (FIRST_NAMES.len() * LAST_NAMES.len())];
    let round = n / PEOPLE;
    let local = if round == 0 {
        format!("{}.{}", first.to_lowercase(), last.to_lowercase())
    } else {
        format!("{}.{}{round}", first.to_lowercase(), last.to_lowercase())
    };
    Customer {
        name: format!("{first} {last}"),
        address: format!("{local}@{domain}"),
        company,
        domain,
        short,
    }
}

/// What a customer writes about: subjects, first sentences, details and log lines, with
/// {placeholders} filled per message.
struct Topic {
    subjects: &'static [&'static str],
    openings: &'static [&'static str],
    details: &'static [&'static str],
    log: &'static [&'static str],
}

const TOPICS: [Topic; 10] = [
    Topic {
        subjects: &[
            "URGENT: node {host} down",
            "{host} not reachable since {time}",
            "Hardware node crashed - all containers offline",
            "Production server down, please call back",
        ],
        openings: &[
            "Our hardware node {host} stopped answering at {time} and has not come back. All {n} containers on it are offline and our customers cannot reach their sites.",
            "The server {host} ({ip}) went down during the night. It does not answer ping or SSH and the remote console shows a kernel panic.",
            "Since {time} the node {host} is dead: the IPMI shows it powered on but nothing boots past the kernel.",
        ],
        details: &[
            "A power cycle through IPMI did not help.",
            "This is our main production node, every customer on it is affected.",
            "The other nodes in the cluster are working normally.",
            "We have no spare node to move the containers to right now.",
            "The last thing in the log before it died was a message from the RAID controller.",
            "Nothing was changed on this machine in the last weeks.",
        ],
        log: &[
            "Nov 26 {time}:01 {host} kernel: BUG: unable to handle kernel NULL pointer dereference at 0000000000000010",
            "Nov 26 {time}:01 {host} kernel: RIP: 0010:ploop_make_request+0x1c4/0x5a0 [ploop]",
            "Nov 26 {time}:02 {host} kernel: Kernel panic - not syncing: Fatal exception",
            "Nov 26 {time}:00 {host} kernel: megaraid_sas 0000:03:00.0: FW in FAULT state!!",
        ],
    },
    Topic {
        subjects: &[
            "Container {ct} does not start",
            "VE {ct} fails to start after reboot",
            "Cannot start containers after the update",
            "Error starting CT {ct}: unable to mount image",
        ],
        openings: &[
            "After a reboot of {host} yesterday, container {ct} refuses to start. The start command ends with an error about mounting its disk image.",
            "Since we installed the latest updates on {host}, several containers fail to start with 'Unable to start init'.",
            "We moved CT {ct} from {host} to a new node and now it will not start there.",
        ],
        details: &[
            "Other containers on the same node start fine.",
            "There are {n} GB free on /vz.",
            "The container runs the web shop of one of our larger customers.",
            "Mounting the container works, only the start fails.",
            "Restoring it from last night's backup gives the same error.",
            "We did not touch the container's configuration.",
        ],
        log: &[
            "Nov 26 {time}:14 {host} vzctl[{n}]: Failed to start the Container {ct}",
            "Nov 26 {time}:14 {host} vzctl[{n}]: Error in ploop_mount_image (ploop.c:2161): Can't mount image: Invalid argument",
            "Nov 26 {time}:15 {host} kernel: EXT4-fs (ploop{ct}p1): bad geometry: block count exceeds size of device",
        ],
    },
    Topic {
        subjects: &[
            "Backup failed for several containers",
            "Nightly backups failing since {date}",
            "Backup error: unable to create snapshot",
            "Restore of CT {ct} fails",
        ],
        openings: &[
            "Our nightly backup job on {host} has failed three nights in a row. The report says the snapshot of CT {ct} could not be created.",
            "We tried to restore container {ct} from yesterday's backup and the restore stops with 'unknown archive format'.",
            "Backups to our remote storage finish with errors for about half of the containers on {host}.",
        ],
        details: &[
            "The backup storage is an NFS share; it is mounted and writable.",
            "There are {n} GB free on the backup server.",
            "We did not change the backup schedule.",
            "Our contract with the customer requires working backups, so we need this fixed soon.",
            "Backups started by hand fail the same way.",
            "The first failure came right after we enabled compression.",
        ],
        log: &[
            "{date} {time}:00 backup[{n}]: Backup of Container {ct} failed: Unable to create snapshot: No space left on device",
            "{date} {time}:03 backup[{n}]: Failed to lock the backup directory /backup/{ct}",
            "{date} {time}:09 backup[{n}]: 12 of {n} backups completed with errors",
        ],
    },
    Topic {
        subjects: &[
            "Migration of CT {ct} stuck at 99%",
            "Live migration fails between {host} and another node",
            "Container lost its data after migration",
        ],
        openings: &[
            "We started a live migration of container {ct} from {host} this morning and it has been stuck at 99% for two hours.",
            "Every live migration from {host} to our new node fails with a checkpoint error, offline migration works.",
            "After migrating CT {ct} its database is missing the last day of changes.",
        ],
        details: &[
            "The container is still running on the source node, so the customer is not down.",
            "Both nodes run the same version, {ver}.",
            "The network between the nodes is 10 Gbit and otherwise fine.",
            "We have about {n} containers left to move before the old hardware goes back.",
            "Cancelling the migration hangs as well.",
        ],
        log: &[
            "Nov 26 {time}:31 {host} migrate[{n}]: Checkpointing failed: Operation not permitted",
            "Nov 26 {time}:31 {host} migrate[{n}]: Can't dump the Container {ct}",
            "Nov 26 {time}:32 {host} migrate[{n}]: Rolling back the migration",
        ],
    },
    Topic {
        subjects: &[
            "Very slow containers on {host}",
            "High load on node since the weekend",
            "Disk I/O extremely slow",
            "Websites slow, load average {n}",
        ],
        openings: &[
            "Since Monday all containers on {host} are very slow. The load average on the node is around {n}, it used to be below 8.",
            "Sites hosted in CT {ct} take 20 to 30 seconds to load. Inside the container nothing stands out, but iowait on the node is high.",
            "Every night between 2 and 4 the node {host} becomes so slow that SSH logins time out.",
        ],
        details: &[
            "It happens only some of the time, maybe every second day.",
            "A reboot helps for a while, then it comes back.",
            "iostat shows the disks at 100% utilisation.",
            "The hardware passed the vendor diagnostics last week.",
            "Our customers have started to complain.",
            "We run {n} small web containers on this node.",
        ],
        log: &[
            "avg-cpu:  %user   %nice %system %iowait  %steal   %idle",
            "           4.12    0.00    6.40   71.33    0.00   18.15",
            "Device  r/s     w/s     rkB/s    wkB/s   await  %util",
            "sda     112.0   {n}.0   4480.0   9120.0  211.40  100.00",
        ],
    },
    Topic {
        subjects: &[
            "Power Panel shows error 500",
            "Customers cannot log in to the panel",
            "Panel: 'Operation failed' when restarting a container",
        ],
        openings: &[
            "Our customers cannot log in to Power Panel since this morning: after the password the panel shows 'Internal server error'.",
            "When a customer restarts his container from the panel he gets 'Operation failed: connection to the agent lost'.",
            "The panel on {host} shows an empty container list for every user, although the containers run fine.",
        ],
        details: &[
            "The containers themselves are up and reachable.",
            "Restarting the agent helps for a few minutes only.",
            "About {n} customers use the panel on this node every day.",
            "It is the same in every browser we tried.",
            "The panel's certificate was renewed on {date}.",
        ],
        log: &[
            "{date} {time}:44 pva-agent[{n}]: ERROR: connection to the dispatcher lost",
            "{date} {time}:44 httpd: [error] PHP Fatal error: Uncaught exception 'AgentTimeout'",
        ],
    },
    Topic {
        subjects: &[
            "Network down for containers on {host}",
            "Packet loss to {ip}",
            "Containers lost their IPv6 after the update",
        ],
        openings: &[
            "Since {time} the containers on {host} cannot reach the internet, while the node itself can.",
            "We see about 30% packet loss to {ip} (CT {ct}) and to the other containers on {host}.",
            "After yesterday's update the containers on {host} lost their IPv6 addresses; IPv4 still works.",
        ],
        details: &[
            "Nothing changed in our switch configuration.",
            "Only containers with routed addresses are affected, bridged ones work.",
            "Restarting the network service on the node did not help.",
            "A few of the affected containers are mail servers for our customers.",
            "Traceroute stops at the node's own address.",
        ],
        log: &[
            "64 bytes from {ip}: icmp_seq=12 ttl=61 time=0.412 ms",
            "Request timeout for icmp_seq 13",
            "Request timeout for icmp_seq 14",
            "--- {ip} ping statistics --- 20 packets transmitted, 14 received, 30% packet loss",
        ],
    },
    Topic {
        subjects: &[
            "Question: resizing a container disk",
            "How do I move a container to another node?",
            "How to limit CPU for one container?",
            "Question about scheduled backups",
        ],
        openings: &[
            "What is the recommended way to grow the disk of CT {ct} from 50 GB to 100 GB without a restart?",
            "Could you tell me how to move container {ct} to a new node with as little downtime as possible? We run {ver}.",
            "How can I limit one container to two CPU cores so that it does not slow the others down?",
            "We would like daily backups of every container to a separate storage server. Is there a guide?",
        ],
        details: &[
            "Nothing is broken, we only want to do it the right way.",
            "We read the admin guide but could not find this part.",
            "A command line way would be best, so we can script it.",
            "There is no hurry.",
            "It is for our test cluster first.",
        ],
        log: &[],
    },
    Topic {
        subjects: &[
            "License expired message on {host}",
            "Cannot activate the new license key",
            "License shows fewer containers than we bought",
        ],
        openings: &[
            "Since today {host} says the license has expired, although we renewed it last week.",
            "The new license key we received is refused with 'invalid key' on {host}.",
            "Our license should allow {n} containers, but the node reports a limit of 50.",
        ],
        details: &[
            "Running containers are fine, but we cannot create new ones.",
            "The node can reach the license server, we checked.",
            "Our order number is {n}{ct}.",
            "We need to create containers for a new customer this week.",
        ],
        log: &[
            "{date} {time}:05 licd[{n}]: License check failed: key is not valid for this hardware",
        ],
    },
    Topic {
        subjects: &[
            "Feature request: two-factor login for the panel",
            "Suggestion: mail alerts for failed backups",
            "Wish: per-container traffic graphs",
        ],
        openings: &[
            "It would be great if the panel supported two-factor authentication; many of our customers have asked for it.",
            "We would like an e-mail when a backup job fails, instead of reading the logs every morning.",
            "Could you add graphs of the network traffic per container to the panel?",
        ],
        details: &[
            "Other vendors we work with already offer this.",
            "We would be happy to test a beta.",
            "This is not urgent, just an idea for a future release.",
            "About {n} of our customers asked for it this year.",
        ],
        log: &[],
    },
];

const GREETINGS: &[&str] = &[
    "Hello,",
    "Hi,",
    "Dear support team,",
    "Hello support,",
    "Good morning,",
    "Hi there,",
];

const ENVIRONMENTS: &[&str] = &[
    "This is our production environment.",
    "The node is part of our production cluster, {n} customers are hosted on it.",
    "It is only a lab machine, nothing in production is affected.",
    "This is our staging system, production looks fine so far.",
    "Some of our customers are affected, not all.",
    "As a workaround we moved the most important sites to another node.",
    "We have no workaround at the moment.",
];

const CLOSINGS: &[&str] = &[
    "Thanks,",
    "Best regards,",
    "Kind regards,",
    "Regards,",
    "Thank you in advance,",
    "Cheers,",
];

const VERSIONS: &[&str] = &["7.5 Update 3", "7.5 Update 4", "7.5 Update 5", "8.0", "8.1"];
const HOST_PREFIXES: &[&str] = &["hn", "node", "vz", "host", "srv"];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 Thunderbird/128.4.0",
    "Microsoft Outlook 16.0",
    "Roundcube Webmail/1.6.9",
    "Mutt/2.2.12",
];

/// One generated customer mail.
struct Mail {
    /// Without the angle brackets.
    message_id: String,
    from: String,
    raw: Vec<u8>,
}

/// The values a message's {placeholders} take.
struct Fill {
    host: String,
    ct: String,
    ip: String,
    time: String,
    n: String,
    date: String,
    ver: String,
}

impl Fill {
    fn new(rng: &mut Rng, who: &Customer) -> Fill {
        Fill {
            host: format!(
                "{}{:02}.{}",
                rng.pick(HOST_PREFIXES),
                rng.between(1, 40),
                who.short
            ),
            ct: rng.between(100, 9999).to_string(),
            ip: format!(
                "10.{}.{}.{}",
                rng.between(0, 256),
                rng.between(0, 256),
                rng.between(2, 255)
            ),
            time: format!("{:02}:{:02}", rng.between(0, 24), rng.between(0, 60)),
            n: rng.between(2, 400).to_string(),
            date: format!("2026-11-{:02}", rng.between(1, 27)),
            ver: rng.pick(VERSIONS).to_owned(),
        }
    }

    fn apply(&self, template: &str) -> String {
        template
            .replace("{host}", &self.host)
            .replace("{ct}", &self.ct)
            .replace("{ip}", &self.ip)
            .replace("{time}", &self.time)
            .replace("{n}", &self.n)
            .replace("{date}", &self.date)
            .replace("{ver}", &self.ver)
    }
}

/// Customer mail number `index` of the run `kind` ("warmup", "latency", "backlog"), written
/// by customer number `who`. The same arguments give the same bytes on every run.
fn customer_mail(kind: &str, index: usize, who: usize) -> Mail {
    let kind_seed = kind
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng::new(SEED ^ kind_seed.rotate_left(40) ^ index as u64);
    let person = customer(who);
    let topic = &TOPICS[rng.between(0, TOPICS.len())];
    let fill = Fill::new(&mut rng, &person);

    let subject = fill.apply(rng.pick(topic.subjects));
    let mut paragraphs = vec![rng.pick(GREETINGS).to_owned()];
    paragraphs.push(fill.apply(rng.pick(topic.openings)));
    let mut details: Vec<String> = Vec::new();
    for _ in 0..rng.between(1, 5) {
        let d = fill.apply(rng.pick(topic.details));
        if !details.contains(&d) {
            details.push(d);
        }
    }
    paragraphs.push(details.join(" "));
    if rng.percent(60) {
        paragraphs.push(fill.apply(rng.pick(ENVIRONMENTS)));
    }
    let log: Vec<String> = if topic.log.is_empty() {
        Vec::new()
    } else {
        (0..rng.between(2, 12))
            .map(|_| fill.apply(rng.pick(topic.log)))
            .collect()
    };
    // Where the log goes: pasted in the text, attached as a file, or left out.
    let layout = rng.between(0, 100);
    let (pasted, attached, html) = match layout {
        0..=29 if !log.is_empty() => (true, false, false),
        30..=44 if !log.is_empty() => (false, true, false),
        45..=64 => (false, false, true),
        _ => (false, false, false),
    };
    if pasted {
        paragraphs.push(format!("From the log:\n\n{}", log.join("\n")));
    }
    let phone = format!(
        "+{} {} {} {:04}",
        rng.between(30, 49),
        rng.between(20, 90),
        rng.between(100, 999),
        rng.between(0, 10_000)
    );
    if rng.percent(25) {
        paragraphs.push(format!("Please call me on {phone} if you need anything."));
    }
    let mut signature = format!(
        "{}\n{}\n{}",
        rng.pick(CLOSINGS),
        person.name,
        person.company
    );
    if rng.percent(40) {
        signature.push_str(&format!("\nPhone: {phone}"));
    }
    paragraphs.push(signature);
    let text = paragraphs.join("\n\n");

    let message_id = format!(
        "{kind}.{index}.{:08x}@mail.{}",
        rng.next_u64() as u32,
        person.domain
    );
    let seconds = (index * 37 + 7 * 3600) % 86_400;
    let mut head = format!(
        "Return-Path: <{address}>\nFrom: {name} <{address}>\nTo: Support <{SUPPORT}>\n\
         Subject: {subject}\nDate: Thu, 26 Nov 2026 {:02}:{:02}:{:02} +0100\n\
         Message-ID: <{message_id}>\nMIME-Version: 1.0\nUser-Agent: {}\n",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        rng.pick(USER_AGENTS),
        name = person.name,
        address = person.address,
    );
    let boundary = format!("=_bench_{index:06}_{:x}", rng.next_u64() as u16);
    let body = if html {
        head.push_str(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\n"
        ));
        let html_text: String = text
            .split("\n\n")
            .map(|p| format!("<p>{}</p>\n", escape_html(p).replace('\n', "<br>\n")))
            .collect();
        format!(
            "This is a multi-part message in MIME format.\n\n--{boundary}\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
             {text}\n\n--{boundary}\n\
             Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
             <html><body>\n{html_text}</body></html>\n\n--{boundary}--\n"
        )
    } else if attached {
        head.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\n"
        ));
        format!(
            "This is a multi-part message in MIME format.\n\n--{boundary}\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
             {text}\n\nThe log is attached.\n\n--{boundary}\n\
             Content-Type: text/plain; charset=utf-8; name=\"messages.log\"\n\
             Content-Disposition: attachment; filename=\"messages.log\"\n\
             Content-Transfer-Encoding: 8bit\n\n{}\n\n--{boundary}--\n",
            log.join("\n")
        )
    } else {
        head.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n");
        format!("{text}\n")
    };
    let raw = format!("{head}\n{body}").replace('\n', "\r\n").into_bytes();
    Mail {
        message_id,
        from: person.address,
        raw,
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// ---------------------------------------------------------------------------------------------
// The servers, serve, and the replies
// ---------------------------------------------------------------------------------------------

/// Dovecot, the SMTP sink that delivers each reply's copy into Dovecot's INBOX, and a folder
/// with serve's settings, store and log.
struct Desk {
    dir: tempfile::TempDir,
    imap: Dovecot,
    smtp: SmtpSink,
    config: PathBuf,
    log: PathBuf,
}

impl Desk {
    fn start() -> Desk {
        let dir = tempfile::Builder::new()
            .prefix("firstline-bench-email-")
            .tempdir()
            .expect("cannot make a temporary folder");
        let imap = Dovecot::start();
        // Selecting INBOX makes Dovecot create its Maildir, with the owner it needs.
        imap.uids("INBOX");
        let smtp = SmtpSink::start_delivering(None, 0, Some((SUPPORT, &imap.maildir())));
        let config = dir.path().join("firstline.toml");
        // Only what the deployment needs; everything else (IDLE, keywords, retries, the
        // timeouts, the HTTP API) stays at the defaults. The API gets a free port so that
        // it cannot clash with another serve on the default one.
        fs::write(
            &config,
            format!(
                r#"[store]
path = "var/firstline.db"

[http]
address = "127.0.0.1:{}"

[email]
inbound = "imap"
outbound = "smtp"
address = "{SUPPORT}"
message_id_domain = "firstline.test"
copy_to = "{SUPPORT}"

[email.imap]
host = "127.0.0.1"
port = {}
security = "plain"
user = "{}"

[email.smtp]
host = "127.0.0.1"
port = {}
security = "plain"
"#,
                support::free_port(),
                imap.port,
                imap.user,
                smtp.port
            ),
        )
        .expect("cannot write the settings");
        let log = dir.path().join("serve.log");
        Desk {
            dir,
            imap,
            smtp,
            config,
            log,
        }
    }

    fn serve(&self) -> Result<Serve> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_firstline"))
            .current_dir(self.dir.path())
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env_remove("FIRSTLINE_CONFIG")
            .env("FIRSTLINE_IMAP_PASSWORD", &self.imap.password)
            .env("FIRSTLINE_LOG", "warn")
            .env("FIRSTLINE__EMAIL__REPLIES_PER_SENDER_PER_HOUR", SENDER_CAP)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start firstline serve: {e}"))?;
        Ok(Serve { child, started })
    }

    /// The end of serve's log, for an error message.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("serve's log ({} lines, the last 40):\n{tail}", lines.len())
    }
}

/// A running `firstline serve`; killed when dropped still running (a failed run).
struct Serve {
    child: Child,
    started: Instant,
}

/// Memory of a process from /proc/PID/status, in KiB (the kernel's "kB").
#[derive(Clone, Copy, Default)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Serve {
    fn memory(&self) -> Result<Memory> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .ok_or_else(|| format!("no {name} in {path}"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// CPU time serve has used so far (user + system), from /proc/PID/stat.
    fn cpu(&self) -> Result<Duration> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // After "PID (COMM) ": state is field 3; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        match (ticks(11), ticks(12)) {
            (Some(user), Some(system)) => Ok(Duration::from_secs_f64(
                (user + system) as f64 / clock_ticks_per_second(),
            )),
            _ => Err(format!("cannot read utime and stime in {path}")),
        }
    }

    /// Fails when serve has exited.
    fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("firstline serve exited early ({status})")),
            Err(e) => Err(format!("cannot wait for firstline serve: {e}")),
        }
    }

    /// SIGTERM, then up to 30 s for a clean exit.
    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("serve exited with {status} on SIGTERM")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => return Err("serve did not stop within 30 s of SIGTERM".into()),
                Err(e) => return Err(format!("cannot wait for serve: {e}")),
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, nearly always 100).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The machine's CPU counters from the first line of /proc/stat: (busy, iowait, total),
/// in clock ticks summed over every CPU.
#[derive(Clone, Copy, Default)]
struct MachineCpu {
    busy: u64,
    iowait: u64,
    total: u64,
}

impl MachineCpu {
    fn now() -> MachineCpu {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        // cpu user nice system idle iowait irq softirq steal (guest time is in user already)
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 8 {
            return MachineCpu::default();
        }
        let total: u64 = v.iter().sum();
        MachineCpu {
            busy: total - v[3] - v[4],
            iowait: v[4],
            total,
        }
    }

    /// Busy and iowait shares of all CPUs between `self` and `later`, in percent.
    fn shares(self, later: MachineCpu) -> Option<(f64, f64)> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)? as f64;
        Some((
            (later.busy - self.busy) as f64 * 100.0 / total,
            (later.iowait - self.iowait) as f64 * 100.0 / total,
        ))
    }
}

/// Dovecot alone: the time from the start of an APPEND until a second connection, in IDLE on
/// the same mailbox, is told `* N EXISTS`. Measured on a mailbox serve does not read.
fn idle_notify_delays(imap: &Dovecot, n: usize) -> Vec<Duration> {
    const MAILBOX: &str = "Calibration";
    let mut appender = imap.client();
    appender.create(MAILBOX);
    let mut idler = imap.client();
    idler.select(MAILBOX);
    let mut delays = Vec::with_capacity(n);
    for i in 0..n {
        let tag = format!("I{i}");
        idler.write_line(&format!("{tag} IDLE"));
        while !idler.read_response().starts_with(b"+") {}
        let mail = customer_mail("calibration", i, 0);
        let start = Instant::now();
        appender.append(MAILBOX, &mail.raw);
        loop {
            let response = idler.read_response();
            if response.starts_with(b"* ") && response.ends_with(b"EXISTS\r\n") {
                break;
            }
        }
        delays.push(start.elapsed());
        idler.write_line("DONE");
        while !idler
            .read_response()
            .starts_with(format!("{tag} ").as_bytes())
        {}
    }
    idler.logout();
    appender.logout();
    delays
}

/// The replies the SMTP sink accepted, counted by its numbered files: reply number k is
/// `NNNNNN.eml` with NNNNNN = k, written (by rename) before the sink answers 250. Looking
/// for the next file is one stat, cheap enough to do every millisecond.
struct Replies {
    dir: PathBuf,
    count: usize,
}

impl Replies {
    /// Counts the replies that arrived since the last call; the new total.
    fn update(&mut self) -> usize {
        while self.dir.join(format!("{:06}.eml", self.count + 1)).exists() {
            self.count += 1;
        }
        self.count
    }

    /// Waits until there are `n` replies; the moment the n-th was seen.
    fn wait_for(&mut self, n: usize, serve: &mut Serve, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.update() >= n {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(format!("{} replies after {timeout:?}, not {n}", self.count));
            }
            serve.check_running()?;
            std::thread::sleep(POLL);
        }
    }
}

/// How many messages in INBOX carry no severity keyword yet: 0 once serve has triaged and
/// labelled everything there, the copies of its replies included.
fn unlabelled(client: &mut ImapTestClient) -> usize {
    client.examine("INBOX");
    let query: Vec<String> = (1..=4)
        .map(|l| format!("NOT KEYWORD $Severity{l}"))
        .collect();
    client
        .command(&format!("UID SEARCH {}", query.join(" ")))
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .filter_map(|r| {
            r.strip_prefix("* SEARCH")
                .map(|s| s.split_whitespace().count())
        })
        .sum()
}

/// Waits until every message in INBOX is labelled, sampling serve's memory meanwhile; the
/// time it took, or None after SETTLE_TIMEOUT.
fn settle(client: &mut ImapTestClient, serve: &mut Serve, peak_rss: &mut u64) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < SETTLE_TIMEOUT {
        if let Ok(m) = serve.memory() {
            *peak_rss = (*peak_rss).max(m.rss_kib);
        }
        if unlabelled(client) == 0 {
            return Some(start.elapsed());
        }
        if serve.check_running().is_err() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The two measurements
// ---------------------------------------------------------------------------------------------

struct LatencyRun {
    latencies: Vec<Duration>,
    idle_delays: Vec<Duration>,
    cpu: Duration,
    startup: Duration,
    settled: Option<Duration>,
    /// Right after the warm-up reply: the memory serve starts with.
    baseline: Memory,
    memory: Memory,
}

struct BacklogRun {
    append: Duration,
    first_reply: Duration,
    last_reply: Duration,
    settled: Option<Duration>,
    hwm_at_last_reply: u64,
    memory: Memory,
    peak_rss: u64,
    samples: usize,
    bytes: usize,
    /// serve's CPU time from its start to the last reply.
    cpu: Duration,
    /// The machine's busy and iowait shares, serve start -> last reply, in percent.
    machine: Option<(f64, f64)>,
}

/// Everything appended, to check the replies against: (Message-ID, sender).
type Sent = Vec<(String, String)>;

fn run_latency(
    desk: &Desk,
    replies: &mut Replies,
    n: usize,
    sent: &mut Sent,
) -> Result<(LatencyRun, Serve)> {
    let idle_delays = idle_notify_delays(&desk.imap, n.clamp(3, 20));
    let mut serve = desk.serve()?;
    let mut client = desk.imap.client();
    // Warm-up: serve is ready once it has answered one message.
    let warm = customer_mail("warmup", 0, 0);
    client.append("INBOX", &warm.raw);
    sent.push((warm.message_id, warm.from));
    let ready = replies.wait_for(replies.count + 1, &mut serve, REPLY_TIMEOUT)?;
    let startup = ready - serve.started;
    let baseline = serve.memory()?;

    let cpu_before = serve.cpu()?;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let mail = customer_mail("latency", i, 1 + i);
        let target = replies.count + 1;
        let start = Instant::now();
        client.append("INBOX", &mail.raw);
        let seen = replies
            .wait_for(target, &mut serve, REPLY_TIMEOUT)
            .map_err(|e| format!("latency message {i}: {e}"))?;
        latencies.push(seen - start);
        sent.push((mail.message_id, mail.from));
    }
    client.logout();
    let cpu = serve.cpu()? - cpu_before;

    // Let serve finish the copies of its replies before it is stopped, so the backlog run
    // starts from a quiet mailbox.
    let mut watch = desk.imap.client();
    let mut peak = 0;
    let settled = settle(&mut watch, &mut serve, &mut peak);
    watch.logout();
    let memory = serve.memory()?;
    Ok((
        LatencyRun {
            latencies,
            idle_delays,
            cpu,
            startup,
            settled,
            baseline,
            memory,
        },
        serve,
    ))
}

fn run_backlog(
    desk: &Desk,
    replies: &mut Replies,
    n: usize,
    first_customer: usize,
    sent: &mut Sent,
) -> Result<(BacklogRun, Serve)> {
    // serve is stopped: mail piles up. One connection for every APPEND.
    let start = Instant::now();
    let mut client = desk.imap.client();
    let mut bytes = 0;
    for i in 0..n {
        let mail = customer_mail("backlog", i, first_customer + i);
        client.append("INBOX", &mail.raw);
        bytes += mail.raw.len();
        sent.push((mail.message_id, mail.from));
    }
    client.logout();
    let append = start.elapsed();

    let target = replies.count + n;
    let machine_before = MachineCpu::now();
    let mut serve = desk.serve()?;
    let started = serve.started;
    let mut first_reply = None;
    let mut progress = (replies.count, Instant::now());
    let mut peak_rss = 0;
    let mut samples = 0;
    let mut next_sample = Instant::now();
    let last = loop {
        let count = replies.update();
        let now = Instant::now();
        if count > progress.0 {
            if first_reply.is_none() {
                first_reply = Some(now - started);
            }
            progress = (count, now);
        }
        if count >= target {
            break now;
        }
        if now >= next_sample {
            if let Ok(m) = serve.memory() {
                peak_rss = peak_rss.max(m.rss_kib);
                samples += 1;
            }
            next_sample = now + SAMPLE_EVERY;
        }
        if now - progress.1 > STALL_TIMEOUT {
            return Err(format!(
                "backlog: {} of {n} replies, none for {STALL_TIMEOUT:?}",
                count + n - target
            ));
        }
        serve.check_running()?;
        std::thread::sleep(POLL);
    };
    let last_reply = last - started;
    let machine = machine_before.shares(MachineCpu::now());
    let cpu = serve.cpu()?;
    let hwm_at_last_reply = serve.memory()?.hwm_kib;

    let mut watch = desk.imap.client();
    let settled = settle(&mut watch, &mut serve, &mut peak_rss);
    watch.logout();
    // Read just before serve is stopped (by the caller).
    let memory = serve.memory()?;
    peak_rss = peak_rss.max(memory.rss_kib);
    Ok((
        BacklogRun {
            append,
            first_reply: first_reply.unwrap_or(last_reply),
            last_reply,
            settled,
            hwm_at_last_reply,
            memory,
            peak_rss,
            samples,
            bytes,
            cpu,
            machine,
        },
        serve,
    ))
}

/// The value of the header `name` (unfolded), from the head of `raw`.
fn header_value(raw: &str, name: &str) -> Option<String> {
    let mut lines = raw.lines().take_while(|l| !l.is_empty()).peekable();
    while let Some(line) = lines.next() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.eq_ignore_ascii_case(name) {
            let mut value = value.trim().to_owned();
            while let Some(more) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(more.trim());
            }
            return Some(value);
        }
    }
    None
}

/// Exactly one reply per message, in order, each to its sender.
fn check_replies(smtp: &SmtpSink, sent: &Sent) -> Result<()> {
    let got = smtp.messages();
    if got.len() != sent.len() {
        return Err(format!(
            "the SMTP server accepted {} messages for {} customer messages",
            got.len(),
            sent.len()
        ));
    }
    let senders: HashMap<&str, &str> = sent
        .iter()
        .map(|(id, from)| (id.as_str(), from.as_str()))
        .collect();
    let mut answered: HashMap<String, usize> = HashMap::new();
    for (k, (reply, (id, _))) in got.iter().zip(sent).enumerate() {
        let text = reply.text();
        let answers = header_value(&text, "In-Reply-To")
            .map(|v| v.trim_matches(['<', '>', ' ']).to_owned())
            .unwrap_or_default();
        *answered.entry(answers.clone()).or_default() += 1;
        let to = senders.get(answers.as_str()).copied().unwrap_or("?");
        if !reply.rcpt_tos.iter().any(|r| r == to) || !reply.rcpt_tos.iter().any(|r| r == SUPPORT) {
            return Err(format!(
                "reply {} (to <{answers}>) went to {:?}, not to {to} and {SUPPORT}",
                k + 1,
                reply.rcpt_tos
            ));
        }
        // Up to the backlog, one message at a time: reply k answers message k.
        if !id.starts_with("backlog.") && answers != *id {
            return Err(format!("reply {} answers <{answers}>, not <{id}>", k + 1));
        }
    }
    for (id, _) in sent {
        match answered.get(id) {
            Some(1) => {}
            other => {
                return Err(format!(
                    "<{id}> got {} replies",
                    other.copied().unwrap_or(0)
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// The nearest-rank percentile `q` (0 < q <= 1) of sorted values.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 * 1024.0 / MIB)
}

fn machine() -> String {
    let cpus = Command::new("nproc")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        });
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| format!(", {:.1} GiB RAM", kib as f64 / (1024.0 * 1024.0)))
        .unwrap_or_default();
    format!("nproc {cpus}, {model}{memory}")
}

fn dovecot_version() -> String {
    ["dovecot", "/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
        .iter()
        .find_map(|bin| Command::new(bin).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn row(what: &str, value: String, unit: &str) {
    println!("  {what:<52} {value:>10}  {unit}");
}

fn report(latency: &LatencyRun, backlog: &BacklogRun, backlog_n: usize) {
    let mut sorted = latency.latencies.clone();
    sorted.sort_unstable();
    let n = sorted.len();
    let mean = sorted.iter().sum::<Duration>() / n as u32;
    println!();
    println!(
        "Latency: IMAP APPEND start -> reply accepted by the SMTP server ({n} messages, one at a time)"
    );
    row("median", ms(percentile(&sorted, 0.5)), "ms");
    row("p90", ms(percentile(&sorted, 0.9)), "ms");
    row("p99", ms(percentile(&sorted, 0.99)), "ms");
    row("max", ms(sorted[n - 1]), "ms");
    row("min", ms(sorted[0]), "ms");
    row("mean", ms(mean), "ms");
    let mut idle = latency.idle_delays.clone();
    idle.sort_unstable();
    row(
        &format!(
            "Dovecot alone: APPEND -> IDLE's EXISTS, median of {}",
            idle.len()
        ),
        ms(percentile(&idle, 0.5)),
        "ms",
    );
    row(
        "  so after Dovecot's notice (median - that median)",
        ms(percentile(&sorted, 0.5).saturating_sub(percentile(&idle, 0.5))),
        "ms",
    );
    row(
        "serve CPU time per message (user + system)",
        ms(latency.cpu / n as u32),
        "ms",
    );
    row(
        "serve start -> first reply (warm-up message)",
        ms(latency.startup),
        "ms",
    );
    row(
        "serve VmRSS after the warm-up reply",
        mib(latency.baseline.rss_kib),
        "MiB",
    );
    row(
        "serve peak memory, VmHWM before stop",
        mib(latency.memory.hwm_kib),
        "MiB",
    );
    println!();
    println!(
        "Backlog after a restart: {backlog_n} messages ({:.2} MiB) appended while serve was stopped",
        backlog.bytes as f64 / MIB
    );
    row(
        "APPEND of the backlog (setup, one connection)",
        secs(backlog.append),
        "s",
    );
    row("serve start -> first reply", secs(backlog.first_reply), "s");
    row(
        "serve start -> last reply (all triaged and answered)",
        secs(backlog.last_reply),
        "s",
    );
    row(
        "throughput, serve start -> last reply",
        format!("{:.1}", backlog_n as f64 / backlog.last_reply.as_secs_f64()),
        "messages/s",
    );
    let steady = backlog.last_reply.saturating_sub(backlog.first_reply);
    if backlog_n > 1 && !steady.is_zero() {
        row(
            "throughput, first reply -> last reply",
            format!("{:.1}", (backlog_n - 1) as f64 / steady.as_secs_f64()),
            "messages/s",
        );
    }
    row(
        "serve CPU time, start -> last reply (user + system)",
        secs(backlog.cpu),
        "s",
    );
    row("  per message", ms(backlog.cpu / backlog_n as u32), "ms");
    if let Some((busy, iowait)) = backlog.machine {
        row(
            "machine CPU busy, all processes, all CPUs",
            format!("{busy:.0}"),
            "%",
        );
        row("machine CPU iowait", format!("{iowait:.0}"), "%");
    }
    row(
        "peak memory, VmHWM at the last reply",
        mib(backlog.hwm_at_last_reply),
        "MiB",
    );
    row(
        "peak memory, VmHWM before stop",
        mib(backlog.memory.hwm_kib),
        "MiB",
    );
    row(
        &format!(
            "max VmRSS sampled ({} samples, every 50 ms)",
            backlog.samples
        ),
        mib(backlog.peak_rss),
        "MiB",
    );
    row("VmRSS before stop", mib(backlog.memory.rss_kib), "MiB");
    let settled = |d: Option<Duration>| match d {
        Some(d) => secs(d),
        None => format!(">{}", SETTLE_TIMEOUT.as_secs()),
    };
    println!();
    println!("Afterwards (copies of the replies read back from INBOX and everything labelled):");
    row(
        "latency run: last reply -> INBOX fully labelled",
        settled(latency.settled),
        "s",
    );
    row(
        "backlog: last reply -> INBOX fully labelled",
        settled(backlog.settled),
        "s",
    );
}

fn size_from_env(var: &str, default: usize) -> Result<usize> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "{var}={v:?}: expected a whole number of at least 1"
            )),
        },
    }
}

fn run(latency_n: usize, backlog_n: usize) -> Result<()> {
    let desk = Desk::start();
    let mut replies = Replies {
        dir: desk.smtp.dir.clone(),
        count: 0,
    };
    let mut sent = Sent::new();
    let fail = |e: String| format!("{e}\n{}", desk.log_tail());

    let (latency, serve) = run_latency(&desk, &mut replies, latency_n, &mut sent).map_err(fail)?;
    serve.stop().map_err(fail)?;
    let (backlog, serve) =
        run_backlog(&desk, &mut replies, backlog_n, 1 + latency_n, &mut sent).map_err(fail)?;
    serve.stop().map_err(fail)?;

    check_replies(&desk.smtp, &sent)?;
    println!(
        "checked: {} replies, exactly one per customer message, each to its sender and {SUPPORT}",
        sent.len()
    );
    report(&latency, &backlog, backlog_n);
    Ok(())
}

fn main() -> ExitCode {
    // cargo bench passes --bench; cargo test (--all-targets, --benches) does not: smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (latency_default, backlog_default) = if smoke {
        (SMOKE_LATENCY, SMOKE_BACKLOG)
    } else {
        (FULL_LATENCY, FULL_BACKLOG)
    };
    let sizes = size_from_env(LATENCY_VAR, latency_default)
        .and_then(|l| Ok((l, size_from_env(BACKLOG_VAR, backlog_default)?)));
    let (latency_n, backlog_n) = match sizes {
        Ok(s) => s,
        Err(e) => {
            eprintln!("email bench: {e}");
            return ExitCode::from(2);
        }
    };

    println!("firstline serve over IMAP (Dovecot, IDLE) and SMTP (aiosmtpd), on loopback");
    if smoke {
        println!(
            "smoke run (no --bench argument): {latency_n} latency messages, a backlog of \
             {backlog_n}; use cargo bench --bench email for the numbers"
        );
    }
    if !smoke {
        println!("command: cargo bench --bench email");
    }
    println!("binary: {}", std::env::args().collect::<Vec<_>>().join(" "));
    let overrides: Vec<String> = [LATENCY_VAR, BACKLOG_VAR]
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|x| format!("{v}={x}")))
        .collect();
    if !overrides.is_empty() {
        println!("environment: {}", overrides.join(" "));
    }
    println!("machine: {}", machine());
    println!(
        "servers: {}; firstline built in the {} profile, FIRSTLINE_LOG=warn, reply cap per sender {SENDER_CAP}/h",
        dovecot_version()
            .split_whitespace()
            .next()
            .map(|v| format!("Dovecot {v}"))
            .unwrap_or_default(),
        if cfg!(debug_assertions) {
            "test (debug)"
        } else {
            "bench (release)"
        }
    );

    let start = Instant::now();
    let result = run(latency_n, backlog_n);
    println!();
    println!("bench wall time: {:.1} s", start.elapsed().as_secs_f64());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("email bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
