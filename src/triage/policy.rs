//! The policy file (`config/policy.toml`): its schema, and its compilation into matchers and conditions.
//!
//! Everything firstline knows about severity comes from here: the attributes and their
//! vocabulary, the step-A rules, the step-B notes, the questions and the labels. Compiling
//! collects every problem at once ([`PolicyErrors`]) with the line it is on, so that
//! `check-config` can list them all and a broken policy never starts the bot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use regex_automata::{MatchKind, PatternID, meta};
use serde::Deserialize;
use toml::Spanned;

use super::expr::{self, CmpOp, Expr};

/// The policy shipped with firstline, compiled in so the binary runs with no files around it.
pub const EMBEDDED_POLICY: &str = include_str!("../../config/policy.toml");
pub const EMBEDDED_POLICY_NAME: &str = "config/policy.toml (embedded)";

/// The language packs shipped with firstline, by the path the policy names them with.
pub const EMBEDDED_PACKS: &[(&str, &str)] = &[
    ("lang/de.toml", include_str!("../../config/lang/de.toml")),
    ("lang/fr.toml", include_str!("../../config/lang/fr.toml")),
    ("lang/es.toml", include_str!("../../config/lang/es.toml")),
    ("lang/ru.toml", include_str!("../../config/lang/ru.toml")),
    ("lang/zh.toml", include_str!("../../config/lang/zh.toml")),
];

/// Which language packs to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packs {
    /// Every pack the policy lists.
    All,
    /// None: the base (English) vocabulary only (to measure what the packs cost).
    None,
}

/// A pack read and parsed, with where it came from.
struct LoadedPack {
    file: String,
    src: String,
    raw: RawPack,
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    policy: RawMeta,
    levels: Vec<RawLevel>,
    #[serde(default)]
    terms: BTreeMap<String, Spanned<String>>,
    text: RawText,
    negation: RawNegation,
    time: RawTime,
    attributes: BTreeMap<Spanned<String>, RawAttribute>,
    #[serde(default)]
    derived: BTreeMap<Spanned<String>, Spanned<String>>,
    rules: Vec<RawRule>,
    default: RawDefault,
    #[serde(default)]
    notes: Vec<RawNote>,
    #[serde(default)]
    questions: Vec<RawQuestion>,
    #[serde(default)]
    implications: Vec<RawImplication>,
    labels: RawLabels,
    confidence: RawConfidence,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
    /// Region for phone numbers written without an international prefix ("DE", "US"); empty: none.
    #[serde(default)]
    default_region: Option<Spanned<String>>,
    /// Language packs: files (relative to this one) with the vocabulary, negation, time words,
    /// question texts and rationales of one language each.
    #[serde(default)]
    languages: Vec<Spanned<String>>,
}

/// value → patterns of one attribute.
type ValuePatterns = BTreeMap<Spanned<String>, Vec<Spanned<RawPattern>>>;

/// A language pack as written (`config/lang/xx.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    language: RawLanguage,
    #[serde(default)]
    terms: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    negation: RawPackNegation,
    #[serde(default)]
    time: RawPackTime,
    /// attribute → value → patterns, as `[attributes.NAME.match]` in the policy.
    #[serde(default, rename = "match")]
    patterns: BTreeMap<Spanned<String>, ValuePatterns>,
    /// Question id → the question in this language.
    #[serde(default)]
    questions: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Rule or note id → its rationale in this language.
    #[serde(default)]
    rationales: BTreeMap<Spanned<String>, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguage {
    /// ISO 639-1 code: "de", "fr", "es", "ru", "zh".
    code: Spanned<String>,
    name: String,
    /// The script the language is written in: "latin" (default), "cyrillic" or "han". The
    /// pack's patterns are only tried on a message that has letters of a non-Latin script.
    #[serde(default)]
    script: Option<Spanned<String>>,
    /// For a Latin-script language: common short words (and `letters`, such as "äöüß")
    /// whose presence opens the pack for a message. A message with none of them is not
    /// tried against the pack's patterns (what keeps English mail at English speed).
    #[serde(default)]
    hints: Vec<String>,
    #[serde(default)]
    letters: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackNegation {
    #[serde(default)]
    words: Vec<String>,
    /// Added to what the `{neg}` slot accepts (in every pattern: mixed-language messages).
    #[serde(default)]
    slot: Option<Spanned<String>>,
    #[serde(default)]
    clause_breaks: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackTime {
    /// Added to [time] past.
    #[serde(default)]
    past: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    number: Spanned<u8>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    quote_headers: Vec<Spanned<String>>,
    forward_headers: Vec<Spanned<String>>,
    header_fields: Vec<Spanned<String>>,
    signature_starts: Vec<Spanned<String>>,
    template_lines: Vec<Spanned<String>>,
    log_lines: Vec<Spanned<String>>,
    #[serde(default)]
    form_answers: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNegation {
    /// The words that negate what follows within `window` words of the same clause.
    words: Vec<String>,
    /// Word endings that negate ("n't").
    suffixes: Vec<String>,
    window: usize,
    /// What the `{neg}` slot in a pattern accepts.
    slot: Spanned<String>,
    /// Words and characters that end a clause: negation does not reach across them.
    clause_breaks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTime {
    /// A clause with one of these reports the past.
    past: Spanned<String>,
    /// The flag attribute that says a past failure is over (internal, e.g. `resolved`).
    recovered_by: Spanned<String>,
    /// Attributes describing a current state: a past-tense match of one of them, in a
    /// message that says the problem is over, is not a current fact.
    current_state: Vec<Spanned<String>>,
    /// The attribute set `true` when a past failure is over (the policy reads it as a workaround).
    restored_means: Spanned<String>,
    /// The flag set `true` when a current-state failure is reported in the present tense
    /// (the failure is going on now).
    present_means: Spanned<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttributeKind {
    Flag,
    Value,
    List,
    Phone,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    kind: AttributeKind,
    #[serde(default)]
    means: String,
    #[serde(default)]
    internal: bool,
    /// Whether a negation word before a match reverses it (false for relations such as
    /// "after the update": "does not boot after the update" still happened after it).
    #[serde(default = "yes")]
    negatable: bool,
    /// Whether this fact alone is "a fact in the sender's words": when the own words hold
    /// only facts that are not standalone ("URGENT", "production"), quoted or forwarded text
    /// is read too.
    #[serde(default = "yes")]
    standalone: bool,
    /// value → patterns (`true`/`false` for flags).
    #[serde(default, rename = "match")]
    patterns: BTreeMap<Spanned<String>, Vec<Spanned<RawPattern>>>,
    /// For value attributes: what a negated match means ("not production" → non_production).
    #[serde(default)]
    negated: BTreeMap<String, Spanned<String>>,
    /// When this attribute is found in the sender's words, matches of `attributes` whose
    /// text matches `text` mean something else and are dropped (in a message about Docker,
    /// "containers" are Docker containers, not VEs).
    #[serde(default)]
    shadows: Option<RawShadow>,
    /// For value attributes: the value chosen on a tie of strength.
    #[serde(default)]
    tie: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShadow {
    attributes: Vec<Spanned<String>>,
    /// Only matches whose own text matches this regex are dropped.
    #[serde(default)]
    text: Option<Spanned<String>>,
    /// Only matches inside quotation marks (a quoted error message) are dropped.
    #[serde(default)]
    quoted: bool,
    /// With `quoted`: matches in a pasted log (command output) are dropped too.
    #[serde(default)]
    logs: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPattern {
    Plain(String),
    Full {
        pattern: String,
        #[serde(default = "one")]
        strength: u8,
    },
}

fn one() -> u8 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    level: Spanned<u8>,
    when: Spanned<String>,
    #[serde(default)]
    decides: bool,
    rationale: String,
    #[serde(default = "default_rule_confidence")]
    confidence: f64,
}

fn default_rule_confidence() -> f64 {
    0.85
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefault {
    id: String,
    level: Spanned<u8>,
    rationale: String,
    confidence: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNote {
    id: Spanned<String>,
    when: Spanned<String>,
    from: Vec<u8>,
    to: Spanned<u8>,
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    rationale: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    id: Spanned<String>,
    when: Spanned<String>,
    text: Spanned<String>,
}

/// A fact that follows from others when the message does not state it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImplication {
    when: Spanned<String>,
    set: Spanned<String>,
    value: Spanned<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    severity: String,
    attribute: String,
    value: Vec<String>,
    value_format: String,
    question: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfidence {
    own_words: f64,
    log_only: f64,
    quoted_only: f64,
    per_note: f64,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// One problem in a policy file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a policy file; a policy with any of them is not used.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the policy has {} error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

pub(super) struct Reporter<'a> {
    file: &'a str,
    src: &'a str,
    errors: Vec<PolicyError>,
}

impl Reporter<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(PolicyError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    fn spanned<T>(&mut self, s: &Spanned<T>, message: impl Into<String>) {
        self.at(s.span().start, message)
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled policy.

/// What a pattern match says about its attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchValue {
    Flag(bool),
    Value(String),
    Item(String),
    Phone,
}

/// One compiled vocabulary pattern.
#[derive(Debug)]
pub struct Pattern {
    pub attribute: usize,
    pub value: MatchValue,
    pub strength: u8,
    /// The regex source, terms expanded and folded like the messages.
    pub source: String,
    /// The pattern compiled: tried anchored where the anchor scan found one of its prefixes,
    /// and searched over a whole message when it has no start literals. Either way the
    /// search runs on the whole message bounded by a span, so `^`, `$` and `\b` see the
    /// text around the stretch tried, not the stretch's own ends.
    pub regex: meta::Regex,
    /// The same pattern matching as much as it can (`MatchKind::All`): used to ask whether the
    /// pattern can match exactly a given stretch, when its preferred match ends inside a
    /// word. Compiled the first time a message needs it, since most patterns never do.
    exact: OnceLock<meta::Regex>,
    /// Its named groups, when it has any.
    pub groups: Option<Groups>,
    /// The language pack it came from (an index into [`Policy::languages`]); None: the base.
    pub language: Option<usize>,
    /// Whether it has a lazy repeat (`{0,3}?`, `*?`): its preferred match may then stop short
    /// inside a word where a longer one stands at word edges, which is looked for too.
    pub lazy: bool,
}

/// Whether a regex has a lazy (non-greedy) repeat anywhere.
fn has_lazy_repeat(hir: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Repetition(r) => !r.greedy || has_lazy_repeat(&r.sub),
        HirKind::Capture(c) => has_lazy_repeat(&c.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts.iter().any(has_lazy_repeat),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => false,
    }
}

/// The named groups a pattern may have, by index: `neg…` (a `{neg}` slot: when filled, the
/// statement is negated), `skip` (when it matched, the occurrence does not count), `num` (a
/// phone number).
#[derive(Debug)]
pub struct Groups {
    pub neg: Vec<usize>,
    pub skip: Option<usize>,
    pub num: Option<usize>,
}

impl Groups {
    fn of(re: &meta::Regex) -> Option<Groups> {
        let names = re.group_info().pattern_names(PatternID::ZERO);
        let mut groups = Groups {
            neg: Vec::new(),
            skip: None,
            num: None,
        };
        let mut any = false;
        for (i, name) in names.enumerate() {
            let Some(name) = name else { continue };
            any = true;
            match name {
                "skip" => groups.skip = Some(i),
                "num" => groups.num = Some(i),
                n if n.starts_with(NEG_GROUP) => groups.neg.push(i),
                _ => {}
            }
        }
        any.then_some(groups)
    }
}

impl Pattern {
    /// The pattern matching as much as it can (see `exact`).
    pub fn exact(&self) -> &meta::Regex {
        self.exact.get_or_init(|| {
            pattern_regex(&self.source, MatchKind::All)
                .unwrap_or_else(|e| panic!("a form of a checked pattern does not compile: {e}"))
        })
    }
}

/// Compiles a pattern's source. Without a prefilter: a pattern is only ever tried where the
/// literal scan put a candidate start (or, for the few without start literals, over a
/// readable stretch), so a prefilter of its own would only cost memory and compile time
/// (about 20 MB and 0.1 s for the whole policy).
fn pattern_regex(source: &str, kind: MatchKind) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .configure(meta::Regex::config().match_kind(kind).auto_prefilter(false))
        .build(source)
        .map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct Attribute {
    pub name: String,
    pub kind: AttributeKind,
    pub means: String,
    pub internal: bool,
    pub negatable: bool,
    pub standalone: bool,
    pub values: Vec<String>,
    pub negated: HashMap<String, String>,
    pub tie: Option<String>,
    pub shadows: Option<Shadow>,
}

/// Matches of `attributes` whose text matches `text` are dropped when the shadowing
/// attribute is found in the sender's words.
#[derive(Debug)]
pub struct Shadow {
    pub attributes: Vec<usize>,
    pub text: Option<Regex>,
    pub quoted: bool,
    pub logs: bool,
}

/// A condition with its names resolved against the policy.
#[derive(Debug, Clone)]
pub enum Cond {
    Const(bool),
    FlagIs(usize, bool),
    Known(usize),
    ValueIs(usize, String),
    ListHas(usize, String),
    Derived(usize),
    Level(CmpOp, i64),
    BaseLevel(CmpOp, i64),
    Rule(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    /// Byte offset of its condition in the policy file (for errors).
    pub at: usize,
    pub level: u8,
    pub when: Cond,
    pub decides: bool,
    pub rationale: String,
    pub confidence: f64,
    /// The rationale in other languages (language code → text).
    pub translations: HashMap<String, String>,
}

#[derive(Debug)]
pub struct Note {
    pub id: String,
    pub at: usize,
    pub when: Cond,
    pub from: Vec<u8>,
    pub to: u8,
    pub rules: Vec<String>,
    pub rationale: String,
    pub translations: HashMap<String, String>,
}

#[derive(Debug)]
pub struct QuestionDef {
    pub id: String,
    pub at: usize,
    pub when: Cond,
    pub text: String,
    /// The question in other languages (language code → text).
    pub translations: HashMap<String, String>,
}

/// A language the policy reads, from a pack.
#[derive(Debug, Clone)]
pub struct Language {
    pub code: String,
    pub name: String,
    /// When a message is worth trying the pack's patterns on.
    pub gate: Gate,
}

/// What opens a language pack for a message.
#[derive(Debug, Clone)]
pub enum Gate {
    /// Every message.
    Always,
    /// A message with a letter of this script.
    Script(Script),
    /// A message with one of these whole words, or one of these letters.
    Hints {
        words: HashSet<String>,
        letters: Vec<char>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Cyrillic,
    Han,
}

impl Script {
    pub fn has(self, c: char) -> bool {
        match self {
            Script::Cyrillic => matches!(c as u32, 0x0400..=0x04FF),
            Script::Han => matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF),
        }
    }
}

#[derive(Debug)]
pub struct Labels {
    pub severity: String,
    pub attribute: String,
    pub value: Vec<usize>,
    pub value_format: String,
    pub question: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Confidence {
    pub own_words: f64,
    pub log_only: f64,
    pub quoted_only: f64,
    pub per_note: f64,
}

/// Line-structure recognizers (quotes, forwards, signatures, templates, logs).
#[derive(Debug)]
pub struct TextRules {
    /// All of `[text]` in one set, matched once per line (indentation allowed before the
    /// non-log rules), with the kind each pattern belongs to.
    pub all: RegexSet,
    pub kinds: Vec<LineKind>,
}

/// Which list of `[text]` a line rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Quote,
    Forward,
    Header,
    Signature,
    Template,
    Log,
    /// A short answer on its own line, read with the form label above it.
    Answer,
}

/// What one line is, by the `[text]` rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineMatch {
    pub quote: bool,
    pub forward: bool,
    pub header: bool,
    pub signature: bool,
    pub template: bool,
    pub log: bool,
    pub answer: bool,
}

impl TextRules {
    /// Matches one folded line (leading indentation kept) against every rule at once.
    pub fn classify(&self, line: &str) -> LineMatch {
        let mut m = LineMatch::default();
        for i in self.all.matches(line).iter() {
            match self.kinds[i] {
                LineKind::Quote => m.quote = true,
                LineKind::Forward => m.forward = true,
                LineKind::Header => m.header = true,
                LineKind::Signature => m.signature = true,
                LineKind::Template => m.template = true,
                LineKind::Log => m.log = true,
                LineKind::Answer => m.answer = true,
            }
        }
        m
    }
}

#[derive(Debug)]
pub struct NegationRules {
    pub words: HashSet<String>,
    pub suffixes: Vec<String>,
    pub window: usize,
    /// The clause breaks as one automaton, so a message's breaks are found in one pass.
    pub breaks: aho_corasick::AhoCorasick,
}

#[derive(Debug)]
pub struct TimeRules {
    pub past: Regex,
    pub recovered_by: usize,
    pub current_state: Vec<bool>,
    pub restored_means: usize,
    pub present_means: usize,
}

/// When `when` holds and the flag `set` is unknown, it takes `value`; the evidence is that
/// of the facts `when` looks at.
#[derive(Debug)]
pub struct Implication {
    pub when: Cond,
    pub set: usize,
    pub value: bool,
}

/// A policy ready to apply: built once, shared by every message.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub version: String,
    pub source: String,
    /// The language packs compiled in (English is the base and is not listed).
    pub languages: Vec<Language>,
    /// Length in bytes of the longest hint word of any pack's gate.
    pub longest_hint: usize,
    /// Every gate's hint words, each with the packs it opens (bit `i`: `languages[i]`), so a
    /// word of a message is looked up once for all packs.
    pub hint_words: HashMap<String, u64>,
    pub default_region: Option<phonenumber::country::Id>,
    pub level_names: BTreeMap<u8, String>,
    pub attributes: Vec<Attribute>,
    pub attribute_index: HashMap<String, usize>,
    pub derived: Vec<(String, Cond)>,
    pub patterns: Vec<Pattern>,
    /// One Aho-Corasick pass over a message finds where patterns may start: every literal
    /// that a pattern's matches can begin with (see [`Anchors`]).
    pub anchors: Anchors,
    pub text: TextRules,
    pub negation: NegationRules,
    pub time: TimeRules,
    pub rules: Vec<Rule>,
    pub default_rule: Rule,
    pub notes: Vec<Note>,
    pub questions: Vec<QuestionDef>,
    pub implications: Vec<Implication>,
    pub labels: Labels,
    pub confidence: Confidence,
}

impl Policy {
    /// Which language packs the (normalized, case-folded) text opens (see [`Gate`]), in one
    /// pass over the letters and one over the words for all packs. Pure-ASCII text has no
    /// letter a gate looks for.
    pub fn open_packs(&self, text: &str) -> Vec<bool> {
        let gates: Vec<&Gate> = self.languages.iter().map(|l| &l.gate).collect();
        let mut open: Vec<bool> = gates.iter().map(|g| matches!(g, Gate::Always)).collect();
        if !text.is_ascii() {
            for c in text.chars().filter(|c| !c.is_ascii()) {
                for (i, g) in gates.iter().enumerate() {
                    open[i] = open[i]
                        || match g {
                            Gate::Always => true,
                            Gate::Script(s) => s.has(c),
                            Gate::Hints { letters, .. } => letters.contains(&c),
                        };
                }
                if open.iter().all(|&o| o) {
                    return open;
                }
            }
        }
        let waiting = |open: &[bool]| {
            gates
                .iter()
                .zip(open)
                .any(|(g, &o)| !o && matches!(g, Gate::Hints { .. }))
        };
        if !waiting(&open) {
            return open;
        }
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            if w.is_empty() || w.len() > self.longest_hint {
                continue;
            }
            if let Some(&packs) = self.hint_words.get(w) {
                for (i, o) in open.iter_mut().enumerate() {
                    *o = *o || packs & (1 << i) != 0;
                }
                if !waiting(&open) {
                    break;
                }
            }
        }
        open
    }

    /// The policy compiled into the binary.
    pub fn embedded() -> Policy {
        // The embedded policy is checked by the test suite; failing here is a build defect.
        Policy::from_toml(EMBEDDED_POLICY, EMBEDDED_POLICY_NAME)
            .unwrap_or_else(|e| panic!("the embedded policy is invalid: {e}"))
    }

    /// Reads and compiles a policy file.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyErrors> {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                file: name.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the policy file: {e}"),
            }])
        })?;
        Policy::from_toml(&src, &name)
    }

    /// Compiles a policy from its TOML text with every language pack it lists; `file`
    /// names it in errors, and packs are read relative to it (the embedded policy's packs
    /// are embedded too).
    pub fn from_toml(src: &str, file: &str) -> Result<Policy, PolicyErrors> {
        Policy::from_toml_with(src, file, Packs::All)
    }

    /// Compiles a policy, with or without its language packs.
    pub fn from_toml_with(src: &str, file: &str, packs: Packs) -> Result<Policy, PolicyErrors> {
        let mut rep = Reporter {
            file,
            src,
            errors: Vec::new(),
        };
        let Some(raw) = parse_collecting::<RawPolicy>(src, &mut rep) else {
            rep.errors.sort_by_key(|e| (e.line, e.column));
            return Err(PolicyErrors(rep.errors));
        };
        let mut loaded = Vec::new();
        let mut pack_errors = Vec::new();
        if packs == Packs::All {
            for path in raw.policy.languages.iter().skip(MAX_PACKS) {
                rep.spanned(
                    path,
                    format!("at most {MAX_PACKS} language packs can be listed"),
                );
            }
            for path in raw.policy.languages.iter().take(MAX_PACKS) {
                let (name, text) = match read_pack(file, path.get_ref()) {
                    Ok(x) => x,
                    Err(e) => {
                        rep.spanned(path, e);
                        continue;
                    }
                };
                let mut prep = Reporter {
                    file: &name,
                    src: &text,
                    errors: Vec::new(),
                };
                let parsed = parse_collecting::<RawPack>(&text, &mut prep);
                pack_errors.append(&mut prep.errors);
                if let Some(raw) = parsed {
                    loaded.push(LoadedPack {
                        file: name.clone(),
                        src: text.clone(),
                        raw,
                    });
                }
            }
        }
        let policy = compile(raw, loaded, &mut rep, &mut pack_errors);
        rep.errors.append(&mut pack_errors);
        if rep.errors.is_empty() {
            policy.ok_or(PolicyErrors(rep.errors))
        } else {
            rep.errors
                .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            Err(PolicyErrors(rep.errors))
        }
    }

    pub fn attribute(&self, name: &str) -> Option<usize> {
        self.attribute_index.get(name).copied()
    }

    pub fn level_name(&self, level: u8) -> &str {
        self.level_names.get(&level).map_or("", String::as_str)
    }
}

/// Compiles one pattern of `attribute` meaning `value`; errors go to `rep`.
fn compile_pattern(
    p: &Spanned<RawPattern>,
    attribute: usize,
    value: &MatchValue,
    terms: &BTreeMap<String, Spanned<String>>,
    slot: &str,
    language: Option<usize>,
    rep: &mut Reporter,
) -> Option<Pattern> {
    let (text, strength) = match p.get_ref() {
        RawPattern::Plain(s) => (s, 1),
        RawPattern::Full { pattern, strength } => (pattern, *strength),
    };
    let src = &Spanned::new(p.span(), text.clone());
    if has_uppercase_literal(src.get_ref()) {
        rep.spanned(src, "pattern has upper-case letters: messages are case-folded before matching, so it can never match; write it in lower case");
    }
    let (expanded, slots) = match expand(src.get_ref(), terms, slot) {
        Ok(x) => x,
        Err(e) => {
            rep.spanned(src, e);
            return None;
        }
    };
    let expanded = super::text::fold_pattern(&expanded);
    let regex = match pattern_regex(&expanded, MatchKind::LeftmostFirst) {
        Ok(r) => r,
        Err(e) => {
            // The regex crate's message points at the place in the pattern.
            let e = Regex::new(&expanded)
                .err()
                .map_or_else(|| format!("bad regex: {e}"), |e| format!("bad regex: {e}"));
            rep.spanned(src, e);
            return None;
        }
    };
    if regex.is_match("") {
        rep.spanned(
            src,
            "pattern matches empty text: it would fire on every message",
        );
    }
    let groups = Groups::of(&regex);
    debug_assert!(slots == 0 || groups.is_some());
    Some(Pattern {
        attribute,
        value: value.clone(),
        strength,
        source: expanded,
        regex,
        exact: OnceLock::new(),
        groups,
        language,
        // Set by `Anchors::build`, which parses every pattern anyway.
        lazy: false,
    })
}

/// Reads a language pack named by a policy: from the embedded packs for the embedded policy,
/// else from the file system relative to the policy file. Returns (name for errors, text).
fn read_pack(policy_file: &str, path: &str) -> Result<(String, String), String> {
    if policy_file == EMBEDDED_POLICY_NAME {
        return EMBEDDED_PACKS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(p, src)| (format!("config/{p} (embedded)"), src.to_string()))
            .ok_or_else(|| format!("language pack '{path}' is not embedded in firstline"));
    }
    let base = Path::new(policy_file)
        .parent()
        .unwrap_or_else(|| Path::new("."));
    let full = base.join(path);
    std::fs::read_to_string(&full)
        .map(|src| (full.display().to_string(), src))
        .map_err(|e| format!("cannot read language pack {}: {e}", full.display()))
}

/// Most schema errors a policy can hold at once before we stop looking.
const MAX_SCHEMA_ERRORS: usize = 50;

/// Deserializes the file, collecting schema errors (unknown keys, wrong types) one by one:
/// each offending line is blanked and the file read again, so that one run reports them
/// all and the later checks still run. Blanking keeps every byte offset in place.
fn parse_collecting<T: serde::de::DeserializeOwned>(src: &str, rep: &mut Reporter) -> Option<T> {
    // A syntax error makes everything after it unreadable: report it alone.
    if let Err(e) = src.parse::<toml::Table>() {
        rep.at(
            e.span().map_or(0, |s| s.start),
            e.message().trim().to_string(),
        );
        return None;
    }
    let mut text = src.to_string();
    let mut blanked = Vec::new();
    for _ in 0..MAX_SCHEMA_ERRORS {
        let e = match toml::from_str::<T>(&text) {
            // When errors were reported already, what is left is still compiled so that its
            // problems show too; the caller refuses the policy either way.
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let at = e.span().map_or(0, |s| s.start);
        rep.at(at, e.message().trim().to_string());
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        if e.span().is_none() || blanked.contains(&line_start) {
            return None;
        }
        blanked.push(line_start);
        let blank = " ".repeat(line_end - line_start);
        text.replace_range(line_start..line_end, &blank);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Compilation.

/// Where patterns can start. A regex set of hundreds of patterns with optional prefixes and
/// wide repetitions is too large for a lazy DFA, which then falls back to a slow engine; so
/// instead each pattern's possible first literals (all of them, when the set is finite) go
/// into one Aho-Corasick automaton. One scan of a message gives the positions where some
/// pattern may start, and only there is that pattern tried, anchored. Patterns whose start
/// has no finite set of literals are searched on every message.
#[derive(Debug)]
pub struct Anchors {
    /// Every start literal and every last literal of the patterns, in one automaton: one
    /// scan of a message finds both.
    pub automaton: aho_corasick::AhoCorasick,
    /// Literal index → the patterns it may start (empty for a literal that only ends some).
    pub patterns: Vec<Vec<usize>>,
    /// Literal index → its index among the last literals, or `NOT_AN_ENDING`.
    pub ending: Vec<u32>,
    /// Patterns without a finite set of start literals.
    pub unanchored: Vec<usize>,
    /// Pattern → the indexes (among the last literals) of its possible last literals: a
    /// pattern whose every possible last literal is absent from a message cannot match
    /// anywhere in it, and is not tried at all. None when its end is not a finite set of
    /// literals (it is always tried).
    pub needs: Vec<Option<Vec<u32>>>,
    /// Last literal → the patterns that may end with it (the reverse of `needs`).
    pub needed_by: Vec<Vec<usize>>,
    /// Pattern → the longest text it can match, in bytes (at most `MAX_MATCH_LEN`).
    pub reach: Vec<usize>,
}

/// More start literals than this for one pattern and it is searched on every message.
const MAX_ANCHORS_PER_PATTERN: usize = 20_000;

/// No match is longer than this many bytes (a pattern that could match more is cut there).
pub const MAX_MATCH_LEN: usize = 400;

/// `Anchors::ending` of a literal that ends no pattern.
pub const NOT_AN_ENDING: u32 = u32::MAX;

impl Anchors {
    /// Builds the literal scan from the patterns' parsed forms, and, from the same parse,
    /// marks each pattern that has a lazy repeat (`Pattern::lazy`).
    fn build(patterns: &mut [Pattern]) -> Result<Anchors, String> {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        let mut prefixes = Extractor::new();
        prefixes
            .kind(ExtractKind::Prefix)
            .limit_class(24)
            .limit_repeat(4)
            .limit_literal_len(10)
            .limit_total(MAX_ANCHORS_PER_PATTERN);
        // Last literals: short ones (a letter or two) are in every message and filter
        // nothing, so a pattern that may end with one is always tried.
        let mut suffixes = Extractor::new();
        suffixes
            .kind(ExtractKind::Suffix)
            .limit_class(24)
            .limit_repeat(4)
            .limit_literal_len(8)
            .limit_total(MAX_ANCHORS_PER_PATTERN);
        let mut literals = Literals::default();
        let mut endings = 0;
        let mut unanchored = Vec::new();
        let mut needs = Vec::with_capacity(patterns.len());
        let mut reach = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter_mut().enumerate() {
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(&p.source)
                .map_err(|e| e.to_string())?;
            p.lazy = has_lazy_repeat(&hir);
            reach.push(
                hir.properties()
                    .maximum_len()
                    .map_or(MAX_MATCH_LEN, |n| n.min(MAX_MATCH_LEN)),
            );
            match prefixes.extract(&hir).literals() {
                Some(l) if !l.is_empty() && l.iter().all(|x| !x.as_bytes().is_empty()) => {
                    for lit in l {
                        let at = literals.id(lit.as_bytes());
                        let owners = &mut literals.owners[at];
                        if !owners.contains(&i) {
                            owners.push(i);
                        }
                    }
                }
                _ => unanchored.push(i),
            }
            needs.push(match suffixes.extract(&hir).literals() {
                Some(l) if !l.is_empty() && l.iter().all(|x| x.as_bytes().len() >= MIN_ENDING) => {
                    let mut ids: Vec<u32> = l
                        .iter()
                        .map(|lit| {
                            let at = literals.id(lit.as_bytes());
                            if literals.ending[at] == NOT_AN_ENDING {
                                literals.ending[at] = endings;
                                endings += 1;
                            }
                            literals.ending[at]
                        })
                        .collect();
                    ids.sort_unstable();
                    ids.dedup();
                    Some(ids)
                }
                _ => None,
            });
        }
        let automaton = literals.automaton()?;
        let mut needed_by = vec![Vec::new(); endings as usize];
        for (p, ids) in needs.iter().enumerate() {
            for &id in ids.iter().flatten() {
                needed_by[id as usize].push(p);
            }
        }
        Ok(Anchors {
            needed_by,
            automaton,
            patterns: literals.owners,
            ending: literals.ending,
            unanchored,
            needs,
            reach,
        })
    }

    /// One scan of the `ranges` of `text` (sorted, apart) for every literal: where the
    /// patterns' last literals occur (see [`Endings`]), and the (literal, position) pairs of
    /// start literals that begin at an allowed position (`may_start`). A match lies inside one
    /// range, so the text between ranges is not read at all.
    pub fn scan(
        &self,
        text: &str,
        ranges: &[(usize, usize)],
        mut may_start: impl FnMut(usize) -> bool,
    ) -> (Endings<'_>, Vec<(u32, usize)>) {
        let mut at: Vec<(u32, usize)> = Vec::new();
        let mut starts: Vec<(u32, usize)> = Vec::new();
        for &(from, to) in ranges {
            let input = aho_corasick::Input::new(text).range(from..to);
            for m in self.automaton.find_overlapping_iter(input) {
                let lit = m.pattern().as_usize();
                let e = self.ending[lit];
                if e != NOT_AN_ENDING {
                    at.push((e, m.start()));
                }
                if !self.patterns[lit].is_empty() && may_start(m.start()) {
                    starts.push((lit as u32, m.start()));
                }
            }
        }
        at.sort_unstable();
        let mut present: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
        for (i, &(e, _)) in at.iter().enumerate() {
            match present.last_mut() {
                Some((last, range)) if *last == e => range.end = i + 1,
                _ => present.push((e, i..i + 1)),
            }
        }
        // Pattern → the occurring last literals it may end with (indexes into `present`).
        let occurring = Grouped::build(self.needs.len(), |emit| {
            for (i, (e, _)) in present.iter().enumerate() {
                for &p in &self.needed_by[*e as usize] {
                    emit(p, i as u32);
                }
            }
        });
        (
            Endings {
                anchors: self,
                at,
                present,
                occurring,
            },
            starts,
        )
    }
}

/// The occurrences of the patterns' last literals in one message. A pattern none of whose
/// last literals occurs cannot match at all; one tried at a start needs one of them within
/// reach of that start.
pub struct Endings<'a> {
    anchors: &'a Anchors,
    /// (last literal, position), sorted.
    at: Vec<(u32, usize)>,
    /// The last literals that occur, sorted, each with its stretch of `at`.
    present: Vec<(u32, std::ops::Range<usize>)>,
    /// Pattern → its last literals that occur (indexes into `present`).
    occurring: Grouped<u32>,
}

impl Endings<'_> {
    /// The indexes into `present` of the pattern's last literals that occur.
    fn occurring(&self, pattern: usize) -> &[u32] {
        self.occurring.get(pattern)
    }

    /// Whether the pattern can match somewhere in the message: its end is not known, or one
    /// of its last literals occurs.
    pub fn possible(&self, pattern: usize) -> bool {
        self.anchors.needs[pattern].is_none() || !self.occurring(pattern).is_empty()
    }

    /// The sorted positions where one of the pattern's last literals begins, into `out`;
    /// false when the pattern's end is not known (any start may match).
    pub fn positions(&self, pattern: usize, out: &mut Vec<usize>) -> bool {
        out.clear();
        if self.anchors.needs[pattern].is_none() {
            return false;
        }
        for &i in self.occurring(pattern) {
            let range = self.present[i as usize].1.clone();
            out.extend(self.at[range].iter().map(|&(_, pos)| pos));
        }
        out.sort_unstable();
        true
    }
}

/// Language packs one policy can list (a message's open packs are bits of a `u64`).
const MAX_PACKS: usize = 64;

/// Values grouped by a small integer key, each group in the order the values were given: a
/// counting sort, without sorting or a map. `pairs` is called twice with a sink and must
/// give the same (key, value) pairs both times (once to count, once to place).
pub struct Grouped<T> {
    /// Key `k`'s values are `values[first[k]..first[k + 1]]`.
    first: Vec<usize>,
    values: Vec<T>,
}

impl<T: Copy + Default> Grouped<T> {
    pub fn build(keys: usize, mut pairs: impl FnMut(&mut dyn FnMut(usize, T))) -> Grouped<T> {
        let mut first = vec![0usize; keys + 1];
        pairs(&mut |k, _| first[k + 1] += 1);
        for i in 1..first.len() {
            first[i] += first[i - 1];
        }
        let mut values = vec![T::default(); first[keys]];
        let mut fill = first.clone();
        pairs(&mut |k, v| {
            values[fill[k]] = v;
            fill[k] += 1;
        });
        Grouped { first, values }
    }

    /// The values of `key`.
    pub fn get(&self, key: usize) -> &[T] {
        &self.values[self.first[key]..self.first[key + 1]]
    }

    /// The keys that have values, in key order, with their values.
    pub fn groups(&self) -> impl Iterator<Item = (usize, &[T])> {
        self.first
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < w[1])
            .map(|(k, w)| (k, &self.values[w[0]..w[1]]))
    }

    /// The keys that have values, with their values (mutable, e.g. to sort each group).
    pub fn groups_mut(&mut self) -> impl Iterator<Item = (usize, &mut [T])> {
        let mut rest: &mut [T] = &mut self.values;
        self.first.windows(2).enumerate().filter_map(move |(k, w)| {
            let (group, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
            rest = tail;
            (!group.is_empty()).then_some((k, group))
        })
    }
}

/// Every hint word of the packs' gates, with the packs it opens (see `Policy::hint_words`).
fn hint_words(languages: &[Language]) -> HashMap<String, u64> {
    let mut map: HashMap<String, u64> = HashMap::new();
    for (i, l) in languages.iter().enumerate() {
        if let Gate::Hints { words, .. } = &l.gate {
            for w in words {
                *map.entry(w.clone()).or_default() |= 1 << i;
            }
        }
    }
    map
}

/// Distinct literals, each with the index it was first given, for one Aho-Corasick automaton,
/// and what each is to the patterns (see [`Anchors`]).
#[derive(Default)]
struct Literals {
    index: HashMap<Vec<u8>, usize>,
    list: Vec<Vec<u8>>,
    owners: Vec<Vec<usize>>,
    ending: Vec<u32>,
}

impl Literals {
    fn id(&mut self, lit: &[u8]) -> usize {
        if let Some(&i) = self.index.get(lit) {
            return i;
        }
        self.list.push(lit.to_vec());
        self.owners.push(Vec::new());
        self.ending.push(NOT_AN_ENDING);
        self.index.insert(lit.to_vec(), self.list.len() - 1);
        self.list.len() - 1
    }

    /// Every literal found wherever it occurs, overlapping ones included.
    fn automaton(&self) -> Result<aho_corasick::AhoCorasick, String> {
        aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(&self.list)
            .map_err(|e| e.to_string())
    }
}

/// Lazy-DFA cache limit of the [text] line rules' set (see its use).
const LINE_RULES_DFA_BYTES: usize = 32 << 20;

/// Last literals shorter than this filter nothing (see [`Anchors::possible`]).
const MIN_ENDING: usize = 3;

const NEG_GROUP: &str = "neg";

/// Expands `{term}` macros and the `{neg}` slot; returns the regex source and the slot count.
fn expand(
    pattern: &str,
    terms: &BTreeMap<String, Spanned<String>>,
    neg_slot: &str,
) -> Result<(String, usize), String> {
    expand_depth(pattern, terms, neg_slot, 0)
}

/// Terms may use other terms; this deep is surely a cycle.
const MAX_TERM_DEPTH: usize = 8;

fn expand_depth(
    pattern: &str,
    terms: &BTreeMap<String, Spanned<String>>,
    neg_slot: &str,
    depth: usize,
) -> Result<(String, usize), String> {
    if depth > MAX_TERM_DEPTH {
        return Err("terms refer to each other in a cycle".to_string());
    }
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut rest = pattern;
    let mut slots = 0;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}');
        let name = close.map(|c| &after[..c]);
        match name {
            Some(name)
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                if name.chars().all(|c| c.is_ascii_digit()) {
                    // A regex repetition such as `{2}`: keep it.
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                } else if name == NEG_GROUP {
                    out.push_str(&format!("(?P<{NEG_GROUP}{slots}>(?:{neg_slot}) )?"));
                    slots += 1;
                } else if let Some(term) = terms.get(name) {
                    let (inner, _) = expand_depth(term.get_ref(), terms, neg_slot, depth + 1)
                        .map_err(|e| format!("in term {{{name}}}: {e}"))?;
                    out.push_str("(?:");
                    out.push_str(&inner);
                    out.push(')');
                } else {
                    return Err(format!(
                        "unknown term {{{name}}}: define it under [terms] or escape the brace as \\{{"
                    ));
                }
                rest = &after[name.len() + 1..];
            }
            _ => {
                // Not a macro (e.g. `{2,3}` or an escaped brace): copy the brace through.
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok((out, slots))
}

static UNICODE_CLASS: std::sync::LazyLock<Regex> =
    std::sync::LazyLock::new(|| Regex::new(r"\\[pP](?:\{[^}]*\}|[A-Za-z])").expect("static regex"));

fn has_uppercase_literal(pattern: &str) -> bool {
    // Escapes such as \S, \W, \D, \B are classes, not letters; everything else upper-case
    // would never match the case-folded text.
    let pattern = pattern.replace("(?P<", "(?<");
    // Unicode class names (\p{Lu}, \P{Greek}) are not letters to match.
    let pattern = UNICODE_CLASS.replace_all(&pattern, "");
    let mut prev_backslash = false;
    let mut in_name = false;
    for c in pattern.chars() {
        if c == '<' && !prev_backslash {
            in_name = true;
        }
        if c == '>' {
            in_name = false;
        }
        if c.is_uppercase() && !prev_backslash && !in_name {
            return true;
        }
        prev_backslash = c == '\\' && !prev_backslash;
    }
    false
}

struct Resolver<'a> {
    attributes: &'a [Attribute],
    index: &'a HashMap<String, usize>,
    derived: &'a HashMap<String, usize>,
    rule_ids: &'a HashSet<String>,
    /// Whether `level`, `base_level` and `rule` are available (questions and notes).
    decided: bool,
}

impl Resolver<'_> {
    fn resolve(&self, e: &Expr) -> Result<Cond, String> {
        Ok(match e {
            Expr::Const(b) => Cond::Const(*b),
            Expr::Not(inner) => Cond::Not(Box::new(self.resolve(inner)?)),
            Expr::And(v) => Cond::And(
                v.iter()
                    .map(|x| self.resolve(x))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Or(v) => Cond::Or(
                v.iter()
                    .map(|x| self.resolve(x))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Name(n) => {
                if let Some(&i) = self.index.get(n) {
                    match self.attributes[i].kind {
                        AttributeKind::Flag => Cond::FlagIs(i, true),
                        _ => Cond::Known(i),
                    }
                } else if let Some(&d) = self.derived.get(n) {
                    Cond::Derived(d)
                } else {
                    return Err(self.unknown(n));
                }
            }
            Expr::Known(n) | Expr::Unknown(n) => {
                let i = *self.index.get(n).ok_or_else(|| self.unknown(n))?;
                let known = Cond::Known(i);
                if matches!(e, Expr::Known(_)) {
                    known
                } else {
                    Cond::Not(Box::new(known))
                }
            }
            Expr::Compare(n, op, v) => self.compare(n, *op, v)?,
        })
    }

    fn unknown(&self, n: &str) -> String {
        if matches!(n, "level" | "base_level" | "rule") && !self.decided {
            format!(
                "'{n}' is only known after step A: use it in notes and questions, not in rules or derived facts"
            )
        } else {
            format!("unknown attribute '{n}' (not under [attributes] or [derived])")
        }
    }

    fn compare(&self, n: &str, op: CmpOp, v: &str) -> Result<Cond, String> {
        let negate = |c: Cond| match op {
            CmpOp::Eq => Ok(c),
            CmpOp::Ne => Ok(Cond::Not(Box::new(c))),
            _ => Err(format!("'{n}' can only be compared with == or !=")),
        };
        if self.decided && (n == "level" || n == "base_level") {
            let num: i64 = v
                .parse()
                .map_err(|_| format!("'{n}' is a number from 1 to 4, not '{v}'"))?;
            return Ok(if n == "level" {
                Cond::Level(op, num)
            } else {
                Cond::BaseLevel(op, num)
            });
        }
        if self.decided && n == "rule" {
            if !self.rule_ids.contains(v) {
                return Err(format!("unknown rule id '{v}'"));
            }
            return negate(Cond::Rule(v.to_string()));
        }
        let i = *self.index.get(n).ok_or_else(|| self.unknown(n))?;
        let attr = &self.attributes[i];
        match attr.kind {
            AttributeKind::Flag => {
                let b = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("'{n}' is a flag: compare it with true or false")),
                };
                negate(Cond::FlagIs(i, b))
            }
            AttributeKind::Value | AttributeKind::List => {
                if !attr.values.iter().any(|x| x == v) {
                    return Err(format!(
                        "'{v}' is not a value of '{n}' (values: {})",
                        attr.values.join(", ")
                    ));
                }
                if attr.kind == AttributeKind::Value {
                    negate(Cond::ValueIs(i, v.to_string()))
                } else {
                    negate(Cond::ListHas(i, v.to_string()))
                }
            }
            AttributeKind::Phone => Err(format!(
                "'{n}' is a phone number: test it with known({n}) or unknown({n})"
            )),
        }
    }
}

fn compile(
    raw: RawPolicy,
    packs: Vec<LoadedPack>,
    rep: &mut Reporter,
    pack_errors: &mut Vec<PolicyError>,
) -> Option<Policy> {
    // What `{neg}` accepts, and the terms: the base's and every pack's (mixed-language
    // messages are common: every pattern accepts every language's negation slot).
    let mut slot = raw.negation.slot.get_ref().clone();
    let mut terms = raw.terms.clone();
    let mut languages = Vec::new();
    for pack in &packs {
        let mut prep = Reporter {
            file: &pack.file,
            src: &pack.src,
            errors: Vec::new(),
        };
        let code = pack.raw.language.code.get_ref();
        if languages.iter().any(|l: &Language| &l.code == code) || code == "en" {
            prep.spanned(
                &pack.raw.language.code,
                format!("language '{code}' is given twice (English is the base)"),
            );
        }
        let l = &pack.raw.language;
        let gate = match l.script.as_ref().map(|s| s.get_ref().as_str()) {
            Some("cyrillic") => Gate::Script(Script::Cyrillic),
            Some("han") => Gate::Script(Script::Han),
            None | Some("latin") => {
                if l.hints.is_empty() && l.letters.is_empty() {
                    Gate::Always
                } else {
                    Gate::Hints {
                        words: l
                            .hints
                            .iter()
                            .map(|w| super::text::fold_pattern(w))
                            .collect(),
                        letters: super::text::fold_pattern(&l.letters).chars().collect(),
                    }
                }
            }
            Some(other) => {
                if let Some(s) = &l.script {
                    prep.spanned(s, format!("script '{other}' is not latin, cyrillic or han"));
                }
                Gate::Always
            }
        };
        languages.push(Language {
            code: code.clone(),
            name: l.name.clone(),
            gate,
        });
        if let Some(extra) = &pack.raw.negation.slot {
            if let Err(e) = Regex::new(extra.get_ref()) {
                prep.spanned(extra, format!("bad regex in [negation] slot: {e}"));
            } else {
                slot.push('|');
                slot.push_str(extra.get_ref());
            }
        }
        for (name, term) in &pack.raw.terms {
            if terms.insert(name.clone(), term.clone()).is_some() {
                prep.spanned(term, format!("term '{name}' is already defined"));
            }
        }
        pack_errors.append(&mut prep.errors);
    }
    // Levels.
    let mut level_names = BTreeMap::new();
    for l in &raw.levels {
        let n = *l.number.get_ref();
        if !(1..=9).contains(&n) {
            rep.spanned(&l.number, format!("level {n} is out of range 1..9"));
        }
        if level_names.insert(n, l.name.clone()).is_some() {
            rep.spanned(&l.number, format!("level {n} is defined twice"));
        }
    }
    let check_level = |rep: &mut Reporter, l: &Spanned<u8>, what: &str| {
        if !level_names.contains_key(l.get_ref()) {
            rep.spanned(
                l,
                format!("{what}: level {} is not under [[levels]]", l.get_ref()),
            );
        }
    };

    for (name, term) in raw.terms.iter() {
        match expand(term.get_ref(), &terms, &slot) {
            Ok((src, _)) => {
                if let Err(e) = Regex::new(&src) {
                    rep.spanned(term, format!("bad regex in term '{name}': {e}"));
                }
            }
            Err(e) => rep.spanned(term, format!("term '{name}': {e}")),
        }
    }
    if let Err(e) = Regex::new(raw.negation.slot.get_ref()) {
        rep.spanned(
            &raw.negation.slot,
            format!("bad regex in [negation] slot: {e}"),
        );
    }

    // Attributes and their patterns.
    let mut attributes = Vec::new();
    let mut index = HashMap::new();
    let mut patterns = Vec::new();
    for (name, a) in &raw.attributes {
        let i = attributes.len();
        index.insert(name.get_ref().clone(), i);
        let mut values = Vec::new();
        for (value, list) in &a.patterns {
            let mv = match a.kind {
                AttributeKind::Flag => match value.get_ref().as_str() {
                    "true" => MatchValue::Flag(true),
                    "false" => MatchValue::Flag(false),
                    other => {
                        rep.spanned(
                            value,
                            format!("'{name}' is a flag: its match keys are true and false, not '{other}'", name = name.get_ref()),
                        );
                        continue;
                    }
                },
                AttributeKind::Value => MatchValue::Value(value.get_ref().clone()),
                AttributeKind::List => MatchValue::Item(value.get_ref().clone()),
                AttributeKind::Phone => MatchValue::Phone,
            };
            values.push(value.get_ref().clone());
            if list.is_empty() {
                rep.spanned(
                    value,
                    format!("'{}.{}' has no patterns", name.get_ref(), value.get_ref()),
                );
            }
            for p in list {
                if let Some(pattern) = compile_pattern(p, i, &mv, &terms, &slot, None, rep) {
                    patterns.push(pattern);
                }
            }
        }
        let mut negated = HashMap::new();
        for (from, to) in &a.negated {
            if !values.contains(from) || !values.contains(to.get_ref()) {
                rep.spanned(
                    to,
                    format!(
                        "negated: '{from}' → '{}' names a value that '{}' has no patterns for",
                        to.get_ref(),
                        name.get_ref()
                    ),
                );
            }
            negated.insert(from.clone(), to.get_ref().clone());
        }
        if let Some(tie) = &a.tie
            && !values.contains(tie.get_ref())
        {
            rep.spanned(
                tie,
                format!(
                    "tie: '{}' is not a value of '{}'",
                    tie.get_ref(),
                    name.get_ref()
                ),
            );
        }
        if a.patterns.is_empty() {
            rep.spanned(
                name,
                format!(
                    "attribute '{}' has no [match] patterns: it can never be found",
                    name.get_ref()
                ),
            );
        }
        attributes.push(Attribute {
            name: name.get_ref().clone(),
            kind: a.kind,
            means: a.means.clone(),
            internal: a.internal,
            negatable: a.negatable,
            standalone: a.standalone,
            values,
            negated,
            tie: a.tie.as_ref().map(|t| t.get_ref().clone()),
            shadows: None,
        });
    }

    for (name, a) in &raw.attributes {
        let Some(sh) = &a.shadows else { continue };
        let mut targets = Vec::new();
        for t in &sh.attributes {
            match index.get(t.get_ref()) {
                Some(&i) => targets.push(i),
                None => rep.spanned(t, format!("shadows: unknown attribute '{}'", t.get_ref())),
            }
        }
        let text = match &sh.text {
            None => None,
            Some(t) => match Regex::new(t.get_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    rep.spanned(t, format!("bad regex in shadows.text: {e}"));
                    continue;
                }
            },
        };
        let i = index[name.get_ref()];
        attributes[i].shadows = Some(Shadow {
            attributes: targets,
            text,
            quoted: sh.quoted,
            logs: sh.logs,
        });
    }

    // The packs' vocabulary: the same attributes and values as the base, other words.
    for (li, pack) in packs.iter().enumerate() {
        let mut prep = Reporter {
            file: &pack.file,
            src: &pack.src,
            errors: Vec::new(),
        };
        for (name, values) in &pack.raw.patterns {
            let Some(&i) = index.get(name.get_ref()) else {
                prep.spanned(
                    name,
                    format!("'{}' is not an attribute of the policy", name.get_ref()),
                );
                continue;
            };
            let base_values: Vec<&String> = raw
                .attributes
                .iter()
                .find(|(n, _)| n.get_ref() == name.get_ref())
                .map(|(_, a)| a.patterns.keys().map(|k| k.get_ref()).collect())
                .unwrap_or_default();
            for (value, list) in values {
                if !base_values.contains(&value.get_ref()) {
                    prep.spanned(
                        value,
                        format!(
                            "'{}' has no value '{}' in the policy (values: {})",
                            name.get_ref(),
                            value.get_ref(),
                            base_values
                                .iter()
                                .map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    continue;
                }
                let mv = match attributes[i].kind {
                    AttributeKind::Flag => MatchValue::Flag(value.get_ref() == "true"),
                    AttributeKind::Value => MatchValue::Value(value.get_ref().clone()),
                    AttributeKind::List => MatchValue::Item(value.get_ref().clone()),
                    AttributeKind::Phone => MatchValue::Phone,
                };
                for p in list {
                    if let Some(pattern) =
                        compile_pattern(p, i, &mv, &terms, &slot, Some(li), &mut prep)
                    {
                        patterns.push(pattern);
                    }
                }
            }
        }
        pack_errors.append(&mut prep.errors);
    }

    let anchors = match Anchors::build(&mut patterns) {
        Ok(a) => Some(a),
        Err(e) => {
            rep.at(
                0,
                format!("the patterns' start literals do not compile: {e}"),
            );
            None
        }
    };

    let lists = [
        (LineKind::Quote, &raw.text.quote_headers),
        (LineKind::Forward, &raw.text.forward_headers),
        (LineKind::Header, &raw.text.header_fields),
        (LineKind::Signature, &raw.text.signature_starts),
        (LineKind::Template, &raw.text.template_lines),
        (LineKind::Log, &raw.text.log_lines),
        (LineKind::Answer, &raw.text.form_answers),
    ];
    let mut kinds = Vec::new();
    let mut sources = Vec::new();
    for (kind, list) in lists {
        for p in list {
            // The non-log rules are written for a trimmed line; the combined set sees the
            // line with its indentation, which only log rules care about.
            let src = &super::text::fold_pattern(p.get_ref());
            if let Err(e) = Regex::new(src) {
                rep.spanned(p, format!("bad regex in [text]: {e}"));
                continue;
            }
            kinds.push(kind);
            sources.push(match (kind, src.strip_prefix('^')) {
                (LineKind::Log, _) => src.clone(),
                (_, Some(rest)) => format!(r"^\s*(?:{rest})"),
                (_, None) => src.clone(),
            });
        }
    }
    // The union of the line rules (wide gaps such as `.{0,200}` side by side) needs more
    // lazy-DFA states than the default cache holds; with the default the set gives up on the
    // DFA and runs the PikeVM on every line, four times slower for the whole triage. The
    // limit caps a cache that grows only as far as the lines seen need.
    let all = regex::RegexSetBuilder::new(&sources)
        .dfa_size_limit(LINE_RULES_DFA_BYTES)
        .build()
        .map_err(|e| rep.at(0, format!("[text] rules together: {e}")));
    let text = TextRules {
        all: all.ok()?,
        kinds,
    };

    // Derived facts: resolved in order, each may use the ones before it (no cycles possible).
    let mut derived = Vec::new();
    let mut derived_index = HashMap::new();
    let no_rules = HashSet::new();
    let mut derived_raw: Vec<_> = raw.derived.iter().collect();
    derived_raw.sort_by_key(|(k, _)| k.span().start);
    for (name, when) in derived_raw {
        if index.contains_key(name.get_ref()) {
            rep.spanned(
                name,
                format!(
                    "derived fact '{}' has the name of an attribute",
                    name.get_ref()
                ),
            );
            continue;
        }
        let resolver = Resolver {
            attributes: &attributes,
            index: &index,
            derived: &derived_index,
            rule_ids: &no_rules,
            decided: false,
        };
        match parse_cond(when, &resolver) {
            Ok(c) => {
                derived_index.insert(name.get_ref().clone(), derived.len());
                derived.push((name.get_ref().clone(), c));
            }
            Err(msg) => rep.spanned(when, format!("derived '{}': {msg}", name.get_ref())),
        }
    }

    let resolver = Resolver {
        attributes: &attributes,
        index: &index,
        derived: &derived_index,
        rule_ids: &no_rules,
        decided: false,
    };

    // Rules.
    let mut rules = Vec::new();
    let mut rule_ids = HashSet::new();
    for r in &raw.rules {
        check_level(rep, &r.level, &format!("rule {}", r.id.get_ref()));
        if !rule_ids.insert(r.id.get_ref().clone()) {
            rep.spanned(&r.id, format!("rule id '{}' is used twice", r.id.get_ref()));
        }
        match parse_cond(&r.when, &resolver) {
            Ok(when) => rules.push(Rule {
                id: r.id.get_ref().clone(),
                at: r.when.span().start,
                level: *r.level.get_ref(),
                when,
                decides: r.decides,
                rationale: r.rationale.clone(),
                translations: HashMap::new(),
                confidence: r.confidence,
            }),
            Err(msg) => rep.spanned(&r.when, format!("rule {}: {msg}", r.id.get_ref())),
        }
    }
    check_level(rep, &raw.default.level, "default");
    rule_ids.insert(raw.default.id.clone());
    let mut default_rule = Rule {
        id: raw.default.id.clone(),
        at: raw.default.level.span().start,
        level: *raw.default.level.get_ref(),
        when: Cond::Const(true),
        decides: false,
        rationale: raw.default.rationale.clone(),
        translations: HashMap::new(),
        confidence: raw.default.confidence,
    };

    let decided = Resolver {
        rule_ids: &rule_ids,
        decided: true,
        ..resolver
    };

    let mut notes = Vec::new();
    for n in &raw.notes {
        check_level(rep, &n.to, &format!("note {}", n.id.get_ref()));
        for r in &n.rules {
            if !rule_ids.contains(r.get_ref()) {
                rep.spanned(
                    r,
                    format!("note {}: unknown rule id '{}'", n.id.get_ref(), r.get_ref()),
                );
            }
        }
        match parse_cond(&n.when, &decided) {
            Ok(when) => notes.push(Note {
                id: n.id.get_ref().clone(),
                at: n.when.span().start,
                when,
                from: n.from.clone(),
                to: *n.to.get_ref(),
                rules: n.rules.iter().map(|r| r.get_ref().clone()).collect(),
                rationale: n.rationale.clone(),
                translations: HashMap::new(),
            }),
            Err(msg) => rep.spanned(&n.when, format!("note {}: {msg}", n.id.get_ref())),
        }
    }

    let mut questions = Vec::new();
    let mut question_ids = HashSet::new();
    for q in &raw.questions {
        if !question_ids.insert(q.id.get_ref().clone()) {
            rep.spanned(
                &q.id,
                format!("question id '{}' is used twice", q.id.get_ref()),
            );
        }
        if q.text.get_ref().trim().is_empty() {
            rep.spanned(&q.text, format!("question {} has no text", q.id.get_ref()));
        }
        match parse_cond(&q.when, &decided) {
            Ok(when) => questions.push(QuestionDef {
                id: q.id.get_ref().clone(),
                at: q.when.span().start,
                when,
                text: q.text.get_ref().trim().to_string(),
                translations: HashMap::new(),
            }),
            Err(msg) => rep.spanned(&q.when, format!("question {}: {msg}", q.id.get_ref())),
        }
    }

    // The packs' question texts and rationales.
    for (pack, lang) in packs.iter().zip(&languages) {
        let mut prep = Reporter {
            file: &pack.file,
            src: &pack.src,
            errors: Vec::new(),
        };
        for (id, text) in &pack.raw.questions {
            match questions.iter_mut().find(|q| &q.id == id.get_ref()) {
                Some(q) => {
                    q.translations
                        .insert(lang.code.clone(), text.get_ref().trim().to_string());
                }
                None => prep.spanned(id, format!("no question '{}' in the policy", id.get_ref())),
            }
        }
        for (id, text) in &pack.raw.rationales {
            let text = text.trim().to_string();
            if let Some(r) = rules.iter_mut().find(|r| &r.id == id.get_ref()) {
                r.translations.insert(lang.code.clone(), text);
            } else if default_rule.id == *id.get_ref() {
                default_rule.translations.insert(lang.code.clone(), text);
            } else if let Some(n) = notes.iter_mut().find(|n| &n.id == id.get_ref()) {
                n.translations.insert(lang.code.clone(), text);
            } else {
                prep.spanned(
                    id,
                    format!("no rule or note '{}' in the policy", id.get_ref()),
                );
            }
        }
        pack_errors.append(&mut prep.errors);
    }

    let mut implications = Vec::new();
    for imp in &raw.implications {
        let set = match index.get(imp.set.get_ref()) {
            Some(&i) if attributes[i].kind == AttributeKind::Flag => i,
            _ => {
                rep.spanned(
                    &imp.set,
                    format!(
                        "implication: '{}' is not a flag attribute",
                        imp.set.get_ref()
                    ),
                );
                continue;
            }
        };
        match parse_cond(&imp.when, &resolver) {
            Ok(when) => implications.push(Implication {
                when,
                set,
                value: *imp.value.get_ref(),
            }),
            Err(msg) => rep.spanned(&imp.when, format!("implication: {msg}")),
        }
    }

    let mut clause_breaks = raw.negation.clause_breaks.clone();
    let mut negation_words = raw.negation.words.clone();
    for pack in &packs {
        clause_breaks.extend(pack.raw.negation.clause_breaks.iter().cloned());
        negation_words.extend(pack.raw.negation.words.iter().cloned());
    }
    let breaks = match aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(clause_breaks.iter().map(|b| super::text::fold_pattern(b)))
    {
        Ok(b) => Some(b),
        Err(e) => {
            rep.at(0, format!("[negation] clause_breaks: {e}"));
            None
        }
    };

    // Time rules.
    let mut past_src = format!("(?:{})", raw.time.past.get_ref());
    for pack in &packs {
        if let Some(p) = &pack.raw.time.past {
            if let Err(e) = Regex::new(p.get_ref()) {
                let mut prep = Reporter {
                    file: &pack.file,
                    src: &pack.src,
                    errors: Vec::new(),
                };
                prep.spanned(p, format!("bad regex in [time] past: {e}"));
                pack_errors.append(&mut prep.errors);
            } else {
                past_src.push_str(&format!("|(?:{})", p.get_ref()));
            }
        }
    }
    let past = match Regex::new(&super::text::fold_pattern(&past_src)) {
        Ok(r) => Some(r),
        Err(e) => {
            rep.spanned(&raw.time.past, format!("bad regex in [time] past: {e}"));
            None
        }
    };
    let flag_attr = |rep: &mut Reporter, s: &Spanned<String>, what: &str| -> Option<usize> {
        match index.get(s.get_ref()) {
            Some(&i) if attributes[i].kind == AttributeKind::Flag => Some(i),
            _ => {
                rep.spanned(
                    s,
                    format!("[time] {what}: '{}' is not a flag attribute", s.get_ref()),
                );
                None
            }
        }
    };
    let recovered_by = flag_attr(rep, &raw.time.recovered_by, "recovered_by");
    let restored_means = flag_attr(rep, &raw.time.restored_means, "restored_means");
    let present_means = flag_attr(rep, &raw.time.present_means, "present_means");
    let mut current_state = vec![false; attributes.len()];
    for s in &raw.time.current_state {
        if let Some(i) = flag_attr(rep, s, "current_state") {
            current_state[i] = true;
        }
    }

    let mut value_labels = Vec::new();
    for v in &raw.labels.value {
        match index.get(v) {
            Some(&i) if attributes[i].kind == AttributeKind::Value => value_labels.push(i),
            _ => rep.at(0, format!("[labels] value: '{v}' is not a value attribute")),
        }
    }

    let region_text = raw
        .policy
        .default_region
        .as_ref()
        .map_or("", |r| r.get_ref().trim());
    let default_region = match region_text {
        "" => None,
        code => match code
            .to_ascii_uppercase()
            .parse::<phonenumber::country::Id>()
        {
            Ok(id) => Some(id),
            Err(_) => {
                let at = raw
                    .policy
                    .default_region
                    .as_ref()
                    .map_or(0, |r| r.span().start);
                rep.at(
                    at,
                    format!("default_region '{code}' is not an ISO 3166 country code (e.g. \"DE\", \"US\")"),
                );
                None
            }
        },
    };

    let policy = Policy {
        name: raw.policy.name,
        version: raw.policy.version,
        source: raw.policy.source,
        longest_hint: languages
            .iter()
            .filter_map(|l| match &l.gate {
                Gate::Hints { words, .. } => words.iter().map(String::len).max(),
                _ => None,
            })
            .max()
            .unwrap_or(0),
        hint_words: hint_words(&languages),
        languages,
        default_region,
        level_names,
        attributes,
        attribute_index: index,
        derived,
        patterns,
        anchors: anchors?,
        text,
        negation: NegationRules {
            words: negation_words
                .iter()
                .map(|w| super::text::fold_pattern(w))
                .collect(),
            suffixes: raw.negation.suffixes,
            window: raw.negation.window,
            breaks: breaks?,
        },
        time: TimeRules {
            past: past?,
            recovered_by: recovered_by?,
            current_state,
            restored_means: restored_means?,
            present_means: present_means?,
        },
        rules,
        default_rule,
        notes,
        questions,
        implications,
        labels: Labels {
            severity: raw.labels.severity,
            attribute: raw.labels.attribute,
            value: value_labels,
            value_format: raw.labels.value_format,
            question: raw.labels.question,
        },
        confidence: Confidence {
            own_words: raw.confidence.own_words,
            log_only: raw.confidence.log_only,
            quoted_only: raw.confidence.quoted_only,
            per_note: raw.confidence.per_note,
        },
    };
    super::check::reachability(&policy, rep);
    Some(policy)
}

fn parse_cond(src: &Spanned<String>, resolver: &Resolver) -> Result<Cond, String> {
    let e = expr::parse(src.get_ref()).map_err(|e| e.to_string())?;
    resolver.resolve(&e)
}

impl Reporter<'_> {
    /// Reports a problem found after compiling, at a byte offset of the file.
    pub(super) fn report(&mut self, offset: usize, message: String) {
        self.at(offset, message)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn language_packs_open_on_their_script_words_or_letters() {
        let policy = Policy::embedded();
        let opened = |text: &str| -> Vec<&str> {
            policy
                .open_packs(text)
                .iter()
                .zip(&policy.languages)
                .filter(|(open, _)| **open)
                .map(|(_, l)| l.code.as_str())
                .collect()
        };
        assert!(opened("prod node down, all cts offline").is_empty());
        assert!(opened("the server is down since the update").is_empty());
        assert_eq!(opened("prod нода упала"), ["ru"]);
        assert_eq!(opened("虚拟机无法启动"), ["zh"]);
        assert!(opened("vps tot seit 10 min").contains(&"de"));
        assert!(opened("läuft").contains(&"de"), "a letter opens it");
        assert!(!opened("seitan").contains(&"de"), "whole words only");
        assert!(opened("le serveur ne démarre plus").contains(&"fr"));
        assert!(opened("el vps no arranca").contains(&"es"));
        let mixed = opened("hn3 down. сервер не отвечает, der knoten ist tot, 服务器宕机");
        for code in ["de", "ru", "zh"] {
            assert!(mixed.contains(&code), "{code} in {mixed:?}");
        }
    }

    use super::*;

    #[test]
    fn expands_terms_and_neg_slots() {
        let mut terms = BTreeMap::new();
        terms.insert(
            "server".to_string(),
            Spanned::new(0..0, "servers?|hosts?".to_string()),
        );
        let (re, slots) = expand("{server} is {neg}down{2}", &terms, "not").unwrap();
        assert_eq!(re, "(?:servers?|hosts?) is (?P<neg0>(?:not) )?down{2}");
        assert_eq!(slots, 1);
        assert!(
            expand("{nope}", &terms, "not")
                .unwrap_err()
                .contains("unknown term {nope}")
        );
        assert_eq!(expand("a{2,3}", &terms, "not").unwrap().0, "a{2,3}");
    }

    #[test]
    fn upper_case_literals_are_found_but_classes_are_not() {
        assert!(has_uppercase_literal("Server down"));
        assert!(!has_uppercase_literal(r"server\S+down\W"));
        assert!(!has_uppercase_literal(r"(?P<x>a)"));
    }
}
