//! The Maildir spool: the embedded default's inbound mailbox. A message delivered into
//! `new/` is processed, then moved to `cur/`; the store remembers it by file name, so a crash
//! between the two never processes it twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{EmailChannel, Handled};

/// The spool's folders, created when missing.
pub fn prepare(root: &Path) -> std::io::Result<()> {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    Ok(())
}

/// The unique part of a Maildir file name (before the `:2,` info suffix).
fn unique_name(file: &str) -> &str {
    file.split(':').next().unwrap_or(file)
}

/// Processes every message waiting in `new/`, oldest name first. Returns how many were
/// handled (triaged, duplicates or quarantined) and whether replies were queued.
pub fn drain(channel: &EmailChannel, root: &Path, stop: &dyn Fn() -> bool) -> (usize, bool) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(root.join("new")) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => {
            tracing::error!(path = %root.display(), error = %e, "cannot read the spool");
            return (0, false);
        }
    };
    files.sort();
    let mut handled = 0;
    let mut queued = false;
    for path in files {
        if stop() {
            break;
        }
        let Some(file) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let source = format!("maildir:{}", unique_name(&file));
        // Over the size limit: quarantined without reading it into memory.
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let outcome = if size > channel.max_bytes {
            channel.too_large(&source, size, None, None)
        } else {
            match std::fs::read(&path) {
                Ok(raw) => channel.receive(&raw, &source, None, None),
                Err(e) => {
                    tracing::warn!(file, error = %e, "cannot read a spool file; will retry");
                    continue;
                }
            }
        };
        match outcome {
            Ok(outcome) => {
                if let Handled::Triaged(r) = &outcome {
                    queued |= !r.queued.is_empty();
                    tracing::info!(file, ticket = r.ticket_id, severity = r.severity, reply = %r.reply, "triaged");
                }
                handled += 1;
                let flags = if matches!(outcome, Handled::Quarantined(_)) {
                    "2,F"
                } else {
                    "2,S"
                };
                let target = root
                    .join("cur")
                    .join(format!("{}:{flags}", unique_name(&file)));
                if let Err(e) = std::fs::rename(&path, &target) {
                    tracing::error!(file, error = %e, "processed but cannot move to cur/");
                }
            }
            Err(e) => {
                // The store failed: leave the file in new/ and stop this pass; it is tried again.
                tracing::error!(file, error = %e, "store error; the message stays in the spool");
                break;
            }
        }
    }
    (handled, queued)
}

/// Watches the spool until shutdown, waking the sender when replies were queued.
pub async fn run(
    channel: Arc<EmailChannel>,
    root: PathBuf,
    poll: Duration,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (ch, r, stop) = (channel.clone(), root.clone(), shutdown.clone());
        // Triage is CPU work and the store is blocking I/O: keep them off the async threads.
        let queued = tokio::task::spawn_blocking(move || drain(&ch, &r, &|| *stop.borrow()).1)
            .await
            .unwrap_or(false);
        if queued {
            wake.notify_one();
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}
