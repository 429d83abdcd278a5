//! The loopback mail servers of `support` work: Dovecot stores and shows what the IMAP test
//! client appends (and wakes an IDLE), the SMTP sink keeps the exact bytes and envelope, fails
//! on request and enforces AUTH.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Dovecot, ImapTestClient, ImapValue, SmtpSink};

const FIRST: &[u8] = b"From: Ana <ana@example.com>\r\nTo: support@example.com\r\n\
Subject: Checkout down\r\nMessage-ID: <1@example.com>\r\n\r\nCheckout fails for everyone.\r\n";
const SECOND: &[u8] = b"From: Bo <bo@example.com>\r\nTo: support@example.com\r\n\
Subject: Question\r\nMessage-ID: <2@example.com>\r\n\r\nHow do I export?\r\n";

#[test]
fn dovecot_stores_what_is_appended() {
    let dovecot = Dovecot::start();
    let first = dovecot.append("INBOX", FIRST);
    let second = dovecot.append("INBOX", SECOND);
    assert!(first < second, "UIDs {first} then {second}");
    assert_eq!(dovecot.uids("INBOX"), vec![first, second]);
    assert_eq!(dovecot.fetch_raw("INBOX", first), FIRST);
    assert_eq!(dovecot.fetch_raw("INBOX", second), SECOND);
    // BODY.PEEK[] leaves the message unread.
    assert_eq!(dovecot.flags("INBOX", first), Vec::<String>::new());
}

#[test]
fn dovecot_flags_keywords_and_mailboxes() {
    let dovecot = Dovecot::start();
    let uid = dovecot.append_with_flags("INBOX", &["\\Seen", "$Triaged"], FIRST);
    let mut flags = dovecot.flags("INBOX", uid);
    flags.sort();
    assert_eq!(flags, ["$Triaged", "\\Seen"]);

    let mut client = dovecot.client();
    client.add_flags("INBOX", uid, &["\\Answered"]);
    assert!(
        client
            .flags("INBOX", uid)
            .contains(&"\\Answered".to_owned())
    );

    // APPEND creates a missing mailbox; CREATE is idempotent; names with spaces are quoted.
    let archived = client.append("Archive/Done", SECOND);
    client.create("Needs reply");
    client.create("Needs reply");
    assert_eq!(client.uids("Archive/Done"), vec![archived]);
    assert_eq!(client.uids("Needs reply"), Vec::<u32>::new());
    client.logout();

    let mailboxes = dovecot.mailboxes();
    for name in ["INBOX", "Archive", "Archive/Done", "Needs reply"] {
        assert!(
            mailboxes.iter().any(|m| m == name),
            "{name} in {mailboxes:?}"
        );
    }
}

#[test]
fn dovecot_restarts_with_the_same_mail() {
    let mut dovecot = Dovecot::start();
    let uid = dovecot.append("INBOX", FIRST);
    let mut old = dovecot.client();
    old.select("INBOX");
    dovecot.stop();
    // The server closed the connection (a client may see "* BYE" first).
    old.set_read_timeout(Duration::from_secs(5));
    let closed =
        |r: std::io::Result<Vec<u8>>| r.is_err() || r.is_ok_and(|b| b.starts_with(b"* BYE"));
    assert!(
        closed(old.try_read_response()),
        "the connection outlived the server"
    );
    dovecot.restart();
    assert_eq!(dovecot.uids("INBOX"), vec![uid]);
}

#[test]
fn dovecot_idle_hears_of_a_new_message() {
    let dovecot = Dovecot::start();
    let mut idler = dovecot.client();
    idler.select("INBOX");
    idler.write_line("I1 IDLE");
    assert!(idler.read_response().starts_with(b"+"), "IDLE not accepted");

    dovecot.append("INBOX", FIRST);
    // Dovecot notices changes about 500 ms later.
    let deadline = Instant::now() + Duration::from_secs(10);
    idler.set_read_timeout(Duration::from_secs(10));
    loop {
        let response = idler.read_response();
        if response.starts_with(b"* 1 EXISTS") {
            break;
        }
        assert!(Instant::now() < deadline, "no EXISTS while idling");
    }
    idler.write_line("DONE");
    while !idler.read_response().starts_with(b"I1 ") {}
    idler.logout();
}

#[test]
fn imap_client_reads_literals_in_fetch() {
    let dovecot = Dovecot::start();
    let uid = dovecot.append("INBOX", SECOND);
    let mut client = ImapTestClient::connect(dovecot.port, &dovecot.user, &dovecot.password);
    client.examine("INBOX");
    // Two literals in one response, items in an order of the server's choosing.
    let responses = client.command(&format!(
        "UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS BODY.PEEK[TEXT])"
    ));
    let values = crate::support::parse_response(&responses[0]);
    let ImapValue::List(items) = &values[3] else {
        panic!("{values:?}")
    };
    let item = |key: &str| {
        let at = items.iter().position(|v| v.text().as_deref() == Some(key));
        at.and_then(|i| items[i + 1].text())
            .unwrap_or_else(|| panic!("no {key} in {values:?}"))
    };
    assert_eq!(
        item("BODY[HEADER.FIELDS (SUBJECT)]"),
        "Subject: Question\r\n\r\n"
    );
    assert_eq!(item("BODY[TEXT]"), "How do I export?\r\n");
    assert_eq!(item("UID"), uid.to_string());
}

/// A raw SMTP conversation, one reply per command.
struct Smtp {
    reader: BufReader<TcpStream>,
}

impl Smtp {
    fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the sink");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
        };
        assert_eq!(smtp.reply().0, 220);
        assert_eq!(smtp.send("EHLO client.test").0, 250);
        smtp
    }

    /// The code and text of one (possibly multi-line) reply.
    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("SMTP reply");
            assert!(line.len() >= 4, "short SMTP reply {line:?} after {text:?}");
            text.push_str(&line);
            if line.as_bytes()[3] == b' ' {
                return (line[..3].parse().expect("reply code"), text);
            }
        }
    }

    fn send(&mut self, line: &str) -> (u16, String) {
        self.write(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("SMTP write");
    }

    /// MAIL FROM, RCPT TO each, DATA with the message dot-stuffed; the final reply.
    fn mail(&mut self, from: &str, to: &[&str], raw: &[u8]) -> (u16, String) {
        assert_eq!(self.send(&format!("MAIL FROM:<{from}>")).0, 250);
        for rcpt in to {
            assert_eq!(self.send(&format!("RCPT TO:<{rcpt}>")).0, 250);
        }
        assert_eq!(self.send("DATA").0, 354);
        let mut stuffed = Vec::new();
        for line in raw.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
        }
        stuffed.extend_from_slice(b".\r\n");
        self.write(&stuffed);
        self.reply()
    }
}

const REPLY: &[u8] = b"From: support@example.com\r\nTo: ana@example.com\r\n\
Subject: Re: Checkout down\r\n\r\nWe are on it.\r\n.\r\n..a line with dots\r\n";

#[test]
fn smtp_sink_keeps_the_exact_message_and_envelope() {
    let sink = SmtpSink::start();
    let mut smtp = Smtp::connect(sink.port);
    let (code, text) = smtp.mail(
        "support@example.com",
        &["ana@example.com", "cc@example.com"],
        REPLY,
    );
    assert_eq!(code, 250, "{text}");
    smtp.send("QUIT");

    let got = sink.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "support@example.com");
    assert_eq!(got[0].rcpt_tos, ["ana@example.com", "cc@example.com"]);
    assert_eq!(got[0].text(), String::from_utf8_lossy(REPLY));
    assert_eq!(got[0].raw, REPLY);
}

#[test]
fn smtp_sink_fails_the_first_message_on_request() {
    let sink = SmtpSink::start_with(None, 1);
    let mut smtp = Smtp::connect(sink.port);
    let (code, text) = smtp.mail("support@example.com", &["ana@example.com"], FIRST);
    assert_eq!(code, 451, "{text}");
    assert!(text.contains("4.3.0 try again later"), "{text}");
    assert!(sink.messages().is_empty());

    let (code, text) = smtp.mail("support@example.com", &["ana@example.com"], SECOND);
    assert_eq!(code, 250, "{text}");
    let got = sink.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].raw, SECOND);
}

#[test]
fn smtp_sink_requires_auth_when_asked() {
    let sink = SmtpSink::start_with(Some(("bot", "hunter2")), 0);
    let mut smtp = Smtp::connect(sink.port);
    let (code, text) = smtp.send("MAIL FROM:<support@example.com>");
    assert_eq!(code, 530, "{text}");
    // base64 of "\0bot\0wrong", then of "\0bot\0hunter2"
    let (code, text) = smtp.send("AUTH PLAIN AGJvdAB3cm9uZw==");
    assert_eq!(code, 535, "{text}");
    let (code, text) = smtp.send("AUTH PLAIN AGJvdABodW50ZXIy");
    assert_eq!(code, 235, "{text}");
    let (code, text) = smtp.mail("support@example.com", &["ana@example.com"], FIRST);
    assert_eq!(code, 250, "{text}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(5))[0].raw, FIRST);
}
