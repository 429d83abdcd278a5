//! `firstline serve` against real servers on loopback: Dovecot (IMAP) in, aiosmtpd (SMTP)
//! out. Threaded replies and keywords, re-triage on the customer's answer, no answer to
//! machines, quarantine, backfill after a restart, `kill -9` mid-batch, retries.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::desk::{Serve, header, mail, message_id_of};
use super::repo_path;
use super::support::{Dovecot, SmtpSink};

/// A settings file pointing serve at the two servers.
fn settings(dir: &Path, imap: &Dovecot, smtp: &SmtpSink, extra: &str) -> String {
    let file = dir.join("firstline.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[store]
path = "var/firstline.db"

[email]
inbound = "imap"
outbound = "smtp"
address = "support@firstline.test"
message_id_domain = "firstline.test"
copy_to = "support@firstline.test"
confirm_seconds = 3

[email.imap]
host = "127.0.0.1"
port = {}
security = "plain"
user = "{}"
poll_seconds = 1
reconnect_seconds = 1

[email.smtp]
host = "127.0.0.1"
port = {}
security = "plain"
timeout_seconds = 5

[email.retry]
first_seconds = 1
max_seconds = 2
{extra}
"#,
            imap.port, imap.user, smtp.port
        ),
    )
    .unwrap();
    file.to_string_lossy().into_owned()
}

struct Desk {
    dir: tempfile::TempDir,
    imap: Dovecot,
    smtp: SmtpSink,
    config: String,
}

impl Desk {
    fn new(extra: &str) -> Desk {
        Desk::build(None, 0, extra)
    }

    /// Dovecot, and an SMTP server that delivers the copy of each reply (addressed to the
    /// support mailbox) into Dovecot's INBOX, as the support domain's MTA would.
    fn build(auth: Option<(&str, &str)>, fail_first: usize, extra: &str) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let imap = Dovecot::start();
        // Selecting INBOX makes Dovecot create its Maildir, with the owner it needs.
        imap.uids("INBOX");
        let inbox = imap.maildir();
        let smtp = SmtpSink::start_delivering(auth, fail_first, Some((SUPPORT, &inbox)));
        let config = settings(dir.path(), &imap, &smtp, extra);
        Desk {
            dir,
            imap,
            smtp,
            config,
        }
    }

    fn serve(&self) -> Serve {
        self.serve_env(&[])
    }

    fn serve_env(&self, env: &[(&str, &str)]) -> Serve {
        let mut all = vec![("FIRSTLINE_IMAP_PASSWORD", self.imap.password.as_str())];
        all.extend_from_slice(env);
        Serve::start_with(self.dir.path(), &["--config", &self.config], &all)
    }

    /// Waits until the message at `uid` carries every keyword.
    fn wait_keywords(&self, uid: u32, keywords: &[&str]) -> Vec<String> {
        let mut flags = Vec::new();
        self.wait_until(&format!("keywords {keywords:?} on UID {uid}"), || {
            flags = self.imap.flags("INBOX", uid);
            keywords.iter().all(|k| flags.iter().any(|f| f == k))
        });
        flags
    }

    /// Polls `done` for up to 20 s; on timeout fails with serve's log.
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + WAIT;
        while !done() {
            if std::time::Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
                panic!("timed out waiting for {what}; serve's log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tickets_with(dir: &Path, config: &str) -> Vec<serde_json::Value> {
    let out = super::bin()
        .current_dir(dir)
        .args(["tickets", "--json", "--config", config])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", super::stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Replies received by the SMTP server, keyed by the Message-ID they answer.
fn replies_by_original(smtp: &SmtpSink) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for m in smtp.messages() {
        let text = m.text();
        let orig = header(&text, "In-Reply-To").unwrap_or("none").to_string();
        *count.entry(orig).or_insert(0) += 1;
    }
    count
}

const WAIT: Duration = Duration::from_secs(20);

/// The support mailbox: replies come from it, and their copies go back into it.
const SUPPORT: &str = "support@firstline.test";

#[test]
fn an_appended_email_gets_a_threaded_reply_keywords_and_re_triage_on_the_answer() {
    let desk = Desk::new("");
    let serve = desk.serve();
    // Already read by another client: \Seen must not hide it.
    let raw = std::fs::read(repo_path("fixtures/email/server-down.eml")).unwrap();
    let uid = desk.imap.append_with_flags("INBOX", &["\\Seen"], &raw);
    let got = desk.smtp.wait_for(1, WAIT);
    let reply = got[0].text();
    // To the customer, and a copy to the support mailbox (it confirms the send).
    assert_eq!(got[0].rcpt_tos, ["marta@nordhost.example", SUPPORT]);
    assert_eq!(header(&reply, "To"), Some("marta@nordhost.example"));
    assert!(!reply.contains(&format!("Bcc: {SUPPORT}")), "{reply}");
    assert_eq!(got[0].mail_from, "support@firstline.test");
    assert_eq!(
        header(&reply, "In-Reply-To"),
        Some("<20261126071244.4711@nordhost.example>")
    );
    assert_eq!(header(&reply, "Auto-Submitted"), Some("auto-replied"));
    assert!(reply.contains("[FL-1]"), "{reply}");
    assert!(reply.contains("severity 1 (Urgent)"), "{reply}");
    let flags = desk.wait_keywords(uid, &["$Severity1", "$NeedsPhone"]);
    assert!(flags.iter().any(|f| f == "$EnvProduction"), "{flags:?}");

    // A second message, lab, then the customer's answer saying it is production.
    let first = mail(
        "lab1@customer.test",
        "Ann <ann@customer.test>",
        "VE 204 fails to start",
        "Hello, VE 204 fails to start after the update. Logs attached later.",
        "",
    );
    desk.imap.append("INBOX", first.as_bytes());
    let got = desk.smtp.wait_for(2, WAIT);
    let ack = got[1].text();
    assert!(ack.contains("[FL-2]"), "{ack}");
    let before = tickets_with(desk.dir.path(), &desk.config)
        .into_iter()
        .find(|t| t["id"] == 2)
        .unwrap()["severity"]
        .as_u64()
        .unwrap();
    let answer = mail(
        "lab2@customer.test",
        "Ann <ann@customer.test>",
        "Re: VE 204 fails to start [FL-2]",
        "It is our production node and all VEs on it are down now, no workaround.",
        &format!("In-Reply-To: <{}>\r\n", message_id_of(&ack)),
    );
    let answer_uid = desk.imap.append("INBOX", answer.as_bytes());
    let got = desk.smtp.wait_for(3, WAIT);
    let change = got[2].text();
    assert!(change.contains("re-assessed"), "{change}");
    assert!(change.contains(&format!("it was {before}")), "{change}");
    desk.wait_keywords(answer_uid, &["$Severity1"]);
    let t = tickets_with(desk.dir.path(), &desk.config);
    assert_eq!(t.len(), 2, "the answer joined its ticket");

    // An auto-reply is labelled but gets no answer.
    let auto = std::fs::read(repo_path("fixtures/email/auto-reply.eml")).unwrap();
    let auto_uid = desk.imap.append("INBOX", &auto);
    desk.wait_keywords(auto_uid, &["$Severity3"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(desk.smtp.messages().len(), 3, "no answer to an auto-reply");
    let (status, log) = serve.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_malformed_message_is_quarantined_and_the_next_one_flows() {
    let desk = Desk::new("");
    let serve = desk.serve();
    let bad = desk.imap.append("INBOX", b"this is not an email\r\n");
    let good = mail(
        "ok@c.test",
        "ok@c.test",
        "Backup failed",
        "The nightly backup of CT 101 failed.",
        "",
    );
    let good_uid = desk.imap.append("INBOX", good.as_bytes());
    desk.smtp.wait_for(1, WAIT);
    desk.wait_keywords(bad, &["$FirstlineQuarantine"]);
    desk.wait_keywords(good_uid, &["$Severity3"]);
    drop(serve);
    let out = super::bin()
        .current_dir(desk.dir.path())
        .args(["tickets", "--json", "--config", &desk.config])
        .output()
        .unwrap();
    let t: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t.len(), 1);
}

#[test]
fn a_restart_backfills_and_a_second_run_sends_nothing() {
    let desk = Desk::new("");
    let serve = desk.serve();
    desk.imap.append(
        "INBOX",
        mail(
            "r0@c.test",
            "a@c.test",
            "Panel down",
            "Power Panel is down for all users.",
            "",
        )
        .as_bytes(),
    );
    desk.smtp.wait_for(1, WAIT);
    let (status, _) = serve.stop();
    assert!(status.success());
    // Mail arrives while firstline is stopped.
    for i in 1..=3 {
        let m = mail(
            &format!("r{i}@c.test"),
            &format!("user{i}@c.test"),
            "Node down",
            "Our production node is down.",
            "",
        );
        desk.imap.append("INBOX", m.as_bytes());
    }
    let serve = desk.serve();
    desk.smtp.wait_for(4, WAIT);
    serve.stop();
    // Same mailbox, same store: nothing new to do.
    let serve = desk.serve();
    std::thread::sleep(Duration::from_secs(3));
    serve.stop();
    assert_eq!(desk.smtp.messages().len(), 4, "the second run sent nothing");
    assert!(replies_by_original(&desk.smtp).values().all(|&n| n == 1));
}

#[test]
fn kill_9_mid_batch_then_restart_triages_each_message_once_and_replies_once() {
    let desk = Desk::new("");
    let n = 40;
    for i in 0..n {
        let m = mail(
            &format!("k{i}@c.test"),
            &format!("user{i}@c.test"),
            &format!("Problem {i}"),
            "The backup of our production container failed tonight.",
            "",
        );
        desk.imap.append("INBOX", m.as_bytes());
    }
    let serve = desk.serve();
    desk.wait_until("a few replies before the crash", || {
        desk.smtp.messages().len() >= 5
    });
    serve.kill();
    let at_crash = desk.smtp.messages().len();
    let serve = desk.serve();
    let got = desk.smtp.wait_for(n, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    serve.stop();
    assert!(
        at_crash < n,
        "the crash came mid-batch ({at_crash} of {n} sent)"
    );
    let all = desk.smtp.messages();
    assert_eq!(
        all.len(),
        n,
        "every reply exactly once ({} received)",
        got.len()
    );
    let per = replies_by_original(&desk.smtp);
    assert_eq!(per.len(), n, "each message answered");
    assert!(per.values().all(|&c| c == 1), "{per:?}");
    let t = tickets_with(desk.dir.path(), &desk.config);
    assert_eq!(
        t.len(),
        n,
        "each message triaged once, the copies of the replies in their tickets"
    );
    let log = std::fs::read_to_string(desk.dir.path().join("serve.log")).unwrap();
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("cut short") || l.contains("copy"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn severity_folders_move_the_original_after_labelling() {
    let desk = Desk::new("\n[email.imap.severity_folders]\n1 = \"Triage/Severity 1\"\n");
    let serve = desk.serve();
    let raw = std::fs::read(repo_path("fixtures/email/server-down.eml")).unwrap();
    let original = desk.imap.append("INBOX", &raw);
    desk.smtp.wait_for(1, WAIT);
    desk.wait_until("the move to Triage/Severity 1", || {
        desk.imap
            .mailboxes()
            .iter()
            .any(|m| m.contains("Severity 1"))
            && !desk.imap.uids("Triage/Severity 1").is_empty()
    });
    let uid = desk.imap.uids("Triage/Severity 1")[0];
    let flags = desk.imap.flags("Triage/Severity 1", uid);
    assert!(flags.iter().any(|f| f == "$Severity1"), "{flags:?}");
    assert!(
        !desk.imap.uids("INBOX").contains(&original),
        "moved out of the inbox"
    );
    serve.stop();
}

#[test]
fn a_transient_smtp_failure_is_retried_and_the_reply_sent_once_with_auth() {
    let desk = Desk::build(Some(("fl", "smtp-secret")), 1, "");
    std::fs::write(
        &desk.config,
        std::fs::read_to_string(&desk.config)
            .unwrap()
            .replace("timeout_seconds = 5", "timeout_seconds = 5\nuser = \"fl\""),
    )
    .unwrap();
    let serve = desk.serve_env(&[("FIRSTLINE_SMTP_PASSWORD", "smtp-secret")]);
    let raw = std::fs::read(repo_path("fixtures/email/server-down.eml")).unwrap();
    desk.imap.append("INBOX", &raw);
    desk.smtp.wait_for(1, WAIT);
    std::thread::sleep(Duration::from_secs(2));
    let (_, log) = serve.stop();
    assert_eq!(desk.smtp.messages().len(), 1, "sent once after the retry");
    assert!(log.contains("will retry"), "{log}");
}

#[test]
fn polling_without_idle_and_reconnecting_after_the_server_restarts() {
    let mut desk = Desk::new("");
    let serve = desk.serve_env(&[("FIRSTLINE__EMAIL__IMAP__IDLE", "false")]);
    let m = |i: u32| {
        mail(
            &format!("p{i}@c.test"),
            &format!("user{i}@c.test"),
            "Backup failed",
            "The nightly backup of CT 101 failed.",
            "",
        )
    };
    desk.imap.append("INBOX", m(1).as_bytes());
    desk.smtp.wait_for(1, WAIT);
    // The server goes away and comes back: firstline reconnects and reads what came since.
    desk.imap.restart();
    desk.imap.append("INBOX", m(2).as_bytes());
    desk.smtp.wait_for(2, WAIT);
    let (status, log) = serve.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("idle=false"), "{log}");
    assert!(log.contains("reconnecting"), "{log}");
}

#[test]
fn a_customer_autoresponder_cannot_push_firstline_past_the_thread_cap() {
    let desk = Desk::new("");
    let serve = desk.serve();
    // A badly made autoresponder: no Auto-Submitted, no Precedence, answers every mail, and
    // its text flips the facts so that each answer changes the severity.
    let bodies = [
        "Our production server is down.",
        "Sorry, false alarm: the production server is not down.",
    ];
    desk.imap.append(
        "INBOX",
        mail(
            "bot0@robot.test",
            "robot@robot.test",
            "Status",
            bodies[0],
            "",
        )
        .as_bytes(),
    );
    // serve may take a few seconds to start (the policy compiles first).
    desk.smtp.wait_for(1, WAIT);
    let mut answered = 0;
    for round in 1..10 {
        let replies: Vec<_> = desk
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == "robot@robot.test"))
            .collect();
        if replies.len() == answered {
            // Give firstline time to answer the robot's last mail, if it is going to.
            std::thread::sleep(Duration::from_secs(2));
            if desk.smtp.messages().len() == answered {
                break;
            }
            continue;
        }
        answered = replies.len();
        let last = replies.last().unwrap().text();
        let answer = mail(
            &format!("bot{round}@robot.test"),
            "robot@robot.test",
            "Re: Status",
            bodies[answered % 2],
            &format!("In-Reply-To: <{}>\r\n", message_id_of(&last)),
        );
        desk.imap.append("INBOX", answer.as_bytes());
    }
    serve.stop();
    let to_robot = desk
        .smtp
        .messages()
        .iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r == "robot@robot.test"))
        .count();
    assert_eq!(to_robot, 3, "replies_per_thread_per_hour = 3");
}
