//! The triage engine through its library API, one test per behaviour of the severity policy
//! (shared/severity-policy.md and docs/policy-decisions.md).

use firstline::triage::{Decision, classify, extract, triage};
use serde_json::Value;

use crate::POLICY;

fn decide(message: &str) -> Decision {
    triage(&POLICY, message).1
}

/// A one-line summary for failure messages.
fn show(d: &Decision) -> String {
    format!(
        "severity {} by {} (base {}, notes {:?}), attributes {}, questions {:?}, labels {:?}",
        d.severity,
        d.rule,
        d.base_level,
        d.notes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        Value::Object(d.attributes.clone()),
        questions(d),
        d.labels
    )
}

fn flag(d: &Decision, name: &str) -> Option<bool> {
    d.attributes.get(name).and_then(Value::as_bool)
}

fn value<'a>(d: &'a Decision, name: &str) -> Option<&'a str> {
    d.attributes.get(name).and_then(Value::as_str)
}

fn questions(d: &Decision) -> Vec<&str> {
    d.questions.iter().map(|q| q.id.as_str()).collect()
}

fn asks(d: &Decision, id: &str) -> bool {
    d.questions.iter().any(|q| q.id == id)
}

// Messages of the tests below; the label test runs over all of them.
const NEGATION: &str = "The server is not down, only slow.";
const NO_WORKAROUND: &str = "Our production node hn2 is down and there is no workaround.";
const PAST_OUTAGE: &str = "Our server was down yesterday, it is fine now.";
const DOES_NOT_BOOT: &str = "Our server doesn't boot anymore.";
const DOMAIN_WORDS: &str = "prod HN pcs3 down!!! all CTs offline";
const LAB: &str = "our staging node is down";
const WORKAROUND: &str = "Our production node hn3 is down. A reboot helps for a few hours.";
const INTERMITTENT: &str = "The vz service on our production node crashes randomly.";
const ONE_BACKUP: &str = "The backup fails for only one container, CT 101.";
const ALL_BACKUPS: &str = "Backups fail for all containers.";
const HARDWARE: &str = "node down, RAID controller died";
const NEW_INSTALL: &str =
    "We just installed Virtuozzo 7 on a new server and the prl-disp service crashes on start.";
const AFTER_UPDATE: &str = "After installing the latest updates, new containers cannot be created.";
const INTEGRATION: &str = "The WHMCS module cannot create VPS anymore.";
const COSMETIC: &str = "There is a typo on the Power Panel login page: it says 'Pasword'.";
const FEATURE: &str =
    "Feature request: please add an option to export the list of containers as CSV.";
const HOW_TO: &str = "How do I change the IP address of a container?";
const MIXED: &str =
    "The Power Panel is down for all users. Also, how do I change the language of the panel?";
const VAGUE: &str = "Hi, we have a problem, please help.";
const SIGNATURE_PHONE: &str =
    "Our production node hn1 is down!\n\nBest regards,\nJohn Smith\n+49 30 1234567\n";
const TEMPLATE: &str = "**Describe the bug**
A clear and concise description of what the bug is.

There is a typo on the Power Panel login page: it says \"Pasword\" instead of \"Password\".

**Steps to reproduce**
1. Go to ...
2. Click on ...
3. See error

**Expected behavior**
A clear and concise description of what you expected to happen.

- [ ] I have searched the existing issues
- [ ] This issue is a crash
";
const LOG_VS_WORDS: &str = "Our backups work fine, I only want to ask about retention.

    error: backup failed
";
const QUOTED: &str = "Same here, any news?

On Mon, 3 Mar 2025 at 10:12, Ops Team <ops@example.com> wrote:
> Hello,
> all containers on node 7 are down.
> Please help.
";
const THREAD_1: &str = "Our VPS 101 is down.";
const THREAD_2: &str = "yes it's our production webshop";

// "not down" negates the outage: slowness must not be triaged as a host down.
#[test]
fn negation_cancels_the_outage() {
    let d = decide(NEGATION);
    assert_ne!(flag(&d, "server_down"), Some(true), "{}", show(&d));
    assert_ne!(d.severity, 1, "{}", show(&d));
}

// "no workaround" is an answer (false), so the bot must not ask for one again.
#[test]
fn no_workaround_is_workaround_false() {
    let d = decide(NO_WORKAROUND);
    assert_eq!(flag(&d, "workaround"), Some(false), "{}", show(&d));
    assert!(!asks(&d, "workaround"), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// Decision 2: an outage that is over is not a current outage; it is root-cause work (3).
#[test]
fn past_outage_that_is_over_is_not_current() {
    let d = decide(PAST_OUTAGE);
    assert_eq!(d.severity, 3, "{}", show(&d));
    assert_ne!(flag(&d, "server_down"), Some(true), "{}", show(&d));
    assert_eq!(d.rule, "s3.resolved", "{}", show(&d));
    assert_eq!(flag(&d, "workaround"), Some(true), "{}", show(&d));
}

// "doesn't boot" holds a negation but is the symptom itself, not its negation.
#[test]
fn doesnt_boot_is_a_symptom_not_a_negation() {
    let d = decide(DOES_NOT_BOOT);
    assert_eq!(flag(&d, "wont_boot"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// HN = server, CT = container, pcs = Parallels Cloud Server, "prod" = production.
#[test]
fn domain_vocabulary_reads_a_terse_outage_as_level_1() {
    let d = decide(DOMAIN_WORDS);
    assert_eq!(d.severity, 1, "{}", show(&d));
    assert_eq!(value(&d, "environment"), Some("production"), "{}", show(&d));
}

// Step B: a lab/staging system does not impact service, 1 becomes 3.
#[test]
fn non_production_lowers_an_outage_to_3() {
    let d = decide(LAB);
    assert_eq!(d.severity, 3, "{}", show(&d));
    assert_eq!(
        value(&d, "environment"),
        Some("non_production"),
        "{}",
        show(&d)
    );
    assert_eq!(d.base_level, 1, "{}", show(&d));
}

// Step B: "a reboot helps for a few hours" restores the service, so 1 becomes 3.
#[test]
fn workaround_lowers_an_outage_to_3() {
    let d = decide(WORKAROUND);
    assert_eq!(flag(&d, "workaround"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
    assert_eq!(d.base_level, 1, "{}", show(&d));
    assert!(d.notes.iter().any(|n| n.id == "workaround"), "{}", show(&d));
}

// Step B: an intermittent problem is not stably reproducible, 1 becomes 3.
#[test]
fn intermittent_lowers_an_outage_to_3() {
    let d = decide(INTERMITTENT);
    assert_eq!(flag(&d, "intermittent"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
    assert_eq!(d.base_level, 1, "{}", show(&d));
}

// A failure that recurs every few minutes is going on all the time: not intermittent, not
// lowered. One that recurs every few days is intermittent (docs/policy-decisions.md).
#[test]
fn a_reboot_loop_of_minutes_is_an_outage_not_intermittent() {
    for text in [
        "Our production node hn4 reboots every 5 minutes, all containers go down with it.",
        "Notre serveur de production redémarre toutes les 5 minutes.",
        "El nodo de producción se reinicia cada 5 minutos.",
        "Продакшн нода перезагружается каждые 5 минут.",
    ] {
        let d = decide(text);
        // Never read as intermittent; the English policy says so outright (decision 103:
        // a restart every few minutes is `intermittent = false`), the packs stay silent.
        assert_ne!(flag(&d, "intermittent"), Some(true), "{text}: {}", show(&d));
        assert_eq!(d.severity, 1, "{text}: {}", show(&d));
    }
    let d = decide("Our production node hn4 reboots every 5 minutes.");
    assert_eq!(flag(&d, "intermittent"), Some(false), "{}", show(&d));
    let d = decide("Our production node crashes every few days.");
    assert_eq!(flag(&d, "intermittent"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// The seed: "backup of a specific container is not created" is Normal (3).
#[test]
fn backup_failure_of_only_one_container_is_3() {
    let d = decide(ONE_BACKUP);
    assert_eq!(flag(&d, "backup_failed"), Some(true), "{}", show(&d));
    assert_eq!(value(&d, "scope"), Some("some"), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// Backup creation broken for everyone is a whole function down: High (2).
#[test]
fn backup_failure_for_all_containers_is_2() {
    let d = decide(ALL_BACKUPS);
    assert_eq!(flag(&d, "backup_failed"), Some(true), "{}", show(&d));
    assert_eq!(value(&d, "scope"), Some("many"), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// The level-1 server criterion excludes hardware faults.
#[test]
fn hardware_fault_is_never_level_1() {
    let d = decide(HARDWARE);
    assert_eq!(flag(&d, "hardware_fault"), Some(true), "{}", show(&d));
    assert_ne!(d.severity, 1, "{}", show(&d));
}

// A new installation runs nothing in production: 2, even when virtualization crashes.
#[test]
fn new_installation_that_crashes_is_2_never_1() {
    let d = decide(NEW_INSTALL);
    assert_eq!(flag(&d, "new_installation"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
    assert_eq!(d.rule, "s2.new_installation", "{}", show(&d));
}

// After-update rule: 2, and the rollback answer is needed (the policy's own example:
// "new containers cannot be created"). Installing updates on a live server is an update,
// not a new installation.
#[test]
fn after_update_with_rollback_unknown_is_2_and_asks_rollback() {
    let d = decide(AFTER_UPDATE);
    assert_eq!(flag(&d, "after_update"), Some(true), "{}", show(&d));
    assert_ne!(flag(&d, "new_installation"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
    assert_eq!(d.rule, "s2.after_update", "{}", show(&d));
    assert!(asks(&d, "rollback"), "{}", show(&d));
}

// Integration issues are Normal (3), even when a function fails through them.
#[test]
fn integration_failure_is_3() {
    let d = decide(INTEGRATION);
    assert_eq!(flag(&d, "integration"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
    assert_eq!(d.rule, "s3.integration", "{}", show(&d));
}

// A typo blocks nobody: Enhancement (4).
#[test]
fn cosmetic_typo_is_4() {
    let d = decide(COSMETIC);
    assert_eq!(flag(&d, "cosmetic"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// A feature request is Enhancement (4).
#[test]
fn feature_request_is_4() {
    let d = decide(FEATURE);
    assert_eq!(flag(&d, "enhancement"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// A how-to question with no failure is Enhancement (4); "change" is not "hang".
#[test]
fn how_to_question_is_4() {
    let d = decide(HOW_TO);
    assert_eq!(flag(&d, "question"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
    assert_eq!(d.rule, "s4.request", "{}", show(&d));
}

// Decision 8: a question next to a current failure does not lower the failure's level.
#[test]
fn failure_and_question_in_one_message_take_the_failures_level() {
    let d = decide(MIXED);
    assert_eq!(flag(&d, "component_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// Nothing matched: default 3, and ask what is failing.
#[test]
fn vague_message_is_3_and_asks_for_details() {
    let d = decide(VAGUE);
    assert_eq!(d.severity, 3, "{}", show(&d));
    assert_eq!(d.rule, "s3.default", "{}", show(&d));
    assert!(asks(&d, "details"), "{}", show(&d));
}

// The phone number may be taken from the signature, normalized to E.164; then the
// customer is not asked for it.
#[test]
fn phone_in_the_signature_is_found_and_not_asked_for() {
    let d = decide(SIGNATURE_PHONE);
    assert_eq!(
        value(&d, "contact_phone"),
        Some("+49301234567"),
        "{}",
        show(&d)
    );
    assert!(!asks(&d, "phone"), "{}", show(&d));
    assert!(!d.labels.iter().any(|l| l == "needs:phone"), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// Decision 9: template headings, placeholders and unchecked boxes ("bug", "crash",
// "issue") are not the customer's words; the answer (a typo) decides: 4.
#[test]
fn issue_template_words_do_not_count_as_a_failure() {
    let d = decide(TEMPLATE);
    assert_eq!(flag(&d, "cosmetic"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// Decision 122: a web form's answers are read with their labels. A checked box or a short
// answer under "**Is there a workaround?**" answers that question; the labels alone, and the
// unchecked boxes, say nothing.
#[test]
fn form_answers_are_read_with_their_labels() {
    let form = |production: [char; 2], workaround: [char; 2], down: &str| {
        format!(
            "**Is this a production system?**\n- [{}] Yes\n- [{}] No\n\n\
             **Is there a workaround?**\n- [{}] Yes\n- [{}] No\n\n\
             **Is the server down?**\n{down}\n\n\
             **Describe the problem**\nSince Monday the backup of CT 101 fails with a timeout.\n",
            production[0], production[1], workaround[0], workaround[1]
        )
    };
    // A lab, a workaround, the server up: the answers decide each attribute.
    let d = decide(&form([' ', 'x'], ['x', ' '], "No"));
    assert_eq!(
        value(&d, "environment"),
        Some("non_production"),
        "{}",
        show(&d)
    );
    assert_eq!(flag(&d, "workaround"), Some(true), "{}", show(&d));
    assert_eq!(flag(&d, "server_down"), Some(false), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
    // The opposite boxes give the opposite facts.
    let d = decide(&form(['x', ' '], [' ', 'x'], "Yes"));
    assert_eq!(value(&d, "environment"), Some("production"), "{}", show(&d));
    assert_eq!(flag(&d, "workaround"), Some(false), "{}", show(&d));
    assert_eq!(flag(&d, "server_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
    // Nothing ticked, nothing answered: the labels make no fact.
    let d = decide(&form([' ', ' '], [' ', ' '], ""));
    assert_eq!(value(&d, "environment"), None, "{}", show(&d));
    assert_eq!(flag(&d, "workaround"), None, "{}", show(&d));
    assert_eq!(flag(&d, "server_down"), None, "{}", show(&d));
    // The same question answered inline.
    let d = decide("Backups of CT 101 fail. Is there a workaround? Yes, a manual start works.");
    assert_eq!(flag(&d, "workaround"), Some(true), "{}", show(&d));
    // Boxes inside a line: the ticked choice answers, the unticked ones say nothing.
    let d = decide(
        "Type of request: [x] Incident  [ ] Question\n\
         Is this a production system? [ ] No [x] Yes\n\
         What happens: the node hn-4 is down, no ping, no ssh.\n\
         Workaround: [ ] Yes [x] No\n",
    );
    assert_eq!(flag(&d, "workaround"), Some(false), "{}", show(&d));
    assert_eq!(value(&d, "environment"), Some("production"), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
    // A line of choices under a label, the unticked one first.
    let d =
        decide("The node hn-4 is down, no ping.\n\n**Is there a workaround?**\n[ ] Yes [x] No\n");
    assert_eq!(flag(&d, "workaround"), Some(false), "{}", show(&d));
}

// The sender's own words ("backups work fine") beat a pasted log line.
#[test]
fn own_words_beat_a_pasted_log_line() {
    let d = decide(LOG_VS_WORDS);
    assert_ne!(flag(&d, "backup_failed"), Some(true), "{}", show(&d));
    assert_ne!(d.severity, 2, "{}", show(&d));
}

// "Same here" holds no fact, so the quoted message is read: every container on a node
// down is a level-1 outage.
#[test]
fn reply_without_facts_reads_the_quoted_text() {
    let d = decide(QUOTED);
    assert_eq!(d.severity, 1, "{}", show(&d));
    assert!(
        flag(&d, "virtualization_down") == Some(true) || flag(&d, "server_down") == Some(true),
        "{}",
        show(&d)
    );
}

// Host names are often a single digit ("node 7"); the outage must still be seen.
#[test]
fn single_digit_node_name_is_still_a_server() {
    let d = decide("Our node 7 is down.");
    assert_eq!(flag(&d, "server_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// Present-tense failure words show the failure is happening now: no `reproducible`
// question; a report only in the past tense gets it (policy decisions, Questions).
#[test]
fn only_a_past_tense_failure_is_asked_if_reproducible() {
    let cases = [
        (ALL_BACKUPS, false),
        ("Since the kernel update, container creation fails.", false),
        ("Backups of all containers failed last night.", true),
    ];
    let mut wrong = Vec::new();
    for (msg, should_ask) in cases {
        let d = decide(msg);
        if d.severity != 2 || asks(&d, "reproducible") != should_ask {
            wrong.push(format!("{msg:?} (should ask: {should_ask}): {}", show(&d)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// A thread: the answer "yes, production webshop" fills in business criticality, and the
// merged facts of the thread are re-triaged from provisional 2 to 1.
#[test]
fn facts_merge_answers_the_business_critical_question() {
    let mut facts = extract(&POLICY, THREAD_1);
    let first = classify(&POLICY, &facts);
    assert_eq!(first.severity, 2, "{}", show(&first));
    assert!(asks(&first, "business_critical"), "{}", show(&first));

    let answer = extract(&POLICY, THREAD_2);
    facts.merge(&answer);
    let merged = classify(&POLICY, &facts);
    assert_eq!(
        flag(&merged, "business_critical"),
        Some(true),
        "{}",
        show(&merged)
    );
    assert_eq!(
        flag(&merged, "ve_unavailable"),
        Some(true),
        "{}",
        show(&merged)
    );
    assert_eq!(merged.severity, 1, "{}", show(&merged));
    assert!(!asks(&merged, "business_critical"), "{}", show(&merged));
}

// Evidence offsets point into the normalized text: the slice is the evidence text.
#[test]
fn evidence_offsets_slice_the_normalized_text() {
    for msg in [DOMAIN_WORDS, WORKAROUND, SIGNATURE_PHONE, MIXED] {
        let (facts, d) = triage(&POLICY, msg);
        assert!(!d.evidence.is_empty(), "{msg}: {}", show(&d));
        for e in &d.evidence {
            assert!(e.start < e.end, "{msg}: {e:?}");
            assert_eq!(
                facts.text.get(e.start..e.end),
                Some(e.text.as_str()),
                "{msg}: {e:?}"
            );
        }
    }
}

// The queue is filtered by labels: each decision carries severity:N and needs:<id> for
// every question it asks.
#[test]
fn labels_carry_the_severity_and_every_question() {
    let all = [
        NEGATION,
        NO_WORKAROUND,
        PAST_OUTAGE,
        DOES_NOT_BOOT,
        DOMAIN_WORDS,
        LAB,
        WORKAROUND,
        INTERMITTENT,
        ONE_BACKUP,
        ALL_BACKUPS,
        HARDWARE,
        NEW_INSTALL,
        AFTER_UPDATE,
        INTEGRATION,
        COSMETIC,
        FEATURE,
        HOW_TO,
        MIXED,
        VAGUE,
        SIGNATURE_PHONE,
        TEMPLATE,
        LOG_VS_WORDS,
        QUOTED,
        THREAD_1,
        THREAD_2,
    ];
    let mut asked_any = false;
    for msg in all {
        let d = decide(msg);
        let severity = format!("severity:{}", d.severity);
        assert!(d.labels.contains(&severity), "{msg}: {}", show(&d));
        assert_eq!(
            d.labels
                .iter()
                .filter(|l| l.starts_with("severity:"))
                .count(),
            1,
            "{msg}: {}",
            show(&d)
        );
        for q in &d.questions {
            asked_any = true;
            let needs = format!("needs:{}", q.id);
            assert!(d.labels.contains(&needs), "{msg}: {}", show(&d));
        }
        let needs = d.labels.iter().filter(|l| l.starts_with("needs:")).count();
        assert_eq!(needs, d.questions.len(), "{msg}: {}", show(&d));
    }
    assert!(
        asked_any,
        "no message asked a question: the label check checked nothing"
    );
}

// Regressions found in review: input that once crashed or misread the engine.

// A match that ends in a multi-byte character, in a message that calls something expected,
// used to slice inside that character and panic.
#[test]
fn match_ending_in_a_multibyte_character_does_not_panic() {
    let d = decide("That's expected. We cannot reach the server 1é");
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// HTML tags in any case, and list items, separate words: "down<BR>Please" is two words.
#[test]
fn html_tags_in_any_case_separate_words() {
    let d = decide("<p>Our production server hn07 is down<BR>Please call</p>");
    assert_eq!(flag(&d, "server_down"), Some(true), "{}", show(&d));
    let d = decide("<ul><li>node hn07 is down</li><li>call us</li></ul>");
    assert_eq!(flag(&d, "server_down"), Some(true), "{}", show(&d));
}

// A backtick typed for an apostrophe reads the same whether or not the line has other
// non-ASCII characters.
#[test]
fn backtick_apostrophe_reads_the_same_in_ascii_and_unicode_lines() {
    let plain = decide("our production server doesn`t boot");
    let with_emoji = decide("our production server doesn`t boot 🚀");
    assert_eq!(plain.severity, 1, "{}", show(&plain));
    assert_eq!(with_emoji.severity, 1, "{}", show(&with_emoji));
}

// Policy text with characters that folding changes (an em dash, ß) still matches: the
// signature under "—" is not read as the sender's words ("test lab" there changes nothing).
#[test]
fn em_dash_signature_separator_is_recognized() {
    let d = decide("node hn07 is down\n—\nJohn Doe\nTest lab manager");
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// Thread facts merged from several messages keep no single text: their evidence offsets
// belong to the messages they came from.
#[test]
fn merged_facts_keep_no_single_text() {
    let mut facts = extract(
        &POLICY,
        "node hn07 is down since 06:00, all containers offline",
    );
    facts.merge(&extract(&POLICY, "no workaround"));
    assert!(facts.text.is_empty());
    let d = classify(&POLICY, &facts);
    assert_eq!(d.severity, 1, "{}", show(&d));
    assert_eq!(flag(&d, "workaround"), Some(false), "{}", show(&d));
}

// A container stopped on purpose is not unavailable: the sender's own words overrule the
// monitoring alert quoted below them, and what is left is a cosmetic report.
#[test]
fn container_stopped_on_purpose_overrules_a_quoted_alert() {
    let d = decide(
        "Please ignore the alert below, CT 77 was stopped on purpose by our admin for a \
         migration.\nThe Power Panel language menu shows the wrong flag for Czech.\n\n\
         From: Monitoring <monitor@example.com>\nSent: Monday 07:02\nSubject: CRITICAL\n\n\
         CRITICAL: CT 77 is not running. Attempted restart: failed.",
    );
    assert_eq!(flag(&d, "ve_unavailable"), Some(false), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// A pasted email that starts with its own Outlook header block: the text under that block is
// the sender's, and only the "Original Message" further down is quoted history.
#[test]
fn leading_header_block_is_the_senders_own_message() {
    let d = decide(
        "From: Carlos <carlos@example.pt>\nSent: Monday 10:03\nTo: support@example.com\n\
         Subject: RE: outage on vz-node-3\n\n\
         It is not fixed. Right now every VPS on vz-node-3 is unreachable for our clients.\n\n\
         -----Original Message-----\nFrom: Support <support@example.com>\nSent: Sunday 22:40\n\
         Subject: outage on vz-node-3\n\n\
         The node was restarted and all VPS are back online, a restart is the workaround.",
    );
    assert_eq!(d.severity, 1, "{}", show(&d));
    assert_ne!(flag(&d, "workaround"), Some(true), "{}", show(&d));
}

// A log inside a forwarded message is part of that message, not the forwarder's own words:
// the forward comment ("this is production") holds no failure, so the forwarded report is read.
#[test]
fn log_inside_a_forward_does_not_hide_the_forwarded_report() {
    let d = decide(
        "Please see below - this is our production cluster.\n\nIngrid\n\n\
         ---------- Forwarded message ---------\nFrom: Mads <m@example.dk>\n\
         Subject: vzmigrate fails for every container\n\n\
         Migration between nodes is broken. Every container I try fails the same way:\n\n\
         # vzmigrate node-b 2101\n\
         Error: Failed to copy CT private area: rsync exited with code 12\n",
    );
    assert_eq!(flag(&d, "function_broken"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// The output under a pasted shell command is a log up to the next blank line: a "can't" in
// one output line does not negate "Container start failed" on the next, and the sender's own
// "doesn't start" stands.
#[test]
fn console_output_does_not_negate_the_senders_report() {
    let d = decide(
        "since this morning container 412 doesn't start. Output:\n\n# vzctl start 412\n\
         Starting Container ...\nMounting root: /vz/root/412\n\
         Error in ploop_mount_image (ploop.c:1812): Can't mount image\n\
         Container start failed\n\nCould you please take a look?",
    );
    assert_eq!(flag(&d, "ve_unavailable"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// A question about the environment is not a statement of it: in a pasted chat, "it's a lab
// box?" asks, and the answer "no, that's prod" decides.
#[test]
fn a_question_about_a_lab_does_not_make_it_one() {
    let d = decide(
        "[09:14] Anna: hn9 is down, none of the sites on it answer\n\
         [09:14] Tom: it's a lab box?\n\
         [09:15] Anna: no, that's prod, ~200 customer sites on it",
    );
    assert_eq!(value(&d, "environment"), Some("production"), "{}", show(&d));
    assert_eq!(d.severity, 1, "{}", show(&d));
}

// A monitoring alert the sender calls a false alarm is not an outage.
#[test]
fn false_alarm_is_not_a_down_server() {
    let d = decide(
        "Nagios says hn-19 DOWN - false alarm. The node and all its containers are up and \
         serving customers; only the Nagios check against the node fails since the firewall \
         change.",
    );
    assert_ne!(flag(&d, "server_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// A Power Panel login that loops back to the login page for everyone is the component down.
#[test]
fn login_loop_for_everyone_is_the_component_down() {
    let d = decide("Power Panel login loops back to the login page for all end users on pp-02");
    assert_eq!(flag(&d, "component_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// When the sender calls the behaviour expected, the pasted command output that shows it
// reports no failure either.
#[test]
fn expected_output_in_a_pasted_console_is_no_failure() {
    let d = decide(
        "when I run vzctl stop on a stopped container it prints \"Container is not running\" \
         and exits with code 31 - that's expected of course:\n\n# vzctl stop 101\n\
         Container is not running\n\nHowever the man page does not list exit code 31. \
         Could you add it to the documentation?",
    );
    assert_ne!(flag(&d, "ve_unavailable"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 4, "{}", show(&d));
}

// A management component described by its page ("the self-service page (Power Panel, …)")
// that shows only a white screen for everyone is down.
#[test]
fn white_screen_for_everyone_is_the_component_down() {
    let d = decide(
        "the self-service page (Power Panel, port 4643) is just a white screen with a spinner, \
         for everyone, since this morning. The VPS themselves are up and serving fine.",
    );
    assert_eq!(flag(&d, "component_down"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
}

// "for one customer" limits the scope: a component failing for one customer is level 3.
#[test]
fn component_failing_for_one_customer_is_3() {
    let d = decide("Power Panel shows a blank page for one customer");
    assert_eq!(value(&d, "scope"), Some("some"), "{}", show(&d));
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// Decision 67: "some, not all" lowers the broken function, but the one container that does
// not boot, of unknown criticality, is a level-2 criterion of its own that nothing lowers.
#[test]
fn a_note_for_some_criteria_does_not_lower_another_criterion_of_the_level() {
    let d = decide("CT 880 doesn't boot, its console is stuck at fsck. The other CTs are fine.");
    assert_eq!(value(&d, "scope"), Some("some"), "{}", show(&d));
    assert_eq!(flag(&d, "ve_unavailable"), Some(true), "{}", show(&d));
    assert_eq!(d.severity, 2, "{}", show(&d));
    assert!(
        d.notes.is_empty(),
        "no note applies to the deciding rule: {}",
        show(&d)
    );
    assert!(asks(&d, "business_critical"), "{}", show(&d));
    // Only the broken function: the note lowers it as before.
    let d = decide("Power Panel shows a blank page for one customer");
    assert_eq!(d.severity, 3, "{}", show(&d));
}

// The documented example of a past outage, word for word: "fine now" needs no subject.
#[test]
fn documented_past_outage_example_is_3() {
    for text in [
        "it was down yesterday, fine now",
        "the server was down yesterday, fine now",
    ] {
        let d = decide(text);
        assert_eq!(d.severity, 3, "{text}: {}", show(&d));
        assert_ne!(flag(&d, "server_down"), Some(true), "{text}: {}", show(&d));
    }
}

/// The embedded English policy with extra `question` patterns (TOML literal strings), and a
/// test of whether a text is then read as a question: a probe for how patterns match.
fn question_probe(patterns: &[&str]) -> impl Fn(&str) -> bool {
    use firstline::triage::Policy;
    use firstline::triage::policy::{EMBEDDED_POLICY, Packs};
    let question = "[attributes.question.match]\ntrue = [\n";
    assert!(EMBEDDED_POLICY.contains(question));
    let extra: String = patterns.iter().map(|p| format!("  '''{p}''',\n")).collect();
    let src = EMBEDDED_POLICY.replacen(question, &format!("{question}{extra}"), 1);
    let policy = Policy::from_toml_with(&src, "probe.toml", Packs::None).expect("the policy loads");
    move |text: &str| {
        let d = triage(&policy, text).1;
        d.attributes.get("question").and_then(Value::as_bool) == Some(true)
    }
}

// `(?m:^)` and `(?m:$)` in a pattern mean the start and end of a paragraph of the message
// (wrapped lines are joined), `^` and `$` its start and end: a pattern is tried
// where its first word occurs, but the anchors see the text around that place. (They used to
// hold wherever a try began.)
#[test]
fn anchors_in_a_pattern_mean_paragraph_and_message_edges() {
    let asked = question_probe(&["(?m:^zork marker$)", "(?m:^zork tail[^\\n]*$)"]);
    assert!(asked("Hello,\n\nzork marker\n\nthanks"));
    assert!(asked("zork marker"));
    assert!(!asked("we saw a zork marker\n\nthanks"), "^ inside a line");
    assert!(!asked("zork marker appeared\n\nthanks"), "$ inside a line");
    // No match is longer than 400 bytes, and the end of that stretch is not the line's.
    assert!(asked(&format!("zork tail{}\n\nthanks", " x".repeat(100))));
    let long = format!("zork tail{}\n\nthanks", " x".repeat(300));
    assert!(!asked(&long), "$ 400 bytes after the start");
}

// A lazy repeat stops at the first fit, which may end inside a word ("to" in "tonight"); the
// match that counts is one that stands at word edges, also when it is longer than that fit.
#[test]
fn a_lazy_repeat_still_finds_the_match_at_word_edges() {
    let asked = question_probe(&["zork (?:[a-z]+ ){0,3}?to"]);
    assert!(asked("zork the vm to"));
    assert!(
        asked("zork the vm tonight to"),
        "the longer match at word edges"
    );
    assert!(
        !asked("zork the vm tonight"),
        "no match ends at a word's end"
    );
}

// Russian mail clients head a quote with "Иван пишет:" or, in Gmail, with the date and the
// sender and no verb; what follows is the earlier message, and "вопрос снят" closes it.
#[test]
fn russian_quote_headers_without_napisal_start_the_quote() {
    for header in [
        "Иван пишет:",
        "пт, 27 нояб. 2026 г. в 10:15, Иван Петров <ivan@example.ru>:",
    ] {
        let d = decide(&format!(
            "Вопрос снят, спасибо.\n\n{header}\nвсе контейнеры на ноде hn3 лежат, прод стоит\n"
        ));
        assert_eq!(d.severity, 3, "{header}: {}", show(&d));
        assert_eq!(d.rule, "s3.resolved", "{header}: {}", show(&d));
    }
}
