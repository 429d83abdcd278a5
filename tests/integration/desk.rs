//! The bot on its embedded defaults, no server needed: `serve` over the Maildir spool with
//! replies written as .eml files, `ingest`, `tickets`, threading and re-triage, loop
//! protection, reply caps, quarantine, settings errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, repo_path, stderr, stdout};

/// `firstline ARGS` run in `dir` (where the embedded defaults put ./var).
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("FIRSTLINE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("cannot start firstline")
}

fn ingest(dir: &Path, raw: &str, env: &[(&str, &str)]) -> String {
    let file = dir.join(format!("in-{}.eml", unique()));
    std::fs::write(&file, raw).unwrap();
    let out = run_in(dir, &["ingest", file.to_str().unwrap()], env);
    assert!(out.status.success(), "ingest failed: {}", stderr(&out));
    stdout(&out)
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn tickets(dir: &Path) -> Vec<Value> {
    let out = run_in(dir, &["tickets", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["tickets"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| {
            serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("tickets --json is an array")
        })
}

/// The replies written by the file transport, oldest first.
fn outbox(dir: &Path) -> Vec<String> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> =
        match std::fs::read_dir(dir.join("var/outbox")) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
                .collect(),
            Err(_) => Vec::new(),
        };
    files.sort();
    files
        .into_iter()
        .map(|(_, p)| std::fs::read_to_string(p).unwrap())
        .collect()
}

pub fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&prefix))
}

/// A plain customer email.
pub fn mail(id: &str, from: &str, subject: &str, body: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@firstline.invalid\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}\r\n{body}\r\n"
    )
}

pub fn message_id_of(reply: &str) -> String {
    header(reply, "Message-ID")
        .expect("reply has a Message-ID")
        .trim_matches(['<', '>'])
        .to_string()
}

/// A running `firstline serve`, killed when dropped.
pub struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path) -> Serve {
        Serve::start_with(
            dir,
            &[],
            &[("FIRSTLINE__EMAIL__MAILDIR__POLL_MILLISECONDS", "50")],
        )
    }

    /// `firstline serve ARGS` in `dir` with extra environment; its log goes to
    /// `dir/serve.log` (appended, so restarts keep one log).
    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .unwrap();
        let child = bin()
            .current_dir(dir)
            .arg("serve")
            .args(args)
            .env_remove("FIRSTLINE_CONFIG")
            // Tests run side by side: each HTTP server on a port of its own (a test that
            // needs to know the port sets the address itself).
            .env("FIRSTLINE__HTTP__ADDRESS", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start firstline serve");
        Serve {
            child,
            log: dir.join("serve.log"),
        }
    }

    /// What serve logged so far (every run in this folder).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_on_embedded_defaults_answers_a_spooled_fixture_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path());
    wait_until("the spool to be created", || {
        dir.path().join("var/inbox/new").is_dir()
    });
    std::fs::copy(
        repo_path("fixtures/email/server-down.eml"),
        dir.path().join("var/inbox/new/1.eml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("var/inbox/new/2.eml"),
        "not an email at all",
    )
    .unwrap();
    wait_until("a reply in var/outbox", || !outbox(dir.path()).is_empty());
    wait_until("the spool to be emptied", || {
        std::fs::read_dir(dir.path().join("var/inbox/new"))
            .unwrap()
            .count()
            == 0
    });
    let (status, log) = serve.stop();
    assert!(status.success(), "serve exited with {status}: {log}");
    assert!(log.contains("quarantined"), "{log}");

    let replies = outbox(dir.path());
    assert_eq!(replies.len(), 1, "one reply for one customer message");
    let reply = &replies[0];
    assert!(reply.contains("severity 1 (Urgent)"), "{reply}");
    assert_eq!(header(reply, "To"), Some("marta@nordhost.example"));
    assert_eq!(
        header(reply, "In-Reply-To"),
        Some("<20261126071244.4711@nordhost.example>")
    );
    assert_eq!(header(reply, "Auto-Submitted"), Some("auto-replied"));
    assert!(message_id_of(reply).ends_with("@firstline.invalid"));
    let subject = reply
        .split("Subject: ")
        .nth(1)
        .unwrap()
        .split("\r\nMessage-ID")
        .next()
        .unwrap()
        .replace("\r\n", "");
    assert!(subject.starts_with("Re: URGENT"), "{subject}");
    assert!(subject.ends_with("[FL-1]"), "{subject}");

    let cur: Vec<String> = std::fs::read_dir(dir.path().join("var/inbox/cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cur.contains(&"1.eml:2,S".to_string()), "{cur:?}");
    assert!(cur.contains(&"2.eml:2,F".to_string()), "{cur:?}");
    let t = tickets(dir.path());
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["severity"], 1);
}

#[test]
fn ingest_twice_records_once_and_answers_once() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read_to_string(repo_path("fixtures/email/server-down.eml")).unwrap();
    let first = ingest(dir.path(), &raw, &[]);
    assert!(first.starts_with("FL-1: severity 1"), "{first}");
    let second = ingest(dir.path(), &raw, &[]);
    assert!(second.contains("already recorded"), "{second}");
    assert_eq!(outbox(dir.path()).len(), 1);
    assert_eq!(tickets(dir.path()).len(), 1);
}

#[test]
fn an_answer_in_the_thread_re_triages_and_a_change_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let first = mail(
        "q1@customer.test",
        "Ola <ola@customer.test>",
        "Container 101 does not start",
        "Hi, container 101 does not start since this morning. The other containers on the node are fine.",
        "",
    );
    let out = ingest(dir.path(), &first, &[]);
    let before: u8 = out[out.find("severity ").unwrap() + 9..][..1]
        .parse()
        .unwrap();
    assert!(before > 1, "{out}");
    let ack = outbox(dir.path())
        .pop()
        .expect("an answer to the first message");
    // The customer answers in the thread: by the token and by In-Reply-To.
    let answer = mail(
        "q2@customer.test",
        "Ola <ola@customer.test>",
        "Re: Container 101 does not start [FL-1]",
        "Update: now the whole node is down, all containers offline. This is our production node.",
        &format!("In-Reply-To: <{}>\r\n", message_id_of(&ack)),
    );
    let out = ingest(dir.path(), &answer, &[]);
    assert!(out.starts_with("FL-1: severity 1"), "{out}");
    let replies = outbox(dir.path());
    assert_eq!(replies.len(), 2, "the change is answered");
    let change = replies.last().unwrap();
    assert!(change.contains("re-assessed"), "{change}");
    assert!(change.contains(&format!("it was {before}")), "{change}");
    let t = tickets(dir.path());
    assert_eq!(t.len(), 1, "the answer joined the ticket");
    assert_eq!(t[0]["messages"], 2);
    // An answer that changes nothing is recorded but not answered.
    let thanks = mail(
        "q3@customer.test",
        "Ola <ola@customer.test>",
        "Re: Container 101 does not start [FL-1]",
        "Thanks, waiting for your call.",
        "",
    );
    let out = ingest(dir.path(), &thanks, &[]);
    assert!(out.contains("severity unchanged"), "{out}");
    assert_eq!(outbox(dir.path()).len(), 2);
}

#[test]
fn machine_mail_is_triaged_but_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    for (i, extra) in [
        "Auto-Submitted: auto-replied\r\n",
        "Precedence: bulk\r\n",
        "X-Loop: helpdesk@customer.test\r\n",
        "X-Auto-Response-Suppress: All\r\n",
    ]
    .iter()
    .enumerate()
    {
        let raw = mail(
            &format!("auto{i}@customer.test"),
            "helpdesk@customer.test",
            "Production server down",
            "Our production server is down.",
            extra,
        );
        let out = ingest(dir.path(), &raw, &[]);
        assert!(
            out.contains("not answered: sent by a machine"),
            "{extra}: {out}"
        );
    }
    let bounce = std::fs::read_to_string(repo_path("fixtures/email/bounce-dsn.eml"))
        .expect("the bounce fixture");
    let out = ingest(dir.path(), &bounce, &[]);
    assert!(out.contains("not answered"), "{out}");
    let daemon = mail(
        "md@mx.customer.test",
        "MAILER-DAEMON@mx.customer.test",
        "Undelivered Mail",
        "The production server is down.",
        "",
    );
    assert!(ingest(dir.path(), &daemon, &[]).contains("not answered"));
    // Our own reply coming back (a misconfigured forward) is never answered.
    let own = mail(
        "fl.9.1.2.3@firstline.invalid",
        "someone@customer.test",
        "Re: server down [FL-9]",
        "The server is down.",
        "",
    );
    assert!(ingest(dir.path(), &own, &[]).contains("firstline's own message"));
    assert!(outbox(dir.path()).is_empty(), "no reply to a machine");
    assert_eq!(tickets(dir.path()).len(), 7, "each one is still triaged");
}

#[test]
fn two_autoresponders_cannot_push_replies_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    // A naive autoresponder that marks nothing answers every reply of ours, in the thread,
    // and says something new each time so that the severity keeps changing.
    let bodies = [
        "The production server is down.",
        "Sorry, false alarm: the production server is not down.",
        "The production server is down.",
        "Sorry, false alarm: the production server is not down.",
        "The production server is down.",
        "Sorry, false alarm: the production server is not down.",
        "The production server is down.",
    ];
    let mut last_reply: Option<String> = None;
    for (i, body) in bodies.iter().enumerate() {
        let extra = last_reply
            .as_ref()
            .map(|r| format!("In-Reply-To: <{}>\r\n", message_id_of(r)))
            .unwrap_or_default();
        let raw = mail(
            &format!("bot{i}@robot.test"),
            "robot@robot.test",
            "Re: your mail",
            body,
            &extra,
        );
        ingest(dir.path(), &raw, &[]);
        last_reply = outbox(dir.path()).pop().or(last_reply);
    }
    let sent = outbox(dir.path()).len();
    assert_eq!(sent, 3, "replies_per_thread_per_hour = 3 caps the loop");
    let t = tickets(dir.path());
    assert_eq!(t.len(), 1, "the loop stayed in one thread");
    assert_eq!(t[0]["messages"], bodies.len());
}

#[test]
fn the_per_sender_cap_holds_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("FIRSTLINE__EMAIL__REPLIES_PER_SENDER_PER_HOUR", "2")];
    for i in 0..4 {
        let raw = mail(
            &format!("s{i}@customer.test"),
            "ann@customer.test",
            &format!("Question {i}"),
            "How do I resize a container disk?",
            "",
        );
        let out = ingest(dir.path(), &raw, &env);
        if i >= 2 {
            assert!(out.contains("reply cap reached"), "{out}");
        }
    }
    assert_eq!(outbox(dir.path()).len(), 2);
    assert_eq!(tickets(dir.path()).len(), 4);
}

#[test]
fn oversized_and_broken_mail_is_quarantined_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("FIRSTLINE__EMAIL__MAX_MESSAGE_BYTES", "2000")];
    let big = mail(
        "big@customer.test",
        "ann@customer.test",
        "Logs",
        &"x".repeat(5000),
        "",
    );
    let out = ingest(dir.path(), &big, &env);
    assert!(out.contains("quarantined: message of"), "{out}");
    assert!(out.contains("over the limit of 2000 bytes"), "{out}");
    let out = ingest(dir.path(), "garbage without headers\n", &env);
    assert!(out.contains("quarantined: not a parsable email"), "{out}");
    let ok = mail(
        "fine@customer.test",
        "ann@customer.test",
        "Down",
        "Prod server down",
        "",
    );
    assert!(ingest(dir.path(), &ok, &env).starts_with("FL-1"));
}

#[test]
fn tickets_lists_by_severity_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    ingest(
        dir.path(),
        &mail(
            "a@c.test",
            "a@c.test",
            "Typo",
            "There is a typo in the Power Panel footer, cosmetic.",
            "",
        ),
        &[],
    );
    ingest(
        dir.path(),
        &std::fs::read_to_string(repo_path("fixtures/email/server-down.eml")).unwrap(),
        &[],
    );
    let all = tickets(dir.path());
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["severity"], 1, "most severe first");
    let out = run_in(dir.path(), &["tickets", "--severity", "1"], &[]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("FL-2 "), "{text}");
    let out = run_in(dir.path(), &["tickets", "--severity", "7"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn settings_errors_name_the_key_and_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[email]\nadress = \"x@y.test\"\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["serve", "--config", "bad.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("adress") && err.contains("email"), "{err}");
    let out = run_in(
        dir.path(),
        &["serve"],
        &[
            ("FIRSTLINE__EMAIL__OUTBOUND", "smtp"),
            ("FIRSTLINE__EMAIL__SMTP__HOST", "smtp.example.com"),
            ("FIRSTLINE__EMAIL__SMTP__SECURITY", "plain"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("only allowed for a loopback host"),
        "{}",
        stderr(&out)
    );
    let out = run_in(dir.path(), &["serve", "--config", "missing.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn a_customer_writing_in_german_is_answered_in_german() {
    let dir = tempfile::tempdir().unwrap();
    let raw = mail(
        "de1@kunde.test",
        "Jonas <jonas@kunde.test>",
        "Server nach Update down",
        "Hallo, unser Produktionsserver ist seit dem Update nicht mehr erreichbar, alle Container sind offline. Bitte dringend helfen!",
        "",
    );
    let out = ingest(dir.path(), &raw, &[]);
    assert!(out.starts_with("FL-1: severity 1"), "{out}");
    let reply = outbox(dir.path()).pop().expect("a reply");
    let text = String::from_utf8(
        mail_parser::MessageParser::default()
            .parse(reply.as_bytes())
            .unwrap()
            .body_text(0)
            .unwrap()
            .as_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("Vielen Dank"), "{text}");
    assert!(text.contains("Schweregrad 1"), "{text}");
    let t = tickets(dir.path());
    assert_eq!(t[0]["language"], "de");
}
