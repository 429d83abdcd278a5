//! The agents' queue page in a real browser: headless Chromium (Debian's `chromium`) driven
//! through chromedriver's WebDriver HTTP API (Debian's `chromium-driver`), against a running
//! `firstline serve`. The page must bring a new ticket in by its own polling (no reload), show
//! the evidence highlighted, and record an override typed into its form.
//!
//! scripts/test installs both packages when they are missing; without them the test fails.
//! When it fails the serve folder is kept, with the serve log, the chromedriver log and a
//! screenshot of the page.

use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::desk::Serve;
use super::support::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for the page (or a server) lasts before the test fails.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A blocking JSON-over-HTTP client (reqwest on its own small runtime).
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cannot build a tokio runtime"),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("cannot build an HTTP client"),
        }
    }

    /// The status and the JSON body (Null when empty, a string when not JSON).
    fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, Value), String> {
        self.rt.block_on(async {
            let mut req = self.client.request(method.clone(), url).timeout(timeout);
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req
                .send()
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?;
            let status = r.status().as_u16();
            let text = r.text().await.map_err(|e| format!("{method} {url}: {e}"))?;
            let value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            Ok((status, value))
        })
    }
}

/// Headless Chromium behind a chromedriver child process. Dropping it ends the session and
/// kills chromedriver's process group (chromedriver and every Chromium process).
struct Browser {
    http: Http,
    driver: String,
    session: Option<String>,
    chromedriver: Child,
    log: PathBuf,
    /// Chromium's profile and HOME (its crash database goes there): removed after the kill.
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver (logging to `log_dir/chromedriver.log`) and a Chromium session.
    fn start(log_dir: &Path) -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} (Debian package {package}) is missing: run scripts/test (it installs \
                 chromium and chromium-driver) or apt-get install chromium chromium-driver"
            );
        }
        let profile = tempfile::Builder::new()
            .prefix("firstline-chromium-")
            .tempdir()
            .expect("cannot make Chromium's profile folder");
        let log = log_dir.join("chromedriver.log");
        let port = free_port();
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .env("HOME", profile.path())
            .env("XDG_CONFIG_HOME", profile.path().join(".config"))
            .env("XDG_CACHE_HOME", profile.path().join(".cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Chromium's processes join it, and one kill ends them all.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut browser = Browser {
            http: Http::new(),
            driver: format!("http://127.0.0.1:{port}"),
            session: None,
            chromedriver,
            log,
            profile,
        };
        browser.wait_for_driver();
        let data_dir = browser.profile.path().join("data");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--window-size=1280,1024",
            &format!("--user-data-dir={}", data_dir.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let started = Instant::now();
        let session = browser
            .call(Method::POST, "/session", Some(&capabilities))
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium: {e}\n{}",
                    browser.log_tail()
                )
            });
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {session}"))
            .to_string();
        eprintln!(
            "browser test: Chromium {} started in {} ms",
            session["capabilities"]["browserVersion"],
            started.elapsed().as_millis()
        );
        browser.session = Some(id);
        browser
            .session_call(
                Method::POST,
                "/timeouts",
                Some(&json!({"pageLoad": 30_000, "script": 10_000, "implicit": 0})),
            )
            .expect("cannot set the WebDriver timeouts");
        browser
    }

    /// Waits until chromedriver answers /status with ready.
    fn wait_for_driver(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.chromedriver.try_wait() {
                panic!(
                    "chromedriver exited at start ({status})\n{}",
                    self.log_tail()
                );
            }
            let url = format!("{}/status", self.driver);
            if let Ok((200, v)) = self
                .http
                .send(Method::GET, &url, None, Duration::from_secs(2))
                && v["value"]["ready"] == true
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready within {WAIT:?}\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL);
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail: Vec<String> = lines[lines.len().saturating_sub(30)..]
            .iter()
            .map(|l| l.chars().take(300).collect())
            .collect();
        let tail = tail.join("\n");
        format!(
            "chromedriver log ({}), last lines:\n{tail}",
            self.log.display()
        )
    }

    /// A WebDriver command; its `value`, or the WebDriver error as text.
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.driver);
        let (status, v) = self
            .http
            .send(method.clone(), &url, body, Duration::from_secs(60))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(format!(
                "{method} {path}: {status} {}: {}",
                value["error"].as_str().unwrap_or("?"),
                value["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            ))
        }
    }

    fn session_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let id = self.session.as_deref().expect("no WebDriver session");
        self.call(method, &format!("/session/{id}{path}"), body)
    }

    fn goto(&self, url: &str) -> Result<(), String> {
        self.session_call(Method::POST, "/url", Some(&json!({"url": url})))
            .map(drop)
    }

    /// The first element matching `css`.
    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.session_call(
            Method::POST,
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element reference in {v}"))
    }

    /// Every element matching `css`.
    fn find_all(&self, css: &str) -> Result<Vec<String>, String> {
        let v = self.session_call(
            Method::POST,
            "/elements",
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
            .collect())
    }

    /// The rendered text of an element ("" when it is not displayed).
    fn text(&self, element: &str) -> Result<String, String> {
        let v = self.session_call(Method::GET, &format!("/element/{element}/text"), None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The rendered text of the first element matching `css`.
    fn text_of(&self, css: &str) -> Result<String, String> {
        self.text(&self.find(css)?)
    }

    fn attribute(&self, element: &str, name: &str) -> Result<Option<String>, String> {
        let v = self.session_call(
            Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            None,
        )?;
        Ok(v.as_str().map(str::to_string))
    }

    fn click(&self, css: &str) -> Result<(), String> {
        let element = self.find(css)?;
        self.session_call(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Empties the field matching `css`, then types `text` into it.
    fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let element = self.find(css)?;
        self.session_call(
            Method::POST,
            &format!("/element/{element}/clear"),
            Some(&json!({})),
        )?;
        self.session_call(
            Method::POST,
            &format!("/element/{element}/value"),
            Some(&json!({"text": text})),
        )
        .map(drop)
    }

    fn script(&self, script: &str) -> Result<Value, String> {
        self.session_call(
            Method::POST,
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    /// The page as a PNG.
    fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.session_call(Method::GET, "/screenshot", None)?;
        base64_decode(v.as_str().unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            // Chromium quits (with its crash handlers) when its session ends.
            let url = format!("{}/session/{id}", self.driver);
            let _ = self
                .http
                .send(Method::DELETE, &url, None, Duration::from_secs(15));
        }
        // chromedriver, and whatever Chromium left if the session could not be ended. The
        // group still has its leader (not reaped yet), so the id is certainly ours.
        let group = format!("-{}", self.chromedriver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.chromedriver.wait();
    }
}

/// Standard base64 (WebDriver's screenshots), padding and line breaks tolerated.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return Err(format!("not base64: byte {c:#x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Retries `probe` every 100 ms until it succeeds; fails the test after `WAIT` with the last
/// thing it saw.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if started.elapsed() >= WAIT => {
                panic!("timed out after {WAIT:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// `Ok` when `got` is `want`, else what was seen.
fn expect_text(css: &str, got: String, want: &str) -> Result<(), String> {
    if got.trim() == want {
        Ok(())
    } else {
        Err(format!("{css} says {got:?}"))
    }
}

const SUBJECT: &str = "URGENT: hn07 down";
const OUTAGE: &str = "Hello,\n\nour production hardware node hn07 is down since 06:50: it does not \
answer ping or SSH, and all 84 containers on it are offline.\n\nMarta\n";
const REASON: &str = "customer confirmed a failover node is serving the sites";

/// The flow in the browser; `base` is serve's address.
fn use_the_page(browser: &Browser, http: &Http, base: &str) {
    browser
        .goto(&format!("{base}/"))
        .expect("cannot open the page");
    let title = browser.script("return document.title").unwrap();
    assert_eq!(title, "firstline queue");
    let empty = browser
        .text_of("#queue .empty")
        .expect("no empty-queue note");
    assert!(empty.contains("No tickets"), "{empty:?}");
    // Survives only if the page is never reloaded: the ticket must come by its polling.
    browser
        .script("window.firstlineTestMarker = 'same page'; return null")
        .unwrap();

    let message = json!({
        "thread": "browser-1",
        "id": "m1",
        "from": "marta@nordhost.example",
        "subject": SUBJECT,
        "text": OUTAGE,
    });
    let (status, answer) = http
        .send(
            Method::POST,
            &format!("{base}/v1/messages"),
            Some(&message),
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["severity"], 1, "{answer}");
    let id = answer["ticket"].as_i64().expect("a ticket number");
    let ticket = format!("#ticket-{id}");

    let appeared = Instant::now();
    eventually("the ticket to appear on the page", || {
        let css = format!("{ticket} summary .subject");
        expect_text(&css, browser.text_of(&css)?, SUBJECT)
    });
    eprintln!(
        "browser test: the ticket appeared {} ms after the message was ingested",
        appeared.elapsed().as_millis()
    );
    let badge = format!("{ticket} summary .badge");
    assert_eq!(browser.text_of(&badge).unwrap(), "1");
    assert!(browser.find_all("#queue .empty").unwrap().is_empty());
    assert_eq!(
        browser.find_all(&format!("{ticket} .agent")).unwrap(),
        Vec::<String>::new()
    );

    // Open it: the message shows with the evidence marked.
    eventually("the ticket to open", || {
        browser.click(&format!("{ticket} summary"))?;
        let open = browser.attribute(&browser.find(&ticket)?, "open")?;
        open.map(drop).ok_or_else(|| "still closed".to_string())
    });
    let marks = eventually("highlighted evidence in the message", || {
        let mut seen = Vec::new();
        for m in browser.find_all(&format!("{ticket} .message pre mark"))? {
            seen.push((browser.attribute(&m, "title")?, browser.text(&m)?));
        }
        if seen.iter().any(|(_, text)| !text.is_empty()) {
            Ok(seen)
        } else {
            Err(format!("marks {seen:?}"))
        }
    });
    assert!(
        marks
            .iter()
            .any(|(title, text)| title.as_deref() == Some("server_down")
                && text.to_lowercase().contains("hn07 is down")),
        "no server_down evidence marked: {marks:?}"
    );

    // Override to 2 through the form.
    let form = format!("{ticket} form.override");
    eventually("severity 2 to be chosen", || {
        browser.click(&format!("{form} select[name=severity] option[value='2']"))?;
        let chosen = browser.script(&format!(
            "return document.querySelector(\"{form} select[name=severity]\").value"
        ))?;
        (chosen == "2")
            .then_some(())
            .ok_or_else(|| format!("the select has {chosen}"))
    });
    eventually("the reason to be typed", || {
        browser.type_into(&format!("{form} input[name=reason]"), REASON)
    });
    browser
        .click(&format!("{form} button[type=submit]"))
        .expect("cannot click Override");
    let result = format!("{form} .result");
    eventually("the form to say recorded", || {
        expect_text(&result, browser.text_of(&result)?, "recorded")
    });

    let (status, detail) = http
        .send(
            Method::GET,
            &format!("{base}/v1/tickets/{id}"),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["override_severity"], 2, "{detail}");
    assert_eq!(detail["severity"], 2, "{detail}");
    let overrides = detail["overrides"].as_array().expect("overrides");
    assert_eq!(overrides.len(), 1, "{detail}");
    assert_eq!(overrides[0]["from"], 1, "{detail}");
    assert_eq!(overrides[0]["to"], 2, "{detail}");
    assert_eq!(overrides[0]["reason"], REASON, "{detail}");
    assert_eq!(overrides[0]["agent"], "anonymous", "{detail}");
    assert_eq!(overrides[0]["channel"], "http", "{detail}");

    // The page refreshes itself: badge 2, the agent marker, the ticket still open.
    eventually("badge 2 and the agent marker", || {
        expect_text(&badge, browser.text_of(&badge)?, "2")?;
        let agent = format!("{ticket} summary .agent");
        expect_text(&agent, browser.text_of(&agent)?, "agent")
    });
    assert!(
        browser
            .attribute(&browser.find(&ticket).unwrap(), "open")
            .unwrap()
            .is_some(),
        "the refresh closed the ticket"
    );
    // The confirmation outlives the refresh that brought the new badge.
    assert_eq!(browser.text_of(&result).unwrap(), "recorded");
    let rule = browser.text_of(&format!("{ticket} .rule")).unwrap();
    assert!(rule.contains("an agent set 2"), "{rule:?}");
    assert_eq!(
        browser.script("return window.firstlineTestMarker").unwrap(),
        "same page",
        "the page was reloaded"
    );
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

#[test]
fn the_queue_page_brings_in_a_new_ticket_and_records_an_override() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let serve = Serve::start_with(
        dir.path(),
        &[],
        &[
            ("FIRSTLINE__HTTP__ADDRESS", &address),
            ("FIRSTLINE_API_TOKENS", ""),
        ],
    );
    let browser = Browser::start(dir.path());
    let http = Http::new();
    let base = format!("http://{address}");
    eventually("serve's /healthz", || {
        match http.send(
            Method::GET,
            &format!("{base}/healthz"),
            None,
            Duration::from_secs(2),
        )? {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    });

    let outcome = catch_unwind(AssertUnwindSafe(|| use_the_page(&browser, &http, &base)));
    if let Err(panic) = outcome {
        let shot = dir.path().join("browser-failure.png");
        let saved = browser
            .screenshot()
            .and_then(|png| std::fs::write(&shot, png).map_err(|e| e.to_string()));
        let page = browser
            .text_of("body")
            .unwrap_or_else(|e| format!("(cannot read the page: {e})"));
        let chromedriver = browser.log_tail();
        let log = serve.log();
        drop(browser);
        drop(serve);
        let kept = dir.keep();
        panic!(
            "{}\n\nscreenshot: {}\nfolder kept: {} (serve.log, chromedriver.log)\n\
             page text:\n{page}\n\nserve log:\n{log}\n{chromedriver}",
            panic_text(&*panic),
            match saved {
                Ok(()) => shot.display().to_string(),
                Err(e) => format!("none ({e})"),
            },
            kept.display(),
        );
    }
    drop(browser);
    drop(serve);
    eprintln!(
        "browser test: passed in {} ms",
        started.elapsed().as_millis()
    );
}
