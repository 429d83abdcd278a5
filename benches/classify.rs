//! Throughput of the triage engine on one thread.
//!
//! Builds a deterministic corpus of support messages (a fixed-seed PRNG, no files, no extra
//! crates) of mixed sizes and styles, then times `triage()` over it, per size bucket, and
//! `extract()` and `classify()` on their own. Run it with `cargo bench --bench classify`;
//! `FIRSTLINE_BENCH_PASSES` (default 5) sets the number of timed passes.
//!
//! Units: sizes are bytes of UTF-8 text; KiB = 1024 bytes, MiB = 1024 * 1024 bytes.
//!
//! Without `--bench` on the command line (that is, when `cargo test --all-targets` or
//! `--benches` runs this binary in the test profile, as scripts/test does) it only does a short
//! smoke run, so the test suite stays quick.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use firstline::triage::policy::Packs;
use firstline::triage::{self, Facts, Policy};

/// Fixed seed: every run measures the same corpus.
const SEED: u64 = 0xF125_71AE_5EED_0001;
/// Messages in the corpus of a real run, and of a smoke run.
const CORPUS_MESSAGES: usize = 2_000;
const SMOKE_MESSAGES: usize = 12;
const DEFAULT_PASSES: usize = 5;
const PASSES_VAR: &str = "FIRSTLINE_BENCH_PASSES";
/// Extra compiles of the policy timed after the first, to show the steady cost too.
const EXTRA_COMPILES: usize = 4;

const KIB: usize = 1024;
const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// A tiny PRNG: xorshift64*. Good enough to vary text; chosen because it is a few lines and has
// no dependency, and the same seed gives the same corpus on every machine.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // xorshift must not start at zero; mix the seed so nearby seeds differ from the start.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi` (the small modulo bias does not matter for test text).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.range(0, 100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus. Text pieces are templates with {placeholders} filled from a per-message context,
// so messages differ in hosts, container ids, dates and numbers like real tickets do.

/// What a message is about; each topic has its own subjects, openings and details.
#[derive(Clone, Copy)]
enum Topic {
    ServerDown,
    ContainerWontStart,
    BackupFailed,
    PowerPanel,
    Slow,
    HowTo,
    FeatureRequest,
}

const TOPICS: [Topic; 7] = [
    Topic::ServerDown,
    Topic::ContainerWontStart,
    Topic::BackupFailed,
    Topic::PowerPanel,
    Topic::Slow,
    Topic::HowTo,
    Topic::FeatureRequest,
];

/// Text for one topic: email subjects, email openings, chat openings, detail sentences.
struct TopicText {
    subjects: &'static [&'static str],
    openings: &'static [&'static str],
    chat: &'static [&'static str],
    details: &'static [&'static str],
}

fn topic_text(topic: Topic) -> TopicText {
    match topic {
        Topic::ServerDown => TopicText {
            subjects: &[
                "URGENT: {host} is down",
                "Production node {host} not responding",
                "Server down since this morning",
                "{host} unreachable - all containers offline",
                "Node crashed, need help ASAP",
            ],
            openings: &[
                "Our production hardware node {host} went down about an hour ago and is not coming back. None of the containers on it are reachable and our customers are calling us.",
                "Since {time} this morning the server {host} ({ip}) does not answer to ping or SSH. The IPMI console only shows a black screen.",
                "The node {host} rebooted on its own tonight and now it hangs during boot right after the kernel is loaded.",
                "All {n} containers on {host} are offline. The host itself answers ping, but prl-disp is not running and vzctl hangs.",
            ],
            chat: &[
                "{host} down!!! all CTs offline",
                "hey, prod node {host} just died, nothing answers on {ip}",
                "server is down again, can someone look pls",
                "HN {host} not reachable since {time}, our whole hosting is offline",
            ],
            details: &[
                "We already tried a hard reset through IPMI, it did not help.",
                "The last thing in the log before the crash is a message from the RAID controller.",
                "This is our main production server, so this is very critical for us.",
                "The node runs {ver} with about {n} containers.",
                "Other nodes in the same cluster are working normally.",
                "Our monitoring lost the node at {time}, there was no maintenance planned.",
                "We have no way to move the containers to another node at the moment.",
            ],
        },
        Topic::ContainerWontStart => TopicText {
            subjects: &[
                "Container {ct} does not start",
                "CT {ct} fails to start after reboot",
                "Cannot start containers after update",
                "vzctl start fails for {ctname}",
            ],
            openings: &[
                "After the host was rebooted yesterday, container {ct} ({ctname}) refuses to start. vzctl start {ct} ends with an error about mounting the image.",
                "Since we installed the latest updates, several containers on {host} fail to start with \"Unable to start init, probably incorrect template\".",
                "We migrated CT {ct} from {host} to another node and now it will not start there.",
                "Container {ct} stopped by itself during the night and every start attempt fails since then.",
            ],
            chat: &[
                "CT {ct} won't start, vzctl says 'Failed to start the Container'",
                "can't start {ctname} anymore after the update, help",
                "ct {ct} stuck in 'mounted' state, start does nothing",
                "hi, container {ct} on {host} is not starting, error about ploop",
            ],
            details: &[
                "Other containers on the same node start without problems.",
                "We checked the disk space on /vz, there are {n} GB free.",
                "The container hosts the web shop of one of our biggest customers.",
                "We tried vzctl mount {ct} and it mounts, but start still fails.",
                "The problem started right after yum update on {date}.",
                "Restoring the container from backup gives the same error.",
            ],
        },
        Topic::BackupFailed => TopicText {
            subjects: &[
                "Backup failed for several containers",
                "Nightly backups failing since {date}",
                "vzabackup error: unable to create snapshot",
                "Restore of CT {ct} fails",
            ],
            openings: &[
                "Our nightly backup job on {host} has failed for the last three nights. The report says the snapshot could not be created for CT {ct}.",
                "We tried to restore container {ct} from yesterday's backup and vzarestore stops with 'Unknown format'.",
                "Backups to our remote backup node finish with errors for about half of the containers.",
                "The backup of {ctname} (CT {ct}) has been failing since {date}, the other containers are fine.",
            ],
            chat: &[
                "backups failed again tonight on {host}",
                "vzabackup keeps failing for {ct}, disk on backup server has space",
                "restore doesn't work, says unable to open backup archive",
                "is it normal that the backup of CT {ct} takes 9 hours and then fails?",
            ],
            details: &[
                "The backup storage is an NFS share, it is mounted and writable.",
                "There are {n} GB free on the backup server.",
                "We did not change anything in the backup schedule recently.",
                "Without working backups we are not allowed to keep the service running by our contract.",
                "Manual backups started from the command line fail the same way.",
                "The error appeared first after we enabled compression.",
            ],
        },
        Topic::PowerPanel => TopicText {
            subjects: &[
                "Power Panel shows error 500",
                "Cannot log in to Power Panel",
                "Power Panel: 'Operation failed' when restarting container",
                "VZPP not loading for customers",
            ],
            openings: &[
                "Our customers cannot log in to Power Panel since this morning. The login page loads, but after entering the credentials it shows 'Internal server error'.",
                "When a customer tries to restart his container from Power Panel, he gets 'Operation failed: connection to the agent lost'.",
                "The Power Panel on {host} is extremely slow and times out for most users.",
                "Power Panel shows an empty container list for all users, although the containers are running fine.",
            ],
            chat: &[
                "power panel gives error 500 for everyone",
                "PP login broken for customers on {host}",
                "pp says 'agent is not responding', restart of pvaagent didn't help",
                "customers can't open the console in power panel, just a grey window",
            ],
            details: &[
                "The containers themselves are running and reachable.",
                "We restarted pvaagent and vzagent, but the error comes back after a few minutes.",
                "About {n} customers use Power Panel on this node every day.",
                "The problem is the same in Firefox and Chrome.",
                "Only Power Panel is affected, the management console works.",
                "The SSL certificate of the panel was renewed on {date}.",
            ],
        },
        Topic::Slow => TopicText {
            subjects: &[
                "Very slow containers on {host}",
                "High load average on node",
                "Performance problems after migration",
                "Disk I/O extremely slow",
            ],
            openings: &[
                "Since Monday all containers on {host} are very slow. The load average on the node is around {n} while it used to be below 8.",
                "Websites hosted in CT {ct} take 20-30 seconds to load. Inside the container top shows nothing special, but iowait is high on the host.",
                "After migrating our containers to the new node, database queries are three times slower than before.",
                "Every night between 2 and 4 the node becomes so slow that SSH logins time out.",
            ],
            chat: &[
                "everything is super slow on {host} today",
                "ct {ct} slow as hell, load {n}+",
                "is there maintenance? our VPS is really slow",
                "disk io on {host} is terrible since the update",
            ],
            details: &[
                "It happens only some of the time, maybe every second day.",
                "A reboot helps for a while, but then the problem comes back.",
                "iostat shows the ploop devices at 100% utilisation.",
                "The hardware passed all vendor diagnostics last week.",
                "There are {n} containers on the node, most of them small web servers.",
                "Our customers notice it and have started to complain.",
            ],
        },
        Topic::HowTo => TopicText {
            subjects: &[
                "How to migrate a container to another node?",
                "Question about resizing container disk",
                "How do I set up automatic backups?",
                "Question: limit CPU for one container",
            ],
            openings: &[
                "Could you tell me how to move container {ct} to a new hardware node with minimal downtime? We are on {ver}.",
                "What is the recommended way to increase the disk space of CT {ct} from 50 GB to 100 GB without a restart?",
                "We would like to schedule daily backups of all containers to a separate backup server. Is there a guide for this?",
                "How can I limit one container to two CPU cores so that it does not slow down the others?",
            ],
            chat: &[
                "how do I change the root password of a container?",
                "quick question: can I add a second IP to CT {ct} without restart?",
                "what's the command to see which CT uses most CPU?",
                "how do i enable ipv6 for a container?",
            ],
            details: &[
                "Nothing is broken, we just want to do it the right way.",
                "We read the admin guide but could not find this part.",
                "Ideally this would work from the command line so we can script it.",
                "We are running {ver} on {host}.",
                "There is no hurry, whenever you have time.",
            ],
        },
        Topic::FeatureRequest => TopicText {
            subjects: &[
                "Feature request: 2FA for Power Panel",
                "Suggestion: email notifications for failed backups",
                "Feature request - API for snapshots",
                "Would be nice: per-container bandwidth graphs",
            ],
            openings: &[
                "It would be great if Power Panel supported two-factor authentication for our customers. Many of them have asked for it.",
                "We would like to get an email notification when a backup job fails, instead of having to check the logs every morning.",
                "Please consider adding a REST API call to create and delete container snapshots.",
                "Could you add graphs of the network traffic per container to the panel?",
            ],
            chat: &[
                "any plans to support 2FA in power panel?",
                "feature request: let customers download their own backups",
                "would be nice to have IPv6 in the PP network settings",
                "can you add dark mode to the panel? customers keep asking",
            ],
            details: &[
                "Other providers we work with already offer this.",
                "We would be happy to test a beta version.",
                "This is not urgent, just an idea for a future release.",
                "About {n} of our customers asked for this in the last months.",
            ],
        },
    }
}

/// Sentences that fit any topic; they pad own text to the target size.
const GENERIC_DETAILS: &[&str] = &[
    "We are running {ver} on {host}.",
    "The problem started after the update we installed on {date}.",
    "We have not changed anything in the configuration recently.",
    "Our monitoring shows that it started at {time}.",
    "Please tell us if you need SSH access to the node, we can open it for your IP.",
    "I have attached the output of prlctl list -a and vzlist -a.",
    "The node is a Dell R740 with two Xeon Silver CPUs and 256 GB of RAM.",
    "Storage is a hardware RAID 10 on a PERC H730 controller.",
    "This is a production environment with around {n} paying customers.",
    "This happens on our test node only, production is not affected.",
    "We already opened a ticket about a similar problem last year, but that was solved.",
    "Could you please have a look as soon as possible?",
    "We\u{2019}re not sure whether this is related to the kernel update.",
    "Our team in the datacenter can do anything on site if needed \u{2014} just tell us.",
];

const GREETINGS: &[&str] = &[
    "Hello,",
    "Hi,",
    "Dear support,",
    "Hello support team,",
    "Hi there,",
    "Good morning,",
];
const CLOSINGS: &[&str] = &[
    "Thank you in advance.",
    "Any help is appreciated.",
    "Please let us know what else you need.",
    "Looking forward to your answer.",
    "Thanks for your help.",
];
const REGARDS: &[&str] = &[
    "Best regards,",
    "Kind regards,",
    "Regards,",
    "Thanks,",
    "Cheers,",
];
const PEOPLE: &[&str] = &[
    "John Miller",
    "Anna Kowalski",
    "José García",
    "Jürgen Schmidt",
    "Priya Raman",
    "Tom O'Brien",
    "Mei Chen",
];
const COMPANIES: &[&str] = &[
    "Acme Hosting Ltd",
    "NorthCloud GmbH",
    "BlueRack Networks",
    "Hostfabrik AG",
    "CloudNest Inc.",
];
const VERSIONS: &[&str] = &[
    "Virtuozzo 7.5 Update 4",
    "Virtuozzo Hybrid Server 7.5",
    "Virtuozzo 7.0.14",
    "OpenVZ 7.0.18",
    "Virtuozzo Hybrid Server 9",
];
const HOSTS: &[&str] = &["hn", "node", "vz", "pcs", "hw"];
const CT_NAMES: &[&str] = &[
    "web01", "mail", "db-prod", "shop", "gitlab", "dns2", "build", "crm",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The facts one message is about; templates are filled from it.
struct Ctx {
    host: String,
    ct: usize,
    ctname: &'static str,
    ip: String,
    ver: &'static str,
    person: &'static str,
    company: &'static str,
    month: usize,
    day: usize,
    hour: usize,
    minute: usize,
    n: usize,
}

impl Ctx {
    fn new(rng: &mut Rng) -> Ctx {
        Ctx {
            host: format!("{}{}", rng.pick(HOSTS), rng.range(1, 40)),
            ct: rng.range(100, 1000),
            ctname: rng.pick(CT_NAMES),
            ip: format!(
                "10.{}.{}.{}",
                rng.range(0, 255),
                rng.range(0, 255),
                rng.range(1, 255)
            ),
            ver: rng.pick(VERSIONS),
            person: rng.pick(PEOPLE),
            company: rng.pick(COMPANIES),
            month: rng.range(0, 12),
            day: rng.range(1, 29),
            hour: rng.range(0, 24),
            minute: rng.range(0, 60),
            n: rng.range(5, 200),
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{host}", &self.host)
            .replace("{ctname}", self.ctname)
            .replace("{ct}", &self.ct.to_string())
            .replace("{ip}", &self.ip)
            .replace("{ver}", self.ver)
            .replace("{n}", &self.n.to_string())
            .replace("{date}", &format!("{} {}", MONTHS[self.month], self.day))
            .replace("{time}", &format!("{:02}:{:02}", self.hour, self.minute))
    }
}

/// A signature block; some carry a phone number the engine extracts.
fn signature(rng: &mut Rng, ctx: &Ctx) -> String {
    let mut s = String::new();
    match rng.range(0, 4) {
        0 => s.push_str("Sent from my iPhone\n"),
        1 => s.push_str(&format!("{}\n{}\n", rng.pick(REGARDS), ctx.person)),
        _ => {
            s.push_str(&format!(
                "{}\n{}\n\n--\n{}\nSystem Administrator | {}\n",
                rng.pick(REGARDS),
                ctx.person.split(' ').next().unwrap_or(ctx.person),
                ctx.person,
                ctx.company
            ));
            let phone = match rng.range(0, 3) {
                0 => format!("Phone: +1 415 555 01{:02}", rng.range(0, 100)),
                1 => format!("Tel.: +49 30 9018 {:04}", rng.range(0, 10_000)),
                _ => format!("Mobile: +44 7700 900{:03}", rng.range(0, 1000)),
            };
            s.push_str(&phone);
            s.push_str("\nwww.example.com\n");
        }
    }
    s
}

/// Earlier answers from support, quoted in the customer's reply.
const SUPPORT_REPLIES: &[&str] = &[
    "Hello,

Thank you for contacting Virtuozzo technical support.
To investigate the issue, could you please collect the following information:

# prlctl list -a
# vzlist -a
# journalctl -b -1 | tail -n 200
# tail -n 100 /var/log/vzctl.log

If the problem affects your production environment, please also tell us whether a
workaround is available and how many containers are affected.

Best regards,
Virtuozzo Technical Support",
    "Hi,

thank you for the logs. The messages about ploop show that the image of CT {ct} was not
unmounted cleanly. Please run the following and send us the output:

# ploop check -F /vz/private/{ct}/root.hdd/root.hds

Please do not start the container again before we have seen the result.

Kind regards,
Support Team",
    "Dear customer,

we have escalated your case to the second line. An engineer will contact you within
the next business day. If the situation gets worse in the meantime, please call our
hotline and mention the ticket number in the subject of this email.

Regards,
Virtuozzo Support",
];

/// An earlier message of the thread, quoted `depth` levels deep: a reply from support, or the
/// customer's own earlier words. The "On ... wrote:" header stands one level above its body, as
/// mail clients write it.
fn quoted_message(rng: &mut Rng, ctx: &Ctx, text: &TopicText, depth: usize) -> String {
    let outer = "> ".repeat(depth - 1);
    let from_support = rng.chance(50);
    let who = if from_support {
        "Virtuozzo Support <support@virtuozzo.example>".to_string()
    } else {
        format!("{} <admin@example.com>", ctx.person)
    };
    let header = if rng.chance(75) {
        format!(
            "On {}, {} {} {} at {:02}:{:02}, {who} wrote:",
            rng.pick(WEEKDAYS),
            // Older messages of the thread are from earlier days.
            ctx.day.saturating_sub(depth).max(1),
            MONTHS[ctx.month],
            2025,
            rng.range(7, 20),
            rng.range(0, 60)
        )
    } else {
        "-----Original Message-----".to_string()
    };
    let body: Vec<String> = if from_support {
        rng.pick(SUPPORT_REPLIES)
            .lines()
            .map(|l| ctx.fill(l))
            .collect()
    } else {
        vec![
            rng.pick(GREETINGS).to_string(),
            String::new(),
            ctx.fill(rng.pick(text.openings)),
            ctx.fill(rng.pick(text.details)),
            ctx.fill(rng.pick(GENERIC_DETAILS)),
            String::new(),
            rng.pick(REGARDS).to_string(),
            ctx.person.to_string(),
        ]
    };
    let inner = "> ".repeat(depth);
    let mut s = format!("{outer}{header}\n");
    for line in body {
        if line.is_empty() {
            s.push_str(inner.trim_end());
        } else {
            s.push_str(&inner);
            s.push_str(&line);
        }
        s.push('\n');
    }
    s
}

/// One line of a pasted log: syslog, kernel, vzctl, prl-disp or backup output.
fn log_line(rng: &mut Rng, ctx: &Ctx, clock: &mut usize) -> String {
    // The clock moves forward a little per line, as real logs do.
    *clock += rng.range(0, 4);
    let (h, m, s) = ((*clock / 3600) % 24, (*clock / 60) % 60, *clock % 60);
    let mon = MONTHS[ctx.month];
    let day = ctx.day;
    let host = &ctx.host;
    let ct = ctx.ct;
    let pid = rng.range(300, 60_000);
    let kernel_secs = *clock as f64 + rng.range(0, 1_000_000) as f64 / 1e6;
    match rng.range(0, 10) {
        0 | 1 => {
            let msg = rng.pick(&[
                "Started Session 4211 of user root.",
                "Starting Virtuozzo Container Agent...",
                "prl-disp.service: main process exited, code=killed, status=9/KILL",
                "Unit vz.service entered failed state.",
                "Accepted publickey for root from 10.0.0.5 port 52144 ssh2",
                "Received disconnect from 10.0.0.5 port 52144:11: disconnected by user",
                "(root) CMD (/usr/sbin/vzabackup -F localhost --all > /dev/null 2>&1)",
            ]);
            let proc_name = rng.pick(&["systemd", "sshd", "CROND", "vz", "pvaagent"]);
            format!("{mon} {day:2} {h:02}:{m:02}:{s:02} {host} {proc_name}[{pid}]: {msg}")
        }
        2..=4 => {
            let msg = match rng.range(0, 9) {
                0 => format!("CT: {ct}: started"),
                1 => format!("CT: {ct}: stopped"),
                2 => format!("EXT4-fs error (device ploop{pid}p1): ext4_lookup:1606: inode #2: comm init: deleted inode referenced: 1572873"),
                3 => format!("Out of memory in UB {ct}: OOM killed process {pid} (mysqld) score 0 vm:4134812kB, rss:2897316kB, swap:0kB"),
                4 => "INFO: task jbd2/ploop27313p:1203 blocked for more than 120 seconds.".to_string(),
                5 => "sd 0:2:0:0: [sda] tag#12 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_SENSE".to_string(),
                6 => format!("blk_update_request: I/O error, dev sda, sector {}", pid * 977),
                7 => "nf_conntrack: table full, dropping packet".to_string(),
                _ => format!("ploop{pid}: unknown partition table"),
            };
            format!("{mon} {day:2} {h:02}:{m:02}:{s:02} {host} kernel: [{kernel_secs:12.6}] {msg}")
        }
        5 | 6 => {
            let msg = rng.pick(&[
                "Starting Container ...",
                "Mounting image /vz/private/{ct}/root.hdd",
                "Container is mounted",
                "Setting CPU units: 1000",
                "Unable to start init, probably incorrect template",
                "Failed to start the Container",
                "Error in ploop_mount_image (ploop.c:2051): Can't mount image: Invalid argument",
                "Container start failed (try to check kernel messages, e.g. \"dmesg | tail\")",
                "Container was stopped",
            ]);
            let msg = msg.replace("{ct}", &ct.to_string());
            format!(
                "2024-{:02}-{day:02}T{h:02}:{m:02}:{s:02}+0100 vzctl : CT {ct} : {msg}",
                ctx.month + 1
            )
        }
        7 | 8 => {
            let msg = rng.pick(&[
                "Error: Connection to the dispatcher lost",
                "Processing command 'DspCmdVmStart' 1036 for CT uuid='{...}'",
                "Failed to get VE state: PRL_ERR_VZCTL_OPERATION_FAILED",
                "Task 'start' finished with error code 0x80000249",
                "Watchdog: dispatcher is not responding for 60 sec",
                "Registering VE in cluster storage",
            ]);
            let level = rng.pick(&["I", "W", "F", "D"]);
            format!(
                "{:02}-{day:02} {h:02}:{m:02}:{s:02}.{:03} {level} /disp:{pid}:{}/ {msg}",
                ctx.month + 1,
                rng.range(0, 1000),
                pid + 7
            )
        }
        _ => {
            let msg = rng.pick(&[
                "Backup of CT {ct} started",
                "Creating snapshot of CT {ct}",
                "Can't create snapshot: Failed to create the snapshot: PLOOP_ERR_FSCK",
                "Backup of CT {ct} failed",
                "Compressing data 34% done",
                "Transfer to backup node finished",
            ]);
            let msg = msg.replace("{ct}", &ct.to_string());
            format!(
                "2024-{:02}-{day:02} {h:02}:{m:02}:{s:02} vzabackup[{pid}]: {msg}",
                ctx.month + 1
            )
        }
    }
}

/// The three size buckets that results are reported for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Small,
    Medium,
    Large,
}

const BUCKETS: [Bucket; 3] = [Bucket::Small, Bucket::Medium, Bucket::Large];

impl Bucket {
    fn of(len: usize) -> Bucket {
        if len < KIB {
            Bucket::Small
        } else if len <= 5 * KIB {
            Bucket::Medium
        } else {
            Bucket::Large
        }
    }

    fn name(self) -> &'static str {
        match self {
            Bucket::Small => "<1 KiB",
            Bucket::Medium => "1-5 KiB",
            Bucket::Large => ">5 KiB",
        }
    }
}

/// One message: subject + "\n\n" + body for email, the bare body for chat.
fn message(rng: &mut Rng) -> String {
    // Target sizes: about 40% small, 30% medium, 30% large (200 B - 20 KiB overall).
    let target = match rng.range(0, 10) {
        0..=3 => rng.range(200, KIB),
        4..=6 => rng.range(KIB, 5 * KIB),
        _ => rng.range(5 * KIB, 20 * KIB - 400),
    };
    let topic = rng.pick(&TOPICS);
    let text = topic_text(topic);
    let ctx = Ctx::new(rng);
    let chat = rng.chance(if target < KIB { 55 } else { 25 });

    // Email ends with a closing line and often a signature; chat has neither.
    let tail = if chat {
        String::new()
    } else {
        let mut t = format!("\n{}\n\n", rng.pick(CLOSINGS));
        if rng.chance(70) {
            t.push_str(&signature(rng, &ctx));
        }
        t
    };

    // The sender's own words first.
    let mut own = String::new();
    if chat {
        own.push_str(&ctx.fill(rng.pick(text.chat)));
        own.push('\n');
    } else {
        own.push_str(&ctx.fill(rng.pick(text.subjects)));
        own.push_str("\n\n");
        own.push_str(rng.pick(GREETINGS));
        own.push_str("\n\n");
        own.push_str(&ctx.fill(rng.pick(text.openings)));
        own.push('\n');
    }
    // Own words fill a small message; a larger one gets 0.25-1 KiB of them and the rest is a
    // pasted log or quoted thread. Details are drawn without repeats, as people write them.
    let own_budget = if target < KIB {
        target - tail.len().min(target / 2)
    } else {
        rng.range(250, KIB)
    };
    let mut details: Vec<&str> = text
        .details
        .iter()
        .chain(GENERIC_DETAILS)
        .copied()
        .collect();
    while own.len() < own_budget && !details.is_empty() {
        let detail = details.swap_remove(rng.range(0, details.len()));
        own.push_str(&ctx.fill(detail));
        // Chat writers send one line per thought; email writers run sentences together.
        own.push(if chat || rng.chance(30) { '\n' } else { ' ' });
    }
    let mut msg = own.trim_end().to_string();
    msg.push('\n');

    // A pasted log: every larger chat message, and most large and half the medium emails.
    let log = target >= KIB && (chat || rng.chance(if target > 5 * KIB { 80 } else { 50 }));
    if log {
        msg.push_str(rng.pick(&[
            "\nHere is the log from the node:\n\n",
            "\nRelevant part of /var/log/messages:\n\n",
            "\nOutput of journalctl:\n",
            "log:\n",
        ]));
        let mut clock = ctx.hour * 3600 + ctx.minute * 60;
        while msg.len() + tail.len() < target {
            msg.push_str(&log_line(rng, &ctx, &mut clock));
            msg.push('\n');
        }
    }
    msg.push_str(&tail);

    // An email still short of its size quotes the earlier thread, deeper the further back.
    let mut depth = 1;
    while !chat && target >= KIB && msg.len() + 200 < target {
        msg.push('\n');
        msg.push_str(&quoted_message(rng, &ctx, &text, depth));
        depth = (depth + 1).min(5);
    }
    msg
}

fn build_corpus(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| message(&mut rng)).collect()
}

// ---------------------------------------------------------------------------------------------
// Measurement.

fn passes_from_env() -> Result<usize, String> {
    match std::env::var(PASSES_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_PASSES),
        Err(e) => Err(format!("{PASSES_VAR}: {e}")),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_PASSES),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "{PASSES_VAR} must be a whole number >= 1, got {v:?}"
            )),
        },
    }
}

/// Totals for one row of the report.
#[derive(Default, Clone, Copy)]
struct Tally {
    messages: usize,
    bytes: usize,
    time: Duration,
}

impl Tally {
    fn add(&mut self, bytes: usize, time: Duration) {
        self.messages += 1;
        self.bytes += bytes;
        self.time += time;
    }
}

fn header() {
    println!(
        "  {:<22} {:>9} {:>9} {:>11} {:>9} {:>10}",
        "", "messages", "MiB", "messages/s", "MiB/s", "us/message"
    );
}

/// One row; `messages` and `MiB` are per pass, rates over all timed passes.
fn row(label: &str, t: Tally, passes: usize) {
    let secs = t.time.as_secs_f64().max(1e-12);
    println!(
        "  {:<22} {:>9} {:>9.2} {:>11.0} {:>9.2} {:>10.1}",
        label,
        t.messages / passes,
        t.bytes as f64 / passes as f64 / MIB,
        t.messages as f64 / secs,
        t.bytes as f64 / MIB / secs,
        secs * 1e6 / t.messages.max(1) as f64,
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> ExitCode {
    // cargo bench passes --bench; cargo test (--all-targets, --benches) does not: smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let passes = match passes_from_env() {
        Ok(_) if smoke => 1,
        Ok(n) => n,
        Err(e) => {
            eprintln!("classify bench: {e}");
            return ExitCode::from(2);
        }
    };
    let count = if smoke {
        SMOKE_MESSAGES
    } else {
        CORPUS_MESSAGES
    };

    println!("firstline triage benchmark (one thread)");
    if smoke {
        println!("smoke run (no --bench argument): {count} messages, 1 pass; use cargo bench");
    }

    // Policy compile: the first one, and the best of a few more (warm allocator and caches).
    let start = Instant::now();
    let policy = Policy::embedded();
    let first = start.elapsed();
    let mut best = first;
    let extra_compiles = if smoke { 0 } else { EXTRA_COMPILES };
    for _ in 0..extra_compiles {
        let start = Instant::now();
        black_box(Policy::embedded());
        best = best.min(start.elapsed());
    }
    println!(
        "policy compile (embedded config/policy.toml): first {:.1} ms, best of {} {:.1} ms",
        first.as_secs_f64() * 1e3,
        extra_compiles + 1,
        best.as_secs_f64() * 1e3
    );

    let start = Instant::now();
    let corpus = build_corpus(SEED, count);
    let built = start.elapsed();
    let total_bytes: usize = corpus.iter().map(String::len).sum();
    let (min_len, max_len) = corpus.iter().fold((usize::MAX, 0), |(lo, hi), m| {
        (lo.min(m.len()), hi.max(m.len()))
    });
    println!(
        "corpus: {} messages, {:.2} MiB, {:.2}-{:.2} KiB each, seed {SEED:#x} (built in {:.0} ms)",
        corpus.len(),
        total_bytes as f64 / MIB,
        min_len as f64 / KIB as f64,
        max_len as f64 / KIB as f64,
        built.as_secs_f64() * 1e3
    );
    for bucket in BUCKETS {
        let (n, bytes) = corpus
            .iter()
            .filter(|m| Bucket::of(m.len()) == bucket)
            .fold((0, 0), |(n, b), m| (n + 1, b + m.len()));
        println!(
            "  {:<8} {:>5} messages, {:>6.2} MiB",
            bucket.name(),
            n,
            bytes as f64 / MIB
        );
    }

    // Warm-up: one untimed pass fills the regex engines' lazy caches and the allocator.
    let start = Instant::now();
    let mut severities = [0usize; 256];
    for m in &corpus {
        let (_, decision) = triage::triage(&policy, m);
        severities[decision.severity as usize] += 1;
    }
    println!(
        "warm-up: 1 pass of triage in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let mix: Vec<String> = severities
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(level, n)| format!("{level}: {n}"))
        .collect();
    println!("severity mix of the corpus: {}", mix.join(", "));

    // triage(): whole passes timed as a unit; each message also timed, for the buckets.
    let mut all = Tally::default();
    let mut per_bucket = [Tally::default(); 3];
    let mut pass_times = Vec::with_capacity(passes);
    for _ in 0..passes {
        let pass_start = Instant::now();
        for m in &corpus {
            let start = Instant::now();
            black_box(triage::triage(&policy, black_box(m)));
            let took = start.elapsed();
            let b = BUCKETS
                .iter()
                .position(|&b| b == Bucket::of(m.len()))
                .unwrap_or(0);
            per_bucket[b].add(m.len(), took);
        }
        let took = pass_start.elapsed();
        pass_times.push(took);
        all.messages += corpus.len();
        all.bytes += total_bytes;
        all.time += took;
    }
    let (min, max) = (
        pass_times.iter().min().copied().unwrap_or_default(),
        pass_times.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "timed passes: {passes}; triage pass time median {:.3} s (min {:.3}, max {:.3})",
        median(pass_times).as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64()
    );
    header();
    row("triage, all", all, passes);
    for (bucket, t) in BUCKETS.iter().zip(per_bucket) {
        row(&format!("triage, {}", bucket.name()), t, passes);
    }

    // extract() alone, over the same corpus and number of passes.
    let mut extract = Tally::default();
    for _ in 0..passes {
        let start = Instant::now();
        for m in &corpus {
            black_box(triage::extract(&policy, black_box(m)));
        }
        extract.time += start.elapsed();
        extract.messages += corpus.len();
        extract.bytes += total_bytes;
    }
    row("extract only, all", extract, passes);

    // The first step of extract() alone: markup, case folding, quote/log/signature lines.
    let mut normalize = Tally::default();
    for _ in 0..passes {
        let start = Instant::now();
        for m in &corpus {
            black_box(triage::text::normalize(black_box(m), &policy.text));
        }
        normalize.time += start.elapsed();
        normalize.messages += corpus.len();
        normalize.bytes += total_bytes;
    }
    row("normalize only, all", normalize, passes);

    // classify() alone, on facts extracted once beforehand.
    let facts: Vec<Facts> = corpus.iter().map(|m| triage::extract(&policy, m)).collect();
    let mut classify = Tally::default();
    for _ in 0..passes {
        let start = Instant::now();
        for f in &facts {
            black_box(triage::classify(&policy, black_box(f)));
        }
        classify.time += start.elapsed();
        classify.messages += corpus.len();
        classify.bytes += total_bytes;
    }
    row("classify only, all", classify, passes);

    let both = (extract.time + classify.time).as_secs_f64().max(1e-12);
    println!(
        "share of extract + classify time: extract {:.2}%, classify {:.2}%",
        extract.time.as_secs_f64() * 100.0 / both,
        classify.time.as_secs_f64() * 100.0 / both
    );
    // What the language packs cost: the same corpus through the policy without them.
    let english = match Policy::from_toml_with(
        triage::policy::EMBEDDED_POLICY,
        triage::policy::EMBEDDED_POLICY_NAME,
        Packs::None,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("classify bench: the policy without packs does not compile: {e}");
            return ExitCode::from(1);
        }
    };
    for m in &corpus {
        black_box(triage::triage(&english, m));
    }
    let mut base = Tally::default();
    for _ in 0..passes {
        let start = Instant::now();
        for m in &corpus {
            black_box(triage::triage(&english, black_box(m)));
        }
        base.time += start.elapsed();
        base.messages += corpus.len();
        base.bytes += total_bytes;
    }
    println!(
        "language packs: {} ({} patterns with them, {} without)",
        policy
            .languages
            .iter()
            .map(|l| l.code.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        policy.patterns.len(),
        english.patterns.len()
    );
    header();
    row("triage, English only", base, passes);
    row("triage, all packs", all, passes);
    println!(
        "all packs run at {:.0}% of the English-only speed",
        base.time.as_secs_f64() * 100.0 / all.time.as_secs_f64().max(1e-12)
    );
    println!("units: KiB = 1024 bytes, MiB = 1048576 bytes; rates are means over the timed passes");
    ExitCode::SUCCESS
}
