//! The `firstline` command line: serve, ingest, tickets, classify, eval, check-config.

use std::io::{self, BufRead, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use firstline::app::App;
use firstline::channels::email::Handled;
use firstline::eval;
use firstline::input;
use firstline::settings::Settings;
use firstline::triage::{self, Decision, Facts, Policy, policy::EMBEDDED_POLICY_NAME};

/// Exit code when a check fails (eval below the bar, an invalid policy).
const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code for bad input: an unreadable file, a bad policy path.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "firstline",
    version,
    about = "First-line support triage: proposes the severity your written policy gives a customer message, with the evidence and the questions to ask.",
    after_help = "Examples:\n  firstline serve\n  firstline ingest fixtures/email/server-down.eml\n  firstline tickets --severity 1\n  firstline report --days 7\n  firstline classify fixtures/email/server-down.eml\n  echo 'prod HN pcs3 down!!! all CTs offline' | firstline classify --json\n  firstline eval fixtures/triage/dev.jsonl fixtures/triage/test.jsonl --min-accuracy 95\n  firstline check-config --policy my-policy.toml\n\nExit codes: 0 success, 1 a check failed (eval below the bar, invalid policy), 2 bad input or usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct PolicyArg {
    /// Policy file to use instead of the embedded config/policy.toml.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Settings file layered over the embedded defaults (config/default.toml); also
    /// FIRSTLINE_CONFIG. FIRSTLINE__SECTION__KEY variables override both.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: every channel the settings enable, until SIGINT or SIGTERM.
    #[command(
        after_help = "Examples:\n  firstline serve                      # embedded defaults: ./var spool, store and outbox\n  firstline serve --config prod.toml\n  FIRSTLINE_IMAP_PASSWORD=... FIRSTLINE__EMAIL__INBOUND=imap firstline serve --config prod.toml\n\nWith the embedded defaults, drop a message into ./var/inbox/new/ and read the reply in ./var/outbox/; the queue page and the API are at http://127.0.0.1:8025/. Discord is off until [discord] is configured and FIRSTLINE_DISCORD_TOKEN is set."
    )]
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Take one raw email (a file or standard input), triage it into its ticket and send the
    /// reply; for an MTA that pipes mail to a command.
    #[command(
        after_help = "Examples:\n  firstline ingest fixtures/email/server-down.eml\n  firstline ingest - < message.eml\n\nExit codes: 0 recorded (triaged, a duplicate, or quarantined with its reason), 75 the store is unavailable (an MTA retries later), 2 bad usage."
    )]
    Ingest {
        /// The raw message; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Agreement between the severity firstline proposed and the final one (an agent's
    /// override is the ground truth), per proposed level, over a time window.
    #[command(after_help = "Examples:\n  firstline report\n  firstline report --days 7 --json")]
    Report {
        /// Tickets created in the last DAYS days.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the queue: tickets by severity, then age.
    #[command(
        after_help = "Examples:\n  firstline tickets\n  firstline tickets --severity 1 --json"
    )]
    Tickets {
        /// Only tickets of this severity.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
        severity: Option<u8>,
        /// Print the tickets as a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Classify one message (plain text or a raw .eml, detected), or a batch with --jsonl.
    #[command(
        after_help = "Examples:\n  firstline serve\n  firstline ingest fixtures/email/server-down.eml\n  firstline tickets --severity 1\n  firstline classify fixtures/email/server-down.eml\n  echo 'the backup of CT 101 failed last night' | firstline classify --json\n  printf '%s\\n' '{\"id\":\"a\",\"text\":\"Power Panel is down for everyone\"}' | firstline classify --jsonl\n\nWith --jsonl each input line is {\"id\": ..., \"text\": ...} or {\"id\": ..., \"eml\": \"<raw RFC 5322 message>\"}; each output line is the decision with its id, or {\"id\": ..., \"error\": ...} for a bad line (the batch goes on)."
    )]
    Classify {
        /// The message file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Print one JSON object (the classify contract) instead of the readable report.
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Batch mode: one JSON input object per line, one JSON output line per input, in order.
        #[arg(long)]
        jsonl: bool,
        #[command(flatten)]
        policy: PolicyArg,
    },
    /// Measure accuracy on labelled cases (.jsonl with "expected" severities).
    #[command(
        after_help = "Example:\n  firstline eval fixtures/triage/dev.jsonl fixtures/triage/test.jsonl --min-accuracy 92 --min-level1-recall 95\n\nEach file is reported as a split (name of the file without .jsonl), with per-language lines when the cases carry \"lang\"."
    )]
    Eval {
        /// Files of labelled cases, one JSON object per line.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Exit 1 when exact severity accuracy over all cases is below this percentage.
        #[arg(long, value_name = "PERCENT")]
        min_accuracy: Option<f64>,
        /// Exit 1 when the recall of level-1 cases is below this percentage.
        #[arg(long, value_name = "PERCENT")]
        min_level1_recall: Option<f64>,
        /// Print the summary and every outcome as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        policy: PolicyArg,
    },
    /// Validate a policy file and list every error with its line; exit 1 when there are any.
    #[command(
        name = "check-config",
        after_help = "Examples:\n  firstline check-config\n  firstline check-config --policy config/policy.toml\n\nA valid policy is reported with its counts, and with a note naming the patterns that have no fixed first words: each of those is searched over every whole message, which is slow."
    )]
    CheckConfig {
        #[command(flatten)]
        policy: PolicyArg,
    },
}

/// `println!` that hands a write error (a reader that closed the pipe, as `| head` does) back
/// to the caller instead of panicking; `main` treats a broken pipe as a normal end.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(io::stdout().lock(), $($arg)*)
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // A reader that stops early (`| head`) is not an error worth reporting.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("firstline: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn load_policy(arg: &PolicyArg) -> Result<Policy, ExitCode> {
    let result = match &arg.policy {
        // A policy that cannot be read (missing, a directory, not UTF-8) is bad input; one
        // that reads but does not check out is a failed check.
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => {
                eprintln!("firstline: cannot read policy {}: {e}", path.display());
                return Err(ExitCode::from(EXIT_BAD_INPUT));
            }
            Ok(src) => Policy::from_toml(&src, &path.display().to_string()),
        },
        None => Policy::from_toml(triage::policy::EMBEDDED_POLICY, EMBEDDED_POLICY_NAME),
    };
    result.map_err(|errors| {
        eprint!("firstline: {errors}");
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

/// Exit code for a temporary failure (sysexits EX_TEMPFAIL): an MTA retries the delivery.
const EXIT_TEMPFAIL: u8 = 75;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIRSTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn load_app(config: &ConfigArg) -> Result<App, ExitCode> {
    let settings = match Settings::load(config.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("firstline: {e}");
            return Err(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    App::build(settings).map_err(|e| {
        eprintln!("firstline: {e}");
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

/// A stable name for a message given to `ingest`: its Message-ID, else a hash of its bytes
/// ([`firstline::store::fingerprint`]), so piping the same message twice records it once.
fn ingest_source(raw: &[u8]) -> String {
    let id = firstline::channels::email::parse::parse_email(raw)
        .ok()
        .and_then(|p| p.message_id);
    match id {
        Some(id) => format!("ingest:<{id}>"),
        None => format!("ingest:{}", firstline::store::fingerprint(raw)),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            init_logging();
            let app = match load_app(&config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            runtime()?.block_on(app.serve(firstline::app::shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { file, config } => {
            init_logging();
            let raw = read_input(file.as_deref())?;
            let app = match load_app(&config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            let source = ingest_source(&raw);
            match runtime()?.block_on(app.ingest(&raw, &source)) {
                Ok(Handled::Triaged(r)) => {
                    out!(
                        "{}-{}: severity {} ({}), rule {}; {}",
                        app.settings.email.ticket_prefix,
                        r.ticket_id,
                        r.severity,
                        app.policy.level_name(r.severity),
                        r.decision.rule,
                        r.reply
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Handled::Duplicate) => {
                    out!("already recorded ({source}); nothing done")?;
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Handled::Quarantined(reason)) => {
                    out!("quarantined: {reason}")?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("firstline: {e}");
                    Ok(ExitCode::from(EXIT_TEMPFAIL))
                }
            }
        }
        Command::Report { days, json, config } => {
            let app = match load_app(&config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            let r = firstline::channels::http::page::report(&app.store, days)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&r)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out!(
                "Last {days} days: {} of {} tickets kept firstline's severity ({}%).",
                r["kept"],
                r["tickets"],
                r["agreement"]
            )?;
            if let Some(levels) = r["levels"].as_array().filter(|l| !l.is_empty()) {
                out!("proposed  tickets  kept  agreement  final levels")?;
                for l in levels {
                    let finals: Vec<String> = l["final"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect();
                    out!(
                        "{:>8}  {:>7}  {:>4}  {:>8}%  {}",
                        l["proposed"].to_string(),
                        l["tickets"].to_string(),
                        l["kept"].to_string(),
                        l["agreement"].to_string(),
                        finals.join(" ")
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tickets {
            severity,
            json,
            config,
        } => {
            let app = match load_app(&config) {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            let tickets = app.store.tickets(severity)?;
            let stdout = io::stdout();
            let mut out = stdout.lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &tickets)?;
                writeln!(out)?;
            } else if tickets.is_empty() {
                writeln!(out, "no tickets")?;
            } else {
                let prefix = &app.settings.email.ticket_prefix;
                for t in &tickets {
                    let who = t.customer.as_deref().unwrap_or("-");
                    let subject = t.subject.as_deref().unwrap_or("(no subject)");
                    let overridden = if t.override_severity.is_some() {
                        " (agent)"
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "{prefix}-{:<5} {} {:<8}{overridden} {:<28} {subject}  [{} msg, {}]",
                        t.id,
                        t.severity,
                        app.policy.level_name(t.severity),
                        who,
                        t.messages,
                        t.rule
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { policy } => {
            let name = policy
                .policy
                .as_ref()
                .map_or(EMBEDDED_POLICY_NAME.to_string(), |p| {
                    p.display().to_string()
                });
            match load_policy(&policy) {
                Ok(p) => {
                    out!(
                        "{name}: ok ({} attributes, {} patterns, {} rules, {} notes, {} questions)",
                        p.attributes.len(),
                        p.patterns.len(),
                        p.rules.len() + 1,
                        p.notes.len(),
                        p.questions.len()
                    )?;
                    let slow = &p.anchors.unanchored;
                    if !slow.is_empty() {
                        out!(
                            "note: {} pattern(s) have no fixed first words, so each is searched over every whole message (slower than the others); starting them with words makes them cheap:",
                            slow.len()
                        )?;
                        for &i in slow {
                            let pat = &p.patterns[i];
                            let lang = pat
                                .language
                                .map_or(triage::lang::BASE, |l| p.languages[l].code.as_str());
                            let shown: String = pat.source.chars().take(100).collect();
                            out!(
                                "  {} [{lang}]: {shown}{}",
                                p.attributes[pat.attribute].name,
                                if shown.len() < pat.source.len() {
                                    "…"
                                } else {
                                    ""
                                }
                            )?;
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(code) => Ok(code),
            }
        }
        Command::Classify {
            file,
            json,
            jsonl,
            policy,
        } => {
            let policy = match load_policy(&policy) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            if jsonl {
                classify_batch(&policy, file.as_deref())?;
                return Ok(ExitCode::SUCCESS);
            }
            let raw = read_input(file.as_deref())?;
            let text = input::message_text(&raw).context("cannot read the message")?;
            let (facts, decision) = triage::triage(&policy, &text);
            let stdout = io::stdout();
            let mut out = stdout.lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &decision.to_json(None))?;
                writeln!(out)?;
            } else {
                let color = io::stdout().is_terminal();
                write!(
                    out,
                    "{}",
                    render_decision(&policy, &facts, &decision, color)
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            files,
            min_accuracy,
            min_level1_recall,
            json,
            policy,
        } => {
            let policy = match load_policy(&policy) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let mut outcomes = Vec::new();
            let mut checks = 0;
            for path in &files {
                let cases = eval::load_cases(path)?;
                checks += eval::attribute_checks(&cases);
                let split = path
                    .file_stem()
                    .map_or("cases".into(), |s| s.to_string_lossy().into_owned());
                outcomes.extend(eval::run(&policy, &split, &cases));
            }
            if outcomes.is_empty() {
                // No case, no score: an empty file must not pass every bar.
                anyhow::bail!("no labelled cases in the given files");
            }
            let levels: Vec<u8> = policy.level_names.keys().copied().collect();
            let all: Vec<&eval::Outcome> = outcomes.iter().collect();
            let summary = eval::summarize(&levels, &all);
            if json {
                let v = json!({"summary": summary, "outcomes": outcomes});
                out!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                print!("{}", eval::render(&levels, &outcomes, checks));
            }
            let mut failed = false;
            if let Some(bar) = min_accuracy
                && summary.accuracy * 100.0 < bar
            {
                eprintln!(
                    "firstline: accuracy {:.1}% is below --min-accuracy {bar}%",
                    summary.accuracy * 100.0
                );
                failed = true;
            }
            if let Some(bar) = min_level1_recall {
                let recall = summary.per_level.get(&1).map_or(1.0, |(_, r, _)| *r);
                if recall * 100.0 < bar {
                    eprintln!(
                        "firstline: level-1 recall {:.1}% is below --min-level1-recall {bar}%",
                        recall * 100.0
                    );
                    failed = true;
                }
            }
            Ok(if failed {
                ExitCode::from(EXIT_CHECK_FAILED)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    match file {
        None => io::stdin().read_to_end(&mut raw).map(|_| ())?,
        Some(p) if p == Path::new("-") => io::stdin().read_to_end(&mut raw).map(|_| ())?,
        Some(p) => {
            raw = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
    }
    if String::from_utf8_lossy(&raw).trim().is_empty() {
        bail!("the message is empty");
    }
    Ok(raw)
}

/// One `--jsonl` input line → one output line. A bad line gets an error object.
fn classify_line(policy: &Policy, line: &str) -> Value {
    let parsed: Result<Value, _> = serde_json::from_str(line);
    let obj = match parsed {
        Ok(Value::Object(o)) => o,
        Ok(_) => return json!({"id": null, "error": "the line is not a JSON object"}),
        Err(e) => return json!({"id": null, "error": format!("invalid JSON: {e}")}),
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    if id.is_null() {
        return json!({"id": null, "error": "missing \"id\""});
    }
    let text = match (obj.get("text"), obj.get("eml")) {
        (Some(Value::String(t)), None) if t.trim().is_empty() => {
            Err("\"text\" is empty".to_string())
        }
        (Some(Value::String(t)), None) => Ok(t.clone()),
        (None, Some(Value::String(e))) => {
            input::email_text(e.as_bytes()).map_err(|e| format!("bad \"eml\": {e}"))
        }
        (Some(_), Some(_)) => Err("give either \"text\" or \"eml\", not both".to_string()),
        (Some(_), None) => Err("\"text\" must be a string".to_string()),
        (None, Some(_)) => Err("\"eml\" must be a string".to_string()),
        (None, None) => Err("missing \"text\" or \"eml\"".to_string()),
    };
    match text {
        Ok(text) => {
            // A defect in the engine must not end the batch: that line gets an error object.
            let decided = std::panic::catch_unwind(|| triage::triage(policy, &text).1);
            match decided {
                Ok(d) => d.to_json(Some(id)),
                Err(_) => {
                    json!({"id": id, "error": "internal error while classifying this message"})
                }
            }
        }
        Err(e) => json!({"id": id, "error": e}),
    }
}

fn classify_batch(policy: &Policy, file: Option<&Path>) -> Result<()> {
    let mut reader: Box<dyn BufRead> = match file {
        None => Box::new(io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(io::stdin().lock()),
        Some(p) => Box::new(io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
    };
    let progress = io::stderr().is_terminal();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut n = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .context("cannot read the input")?
            == 0
        {
            break;
        }
        // A line that is not UTF-8 gets an error object; the batch goes on.
        let v = match std::str::from_utf8(&buf) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => classify_line(policy, line),
            Err(e) => json!({"id": null, "error": format!("the line is not UTF-8: {e}")}),
        };
        serde_json::to_writer(&mut out, &v)?;
        out.write_all(b"\n")?;
        n += 1;
        if progress && n.is_multiple_of(1000) {
            eprint!("\rclassified {n} messages");
        }
    }
    out.flush()?;
    if progress && n >= 1000 {
        eprintln!("\rclassified {n} messages");
    }
    Ok(())
}

/// The readable report: severity, why, the facts with their words, the message with the
/// evidence marked, the questions and the labels.
fn render_decision(policy: &Policy, facts: &Facts, d: &Decision, color: bool) -> String {
    let (on, off) = if color {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("[[", "]]")
    };
    let mut s = String::new();
    let name = &d.severity_name;
    s.push_str(&format!(
        "Severity {} ({name}), rule {}, confidence {:.2}\n",
        d.severity, d.rule, d.confidence
    ));
    for n in &d.notes {
        s.push_str(&format!(
            "  step B: {} → {} by note '{}'\n",
            n.from, n.to, n.id
        ));
    }
    if d.language != firstline::triage::lang::BASE {
        s.push_str(&format!("  language: {}\n", d.language));
    }
    s.push_str(&format!("\nWhy: {}\n", d.rationale));
    if !d.attributes.is_empty() {
        s.push_str("\nFacts:\n");
        for (k, v) in &d.attributes {
            let words: Vec<String> = facts
                .by_name(policy, k)
                .map(|f| {
                    f.evidence
                        .iter()
                        .map(|e| format!("\"{}\"", e.text))
                        .collect()
                })
                .unwrap_or_default();
            s.push_str(&format!("  {k} = {v}"));
            if !words.is_empty() {
                s.push_str(&format!("   ({})", words.join(", ")));
            }
            s.push('\n');
        }
    }
    if !d.evidence.is_empty() {
        s.push_str("\nIn the message:\n");
        let text = &facts.text;
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut sorted: Vec<(usize, usize)> = d.evidence.iter().map(|e| (e.start, e.end)).collect();
        sorted.sort_unstable();
        // Overlapping evidence is marked as one stretch.
        for (a, b) in sorted {
            match spans.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => spans.push((a, b)),
            }
        }
        let mut line_start = 0;
        for line in text.split('\n') {
            let line_end = line_start + line.len();
            let inside: Vec<(usize, usize)> = spans
                .iter()
                .copied()
                .filter(|&(a, b)| a >= line_start && b <= line_end)
                .collect();
            if !inside.is_empty() {
                let mut marked = String::new();
                let mut at = line_start;
                for (a, b) in inside {
                    marked.push_str(&text[at..a]);
                    marked.push_str(on);
                    marked.push_str(&text[a..b]);
                    marked.push_str(off);
                    at = b;
                }
                marked.push_str(&text[at..line_end]);
                s.push_str(&format!("  | {marked}\n"));
            }
            line_start = line_end + 1;
        }
    }
    if !d.questions.is_empty() {
        s.push_str("\nQuestions for the customer:\n");
        for q in &d.questions {
            s.push_str(&format!("  - [{}] {}\n", q.id, q.text));
        }
    }
    s.push_str(&format!("\nLabels: {}\n", d.labels.join(", ")));
    s
}
