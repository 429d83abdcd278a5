//! Real mail servers on loopback for the email channel's tests: a private Dovecot (IMAP) with
//! one user, a small synchronous IMAP client to seed and inspect its mailboxes, and an SMTP
//! sink (tests/support/smtp_sink.py, on aiosmtpd) that keeps every message it accepts.
//!
//! scripts/test installs both servers when they are missing. Each server gets a fresh folder
//! and a free port, and is stopped when dropped; the folder is kept (and its path printed)
//! when the test panics, for a look at the server's log.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0")
        .port()
}

/// A fresh folder under /tmp whose path every user can traverse: Dovecot's auth process runs
/// as `dovecot` and its mail processes as `nobody`, and a 0700 folder on the way stops them.
fn traversable_temp_dir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("cannot make a folder under /tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .expect("cannot chmod the test folder");
    dir
}

/// The file's text, or a note that it cannot be read.
fn read_text(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// The processes whose parent is `parent` (from /proc).
fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// State and parent of a process, from /proc/PID/stat ("PID (COMM) STATE PPID ...").
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Alive, not a zombie (a container's init may never reap an orphan).
fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
}

fn signal(name: &str, pids: &[u32]) {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let _ = Command::new("sh")
        .args([
            "-c",
            &format!("kill -{name} {} 2>/dev/null", list.join(" ")),
        ])
        .status();
}

/// Stops a server and its child processes: SIGTERM to all of them at once (Dovecot's master
/// alone leaves logged-in IMAP sessions running), up to 5 s to exit, then SIGKILL.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let mut pids = vec![child.id()];
    pids.extend(child_pids(child.id()));
    signal("TERM", &pids);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let master_done = matches!(child.try_wait(), Ok(Some(_)));
        if master_done && !pids[1..].iter().any(|&p| running(p)) {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal("KILL", &pids);
    let _ = child.kill();
    let _ = child.wait();
}

/// Keeps the folder of a server whose test is panicking, and says where it is.
fn keep_if_panicking(dir: &mut Option<TempDir>, what: &str) {
    if std::thread::panicking()
        && let Some(dir) = dir.take()
    {
        eprintln!("{what}: kept {} for a look", dir.keep().display());
    }
}

/// An output file for a child process (its stdout and stderr).
fn output_file(path: &Path) -> (Stdio, Stdio) {
    let file = fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let copy = file.try_clone().expect("cannot duplicate a file handle");
    (Stdio::from(file), Stdio::from(copy))
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Dovecot
// ---------------------------------------------------------------------------------------------

const DOVECOT_MISSING: &str = "Dovecot is needed for this test: run scripts/test (it installs it) \
                               or apt-get install dovecot-imapd";

/// A private Dovecot IMAP server on 127.0.0.1:`port` with one user (`support` / `secret`),
/// mail in `root/home/support/Maildir`, its log in `root/dovecot.log`.
pub struct Dovecot {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub root: PathBuf,
    child: Child,
    binary: PathBuf,
    dir: Option<TempDir>,
}

fn spawn_dovecot(binary: &Path, conf: &Path, root: &Path) -> Child {
    let (out, err) = output_file(&root.join("dovecot.out"));
    Command::new(binary)
        .arg("-F")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}

fn dovecot_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("dovecot"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{DOVECOT_MISSING}"))
}

fn dovecot_conf(root: &Path, port: u16, service_user: Option<(&str, &str)>) -> String {
    let r = root.display();
    let mut conf = format!(
        r#"protocols = imap
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
# IDLE: inotify wakes it; this is only the fallback poll.
mailbox_idle_check_interval = 1 secs
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox Junk {{
    special_use = \Junk
  }}
  mailbox Trash {{
    special_use = \Trash
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = {r}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"#
    );
    if let Some((user, group)) = service_user {
        conf.push_str(&format!(
            "default_login_user = {user}\ndefault_internal_user = {user}\n\
             default_internal_group = {group}\n"
        ));
    }
    conf
}

impl Dovecot {
    /// Starts a fresh server and waits for its IMAP greeting (panics after 15 s, with the log).
    pub fn start() -> Dovecot {
        let binary = dovecot_binary();
        let dir = traversable_temp_dir("firstline-dovecot-");
        let root = dir.path().to_path_buf();
        let home = root.join("home/support");
        fs::create_dir_all(&home).expect("cannot make the mail home");
        for p in [root.join("home"), home.clone()] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }

        // As root (CI), mail belongs to nobody; otherwise everything runs as the current user,
        // who must then also be Dovecot's login and internal user.
        let uid = command_output("id", &["-u"]);
        let (mail_uid, mail_gid, service_user) = if uid == "0" {
            std::os::unix::fs::chown(&home, Some(65534), Some(65534))
                .expect("cannot chown the mail home to 65534");
            ("65534".to_owned(), "65534".to_owned(), None)
        } else {
            let names = (
                command_output("id", &["-un"]),
                command_output("id", &["-gn"]),
            );
            (uid, command_output("id", &["-g"]), Some(names))
        };
        fs::write(
            root.join("passwd"),
            format!(
                "support:{{PLAIN}}secret:{mail_uid}:{mail_gid}::{}\n",
                home.display()
            ),
        )
        .expect("cannot write the passwd file");

        let conf_path = root.join("dovecot.conf");
        let mut last_failure = String::new();
        for _ in 0..3 {
            let port = free_port();
            let service = service_user.as_ref().map(|(u, g)| (u.as_str(), g.as_str()));
            fs::write(&conf_path, dovecot_conf(&root, port, service))
                .expect("cannot write dovecot.conf");
            let _ = fs::remove_file(root.join("dovecot.log"));
            let mut server = Dovecot {
                port,
                user: "support".to_owned(),
                password: "secret".to_owned(),
                root: root.clone(),
                child: spawn_dovecot(&binary, &conf_path, &root),
                binary: binary.clone(),
                dir: None,
            };
            match server.wait_ready(Duration::from_secs(15)) {
                Ok(()) => {
                    server.dir = Some(dir);
                    return server;
                }
                Err(why) => {
                    terminate(&mut server.child);
                    last_failure = format!("{why}\n{}", server.log());
                    if !last_failure.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        let kept = dir.keep();
        panic!(
            "Dovecot did not start (folder kept: {}): {last_failure}",
            kept.display()
        );
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("dovecot exited ({status})"));
            }
            if let Ok(stream) =
                TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, self.port).into(), SHORT)
            {
                stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut greeting = String::new();
                if BufReader::new(stream).read_line(&mut greeting).is_ok()
                    && greeting.starts_with("* OK")
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no IMAP greeting on port {} within {timeout:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server; clients get `* BYE Server shutting down.` and a closed connection.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Starts the stopped server again on the same port with the same mail (stops it first
    /// if it runs), and waits for its greeting.
    pub fn restart(&mut self) {
        terminate(&mut self.child);
        self.child = spawn_dovecot(&self.binary, &self.root.join("dovecot.conf"), &self.root);
        if let Err(why) = self.wait_ready(Duration::from_secs(15)) {
            panic!("Dovecot did not restart: {why}\n{}", self.log());
        }
    }

    /// Dovecot's log (and whatever it printed) so far.
    pub fn log(&self) -> String {
        format!(
            "{}{}",
            read_text(&self.root.join("dovecot.out")),
            read_text(&self.root.join("dovecot.log"))
        )
    }

    /// The user's Maildir (files owned by uid 65534 when the tests run as root).
    pub fn maildir(&self) -> PathBuf {
        self.root.join("home/support/Maildir")
    }

    /// A new connection, logged in as `support`.
    pub fn client(&self) -> ImapTestClient {
        ImapTestClient::connect(self.port, &self.user, &self.password)
    }

    /// Runs `f` on a new connection, then logs out.
    pub fn with_client<T>(&self, f: impl FnOnce(&mut ImapTestClient) -> T) -> T {
        let mut client = self.client();
        let result = f(&mut client);
        client.logout();
        result
    }

    /// Appends `raw` to `mailbox` (created if missing); the new message's UID.
    pub fn append(&self, mailbox: &str, raw: &[u8]) -> u32 {
        self.with_client(|c| c.append(mailbox, raw))
    }

    /// Appends `raw` with `flags` (e.g. `\Seen`, a keyword) to `mailbox`; the new UID.
    pub fn append_with_flags(&self, mailbox: &str, flags: &[&str], raw: &[u8]) -> u32 {
        self.with_client(|c| c.append_with_flags(mailbox, flags, raw))
    }

    /// Creates `mailbox`; no error when it exists already.
    pub fn create(&self, mailbox: &str) {
        self.with_client(|c| c.create(mailbox))
    }

    /// Flags and keywords of one message, without the session flag `\Recent`.
    pub fn flags(&self, mailbox: &str, uid: u32) -> Vec<String> {
        self.with_client(|c| c.flags(mailbox, uid))
    }

    /// The UIDs in `mailbox`, ascending.
    pub fn uids(&self, mailbox: &str) -> Vec<u32> {
        self.with_client(|c| c.uids(mailbox))
    }

    /// Every mailbox name (LIST "" "*"), as the server gives them.
    pub fn mailboxes(&self) -> Vec<String> {
        self.with_client(|c| c.mailboxes())
    }

    /// The exact bytes of one message (BODY.PEEK[]: `\Seen` is not set).
    pub fn fetch_raw(&self, mailbox: &str, uid: u32) -> Vec<u8> {
        self.with_client(|c| c.fetch_raw(mailbox, uid))
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        terminate(&mut self.child);
        keep_if_panicking(&mut self.dir, "Dovecot");
    }
}

// ---------------------------------------------------------------------------------------------
// A small IMAP client for tests
// ---------------------------------------------------------------------------------------------

const SHORT: Duration = Duration::from_secs(2);

/// One value of a server response: an atom (also numbers, flags, NIL and `BODY[...]`), a
/// string (quoted or literal) or a parenthesized list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapValue {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<ImapValue>),
}

impl ImapValue {
    /// An atom's or a string's text.
    pub fn text(&self) -> Option<String> {
        match self {
            ImapValue::Atom(a) => Some(a.clone()),
            ImapValue::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            ImapValue::List(_) => None,
        }
    }

    fn is_atom(&self, word: &str) -> bool {
        matches!(self, ImapValue::Atom(a) if a.eq_ignore_ascii_case(word))
    }
}

/// Splits one complete response (literals included, as read by `read_response`) into values.
/// Lenient: it never fails, so a free-text response gives some values and nothing breaks.
pub fn parse_response(bytes: &[u8]) -> Vec<ImapValue> {
    let mut parser = Parser { buf: bytes, pos: 0 };
    let mut values = Vec::new();
    while let Some(v) = parser.value() {
        values.push(v);
    }
    values
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next value at this level, or None at the end of the response or of a list.
    fn value(&mut self) -> Option<ImapValue> {
        loop {
            match self.peek()? {
                b' ' | b'\r' | b'\n' => self.pos += 1,
                b')' => return None,
                _ => break,
            }
        }
        Some(match self.peek()? {
            b'(' => {
                self.pos += 1;
                let mut items = Vec::new();
                while let Some(v) = self.value() {
                    items.push(v);
                }
                if self.peek() == Some(b')') {
                    self.pos += 1;
                }
                ImapValue::List(items)
            }
            b'"' => {
                self.pos += 1;
                let mut s = Vec::new();
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            if let Some(next) = self.peek() {
                                s.push(next);
                                self.pos += 1;
                            }
                        }
                        _ => s.push(c),
                    }
                }
                ImapValue::Str(s)
            }
            b'{' if self.literal_len().is_some() => {
                let (len, start) = self.literal_len().expect("checked");
                let end = (start + len).min(self.buf.len());
                self.pos = end;
                ImapValue::Str(self.buf[start..end].to_vec())
            }
            _ => {
                // An atom; a `[...]` part (BODY[HEADER.FIELDS (A B)], [UIDNEXT 5]) belongs to it.
                let start = self.pos;
                let mut depth = 0usize;
                while let Some(c) = self.peek() {
                    match c {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b' ' | b'(' | b')' | b'\r' | b'\n' if depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                ImapValue::Atom(String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
            }
        })
    }

    /// At `{N}\r\n` (or `{N+}\r\n`): N and where the literal's bytes start.
    fn literal_len(&self) -> Option<(usize, usize)> {
        let rest = &self.buf[self.pos + 1..];
        let close = rest.iter().position(|&c| c == b'}')?;
        let digits = rest[..close].strip_suffix(b"+").unwrap_or(&rest[..close]);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let len = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let after = self.pos + 1 + close + 1;
        self.buf[after..]
            .starts_with(b"\r\n")
            .then_some((len, after + 2))
    }
}

/// The size N of a literal `{N}` (or `{N+}`) that ends this line, if it does.
fn trailing_literal(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An IMAP string for a mailbox name or a flag-free argument.
fn quoted(s: &str) -> String {
    assert!(
        !s.contains(['\r', '\n']),
        "no line break in an IMAP string: {s:?}"
    );
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The pairs of a FETCH response `* N FETCH (KEY VALUE ...)`, keys in upper case.
fn fetch_items(values: &[ImapValue]) -> Option<Vec<(String, ImapValue)>> {
    match values {
        [star, _, fetch, ImapValue::List(items), ..]
            if star.is_atom("*") && fetch.is_atom("FETCH") =>
        {
            Some(
                items
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [ImapValue::Atom(k), v] => Some((k.to_ascii_uppercase(), v.clone())),
                        _ => None,
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A logged-in IMAP connection, synchronous, with a 10 s read timeout. Every method panics on
/// a failure, with the server's answer.
pub struct ImapTestClient {
    stream: BufReader<TcpStream>,
    next_tag: u32,
}

impl ImapTestClient {
    /// Connects to 127.0.0.1:`port`, reads the greeting and logs in.
    pub fn connect(port: u16, user: &str, password: &str) -> ImapTestClient {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("cannot connect to IMAP on port {port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        let mut client = ImapTestClient {
            stream: BufReader::new(stream),
            next_tag: 1,
        };
        let greeting = client.read_response();
        assert!(
            greeting.starts_with(b"* OK"),
            "IMAP greeting: {}",
            String::from_utf8_lossy(&greeting)
        );
        client.command(&format!("LOGIN {} {}", quoted(user), quoted(password)));
        client
    }

    /// Sends one line (CRLF added), e.g. `DONE` to end an IDLE.
    pub fn write_line(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| stream.flush())
            .expect("IMAP write failed");
    }

    /// Reads one complete server response: a line with the literals it announces.
    pub fn read_response(&mut self) -> Vec<u8> {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("IMAP read failed: {e}"))
    }

    /// As `read_response`, but a read timeout (or a closed connection) is an error to handle.
    pub fn try_read_response(&mut self) -> std::io::Result<Vec<u8>> {
        let mut response = Vec::new();
        loop {
            let start = response.len();
            if self.stream.read_until(b'\n', &mut response)? == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            match trailing_literal(&response[start..]) {
                Some(len) => {
                    let at = response.len();
                    response.resize(at + len, 0);
                    self.stream.read_exact(&mut response[at..])?;
                }
                None if response.ends_with(b"\n") => return Ok(response),
                None => {}
            }
        }
    }

    /// Sets the read timeout (e.g. shorter while waiting for IDLE news).
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream
            .get_ref()
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
    }

    fn tag(&mut self) -> String {
        let tag = format!("T{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Reads up to the tagged completion of `tag`: Ok(untagged responses, completion line) on
    /// OK, Err(everything read) on NO or BAD.
    fn complete(&mut self, tag: &str) -> Result<(Vec<Vec<u8>>, String), String> {
        let prefix = format!("{tag} ");
        let mut untagged = Vec::new();
        loop {
            let response = self.read_response();
            if let Some(rest) = response.strip_prefix(prefix.as_bytes()) {
                let rest = String::from_utf8_lossy(rest).trim_end().to_owned();
                if rest.get(..2).is_some_and(|s| s.eq_ignore_ascii_case("OK")) {
                    return Ok((untagged, rest));
                }
                let before: Vec<_> = untagged
                    .iter()
                    .map(|r| String::from_utf8_lossy(r))
                    .collect();
                return Err(format!("{}{tag} {rest}", before.concat()));
            }
            untagged.push(response);
        }
    }

    /// Runs one command (no literals); the untagged responses, or Err with the server's answer.
    pub fn try_command(&mut self, command: &str) -> Result<Vec<Vec<u8>>, String> {
        let tag = self.tag();
        self.write_line(&format!("{tag} {command}"));
        self.complete(&tag).map(|(untagged, _)| untagged)
    }

    /// Runs one command (no literals) that must succeed; its untagged responses.
    pub fn command(&mut self, command: &str) -> Vec<Vec<u8>> {
        self.try_command(command)
            .unwrap_or_else(|e| panic!("IMAP {command}: {e}"))
    }

    /// Appends `raw` to `mailbox` (created if missing); the new message's UID.
    pub fn append(&mut self, mailbox: &str, raw: &[u8]) -> u32 {
        self.append_with_flags(mailbox, &[], raw)
    }

    /// Appends `raw` with `flags` to `mailbox` (created if missing); the new message's UID.
    pub fn append_with_flags(&mut self, mailbox: &str, flags: &[&str], raw: &[u8]) -> u32 {
        let completion = match self.try_append(mailbox, flags, raw) {
            Err(e) if e.contains("[TRYCREATE]") => {
                self.create(mailbox);
                self.try_append(mailbox, flags, raw)
            }
            other => other,
        }
        .unwrap_or_else(|e| panic!("IMAP APPEND to {mailbox}: {e}"));
        // OK [APPENDUID <uidvalidity> <uid>] (Dovecot has UIDPLUS)
        completion
            .split_once("[APPENDUID ")
            .and_then(|(_, rest)| rest.split([' ', ']']).nth(1))
            .and_then(|uid| uid.parse().ok())
            .unwrap_or_else(|| panic!("no APPENDUID in {completion:?}"))
    }

    /// APPEND with a synchronizing literal: waits for the server's `+` before the bytes.
    fn try_append(&mut self, mailbox: &str, flags: &[&str], raw: &[u8]) -> Result<String, String> {
        let tag = self.tag();
        self.write_line(&format!(
            "{tag} APPEND {} ({}) {{{}}}",
            quoted(mailbox),
            flags.join(" "),
            raw.len()
        ));
        loop {
            let response = self.read_response();
            if response.starts_with(b"+") {
                break;
            }
            if response.starts_with(format!("{tag} ").as_bytes()) {
                return Err(String::from_utf8_lossy(&response).trim_end().to_owned());
            }
        }
        let stream = self.stream.get_mut();
        stream
            .write_all(raw)
            .and_then(|()| stream.write_all(b"\r\n"))
            .and_then(|()| stream.flush())
            .expect("IMAP write failed");
        self.complete(&tag).map(|(_, completion)| completion)
    }

    /// Creates `mailbox`; no error when it exists already.
    pub fn create(&mut self, mailbox: &str) {
        if let Err(e) = self.try_command(&format!("CREATE {}", quoted(mailbox)))
            && !e.contains("[ALREADYEXISTS]")
        {
            panic!("IMAP CREATE {mailbox}: {e}");
        }
    }

    /// Selects `mailbox` read-only (EXAMINE).
    pub fn examine(&mut self, mailbox: &str) {
        self.command(&format!("EXAMINE {}", quoted(mailbox)));
    }

    /// Selects `mailbox` read-write (SELECT).
    pub fn select(&mut self, mailbox: &str) {
        self.command(&format!("SELECT {}", quoted(mailbox)));
    }

    /// The UIDs in `mailbox`, ascending.
    pub fn uids(&mut self, mailbox: &str) -> Vec<u32> {
        self.examine(mailbox);
        let mut uids: Vec<u32> = self
            .command("UID SEARCH ALL")
            .iter()
            .map(|r| parse_response(r))
            .filter(|v| v.len() >= 2 && v[0].is_atom("*") && v[1].is_atom("SEARCH"))
            .flat_map(|v| v.into_iter().skip(2))
            .filter_map(|v| v.text()?.parse().ok())
            .collect();
        uids.sort_unstable();
        uids
    }

    /// The FETCH items of the message `uid` in `mailbox` for the fetch attributes `what`.
    fn fetch(&mut self, mailbox: &str, uid: u32, what: &str) -> Vec<(String, ImapValue)> {
        self.examine(mailbox);
        let uid_text = uid.to_string();
        self.command(&format!("UID FETCH {uid} ({what})"))
            .iter()
            .filter_map(|r| fetch_items(&parse_response(r)))
            .find(|items| {
                items
                    .iter()
                    .any(|(k, v)| k == "UID" && v.text().as_deref() == Some(uid_text.as_str()))
            })
            .unwrap_or_else(|| panic!("no message with UID {uid} in {mailbox}"))
    }

    /// Flags and keywords of one message, without the session flag `\Recent`.
    pub fn flags(&mut self, mailbox: &str, uid: u32) -> Vec<String> {
        match self
            .fetch(mailbox, uid, "UID FLAGS")
            .into_iter()
            .find(|(k, _)| k == "FLAGS")
        {
            Some((_, ImapValue::List(flags))) => flags
                .iter()
                .filter_map(ImapValue::text)
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .collect(),
            other => panic!("FLAGS of UID {uid} in {mailbox}: {other:?}"),
        }
    }

    /// Adds flags or keywords to one message (UID STORE +FLAGS).
    pub fn add_flags(&mut self, mailbox: &str, uid: u32, flags: &[&str]) {
        self.select(mailbox);
        self.command(&format!(
            "UID STORE {uid} +FLAGS.SILENT ({})",
            flags.join(" ")
        ));
    }

    /// The exact bytes of one message (BODY.PEEK[]: `\Seen` is not set).
    pub fn fetch_raw(&mut self, mailbox: &str, uid: u32) -> Vec<u8> {
        match self
            .fetch(mailbox, uid, "UID BODY.PEEK[]")
            .into_iter()
            .find(|(k, _)| k == "BODY[]")
        {
            Some((_, ImapValue::Str(bytes))) => bytes,
            other => panic!("BODY[] of UID {uid} in {mailbox}: {other:?}"),
        }
    }

    /// Every mailbox name (LIST "" "*"), as the server gives them.
    pub fn mailboxes(&mut self) -> Vec<String> {
        self.command("LIST \"\" \"*\"")
            .iter()
            .map(|r| parse_response(r))
            .filter(|v| v.len() >= 5 && v[0].is_atom("*") && v[1].is_atom("LIST"))
            .filter_map(|v| v[4].text())
            .collect()
    }

    /// Logs out politely (dropping the client just closes the connection); quietly does
    /// nothing more when the connection is gone already.
    pub fn logout(mut self) {
        let tag = self.tag();
        let line = format!("{tag} LOGOUT\r\n");
        if self.stream.get_mut().write_all(line.as_bytes()).is_err() {
            return;
        }
        while let Ok(response) = self.try_read_response() {
            if response.starts_with(format!("{tag} ").as_bytes()) {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP sink
// ---------------------------------------------------------------------------------------------

const AIOSMTPD_MISSING: &str = "aiosmtpd is needed for this test: run scripts/test (it installs \
                                it) or python3 -m pip install aiosmtpd";

/// One message the sink accepted: the envelope and the exact DATA bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: Vec<u8>,
}

impl Received {
    /// The raw message as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    fn summary(&self) -> String {
        format!(
            "{} -> {:?}:\n{}",
            self.mail_from,
            self.rcpt_tos,
            self.text()
        )
    }
}

/// tests/support/smtp_sink.py on 127.0.0.1:`port`, storing the messages it accepts in `dir`.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    root: Option<TempDir>,
    log_path: PathBuf,
}

impl SmtpSink {
    /// A sink with no AUTH that accepts every message.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(None, 0)
    }

    /// A sink that requires AUTH PLAIN/LOGIN with `auth` (user, password) when given, and
    /// answers the first `fail_first` messages with `451 4.3.0 try again later` (after their
    /// data) without storing them. Waits up to 10 s for the port.
    pub fn start_with(auth: Option<(&str, &str)>, fail_first: usize) -> SmtpSink {
        SmtpSink::start_delivering(auth, fail_first, None)
    }

    /// Like `start_with`, and a message addressed to `deliver.0` is also delivered into the
    /// Maildir `deliver.1` (a Dovecot mailbox), as a local MTA would.
    pub fn start_delivering(
        auth: Option<(&str, &str)>,
        fail_first: usize,
        deliver: Option<(&str, &Path)>,
    ) -> SmtpSink {
        let root = tempfile::Builder::new()
            .prefix("firstline-smtp-")
            .tempdir()
            .expect("cannot make a temporary folder");
        let dir = root.path().join("mail");
        fs::create_dir(&dir).expect("cannot make the sink's folder");
        let log_path = root.path().join("smtp_sink.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");

        let mut last_failure = String::new();
        for _ in 0..3 {
            let port = free_port();
            let (out, err) = output_file(&log_path);
            let mut command = Command::new("python3");
            command
                .arg(&script)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(&dir)
                .args(["--fail-first", &fail_first.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            if let Some((user, password)) = auth {
                command.args(["--user", user, "--password", password]);
            }
            if let Some((address, maildir)) = deliver {
                command
                    .arg("--deliver")
                    .arg(format!("{address}={}", maildir.display()));
            }
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start python3 (needed for the SMTP sink): {e}"));
            let mut sink = SmtpSink {
                port,
                dir: dir.clone(),
                child,
                root: None,
                log_path: log_path.clone(),
            };
            match sink.wait_ready(Duration::from_secs(10)) {
                Ok(()) => {
                    sink.root = Some(root);
                    return sink;
                }
                Err(why) => {
                    terminate(&mut sink.child);
                    last_failure = format!("{why}\n{}", sink.log());
                    if !last_failure.contains("ddress already in use") {
                        break;
                    }
                }
            }
        }
        panic!("the SMTP sink did not start: {last_failure}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if status.code() == Some(3) {
                    panic!("{AIOSMTPD_MISSING}\n{}", self.log());
                }
                return Err(format!("smtp_sink.py exited ({status})"));
            }
            if TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, self.port).into(), SHORT).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("port {} not open within {timeout:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the sink printed (Python errors).
    pub fn log(&self) -> String {
        read_text(&self.log_path)
    }

    /// The messages accepted so far, in the order accepted.
    pub fn messages(&self) -> Vec<Received> {
        let mut seqs: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)
            .unwrap_or_else(|e| panic!("{}: {e}", self.dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
            .collect();
        seqs.sort();
        seqs.into_iter()
            .map(|(_, eml)| {
                let raw = fs::read(&eml).unwrap_or_else(|e| panic!("{}: {e}", eml.display()));
                let json_path = eml.with_extension("json");
                let envelope: serde_json::Value = serde_json::from_slice(
                    &fs::read(&json_path)
                        .unwrap_or_else(|e| panic!("{}: {e}", json_path.display())),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
                Received {
                    mail_from: envelope["mail_from"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    rcpt_tos: envelope["rcpt_tos"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect(),
                    raw,
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages were accepted and returns them all; panics after
    /// `timeout` with what did arrive.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                let got: Vec<String> = messages.iter().map(Received::summary).collect();
                panic!(
                    "the SMTP sink got {} message(s) within {timeout:?}, not {n}: {got:#?}\n{}",
                    messages.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        terminate(&mut self.child);
        keep_if_panicking(&mut self.root, "SmtpSink");
    }
}
