//! Fact extraction: one pass of the policy's pattern set over the normalized message, then
//! negation, time and source rules decide what each match means.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::facts::{Evidence, Fact, FactValue, Facts, Source};
use super::policy::{Anchors, AttributeKind, Grouped, MAX_MATCH_LEN, MatchValue, Pattern, Policy};
use super::text::{self, Normalized};
use regex_automata::{Anchored, Input, meta};

/// One occurrence of a pattern in the message.
#[derive(Debug, Clone)]
struct Hit {
    attribute: usize,
    value: MatchValue,
    strength: u8,
    start: usize,
    end: usize,
    source: Source,
    negated: bool,
    past: bool,
    /// For phone hits: the number as written (the whole match when the pattern has no
    /// `num` group).
    number: (usize, usize),
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Scripts written without spaces between words: a match there needs no word edge.
fn is_unspaced_script(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}'   // kana
        | '\u{3400}'..='\u{4dbf}' // CJK extension A
        | '\u{4e00}'..='\u{9fff}' // CJK unified ideographs
        | '\u{f900}'..='\u{faff}' // CJK compatibility ideographs
        | '\u{ac00}'..='\u{d7af}' // Hangul syllables
    )
}

/// A letter or digit of a spaced script: a match that begins or ends with one must stand at
/// a word edge, and only such a character next to it is the same word (a Latin word glued
/// to Chinese, "的vps", begins at the Chinese character, which writes no spaces).
fn needs_edge(c: char) -> bool {
    is_word_char(c) && !is_unspaced_script(c)
}

fn char_before(s: &str, at: usize) -> Option<char> {
    s[..at].chars().next_back()
}

fn char_after(s: &str, at: usize) -> Option<char> {
    s[at..].chars().next()
}

/// Extracts the facts of one message (plain text: subject first, then body).
pub fn extract(policy: &Policy, message: &str) -> Facts {
    let norm = text::normalize(message, &policy.text);
    extract_normalized(policy, norm)
}

/// Extracts from an already normalized message.
pub fn extract_normalized(policy: &Policy, norm: Normalized) -> Facts {
    let hits = find_hits(policy, &norm);
    let recovered = hits.iter().any(|h| {
        h.attribute == policy.time.recovered_by
            && h.value == MatchValue::Flag(true)
            && !h.negated
            && matches!(h.source, Source::Own)
    });

    let mut facts = Facts::empty(policy);
    facts.language = super::lang::detect(policy, &norm);
    let own = resolve(
        policy,
        &norm,
        &hits,
        &[Source::Own, Source::Log],
        recovered,
        &mut facts,
    );
    facts.found_any = own;
    if !own {
        // The sender's own words hold no fact ("same here", a bare forward): read the quote.
        let mut quoted = Facts::empty(policy);
        let recovered_q = hits.iter().any(|h| {
            h.attribute == policy.time.recovered_by
                && h.value == MatchValue::Flag(true)
                && !h.negated
        });
        if resolve(
            policy,
            &norm,
            &hits,
            &[Source::Quoted],
            recovered_q,
            &mut quoted,
        ) {
            // Keep what the own text did say (e.g. a phone in the signature).
            for (slot, q) in facts.slots.iter_mut().zip(quoted.slots) {
                if slot.is_none() {
                    *slot = q;
                }
            }
            facts.found_any = true;
        }
    }
    if facts.slots.iter().all(Option::is_none) {
        facts.found_any = false;
    }
    imply(policy, &mut facts);
    phone(policy, &norm, &hits, &mut facts);
    facts.text = norm.text;
    facts
}

/// Pasted log text read from its start, and from its end (a crash log ends with the crash);
/// what lies between adds nothing once a few occurrences of each pattern are found.
const LOG_HEAD: usize = 8 * 1024;
const LOG_TAIL: usize = 4 * 1024;

/// The stretches of the normalized text worth scanning: everything but template structure,
/// and of pasted logs only their first `LOG_HEAD` and last `LOG_TAIL` bytes.
fn readable_ranges(norm: &Normalized) -> Vec<(usize, usize)> {
    let log_total: usize = norm
        .segments
        .iter()
        .filter(|s| s.source == Some(Source::Log))
        .map(|s| s.end - s.start)
        .sum();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut log_seen = 0;
    for seg in &norm.segments {
        if seg.source.is_none() {
            continue;
        }
        if seg.source == Some(Source::Log) {
            let len = seg.end - seg.start;
            let in_head = log_seen < LOG_HEAD;
            let in_tail = log_seen + len + LOG_TAIL > log_total;
            log_seen += len;
            if !in_head && !in_tail {
                continue;
            }
        }
        match ranges.last_mut() {
            // Segments are separated by one line break: scan them as one stretch.
            Some(last) if seg.start <= last.1 + 1 => last.1 = seg.end,
            _ => ranges.push((seg.start, seg.end)),
        }
    }
    ranges
}

/// One occurrence of a pattern, before its meaning is decided.
struct Found {
    start: usize,
    end: usize,
    /// A `{neg}` slot was filled.
    negated: bool,
    /// The `skip` group matched: the occurrence is about something else.
    skip: bool,
    number: Option<(usize, usize)>,
}

/// The first match of `re` (the pattern or its `exact` form) in the search `input`, with the
/// pattern's groups read when it has any.
fn first_match(p: &Pattern, re: &meta::Regex, input: &Input) -> Option<Found> {
    let Some(groups) = &p.groups else {
        let m = re.search(input)?;
        return Some(Found {
            start: m.start(),
            end: m.end(),
            negated: false,
            skip: false,
            number: None,
        });
    };
    let mut caps = re.create_captures();
    re.search_captures(input, &mut caps);
    let m = caps.get_match()?;
    let group = |i: usize| caps.get_group(i);
    Some(Found {
        start: m.start(),
        end: m.end(),
        negated: groups.neg.iter().any(|&i| group(i).is_some()),
        skip: groups.skip.and_then(group).is_some(),
        number: groups.num.and_then(group).map(|g| (g.start, g.end)),
    })
}

/// The pattern's preferred match in `text[at..to]`.
fn search(p: &Pattern, text: &str, at: usize, to: usize) -> Option<Found> {
    first_match(p, &p.regex, &Input::new(text).range(at..to))
}

/// Whether the pattern can match exactly `text[start..end]`: the longest match from `start`
/// that does not go past `end` ends there.
fn exact(p: &Pattern, text: &str, start: usize, end: usize) -> Option<Found> {
    let input = Input::new(text).range(start..end).anchored(Anchored::Yes);
    first_match(p, p.exact(), &input).filter(|f| f.end == end)
}

/// Whether a match may begin at `start`: not in the middle of a word.
fn start_ok(text: &str, start: usize) -> bool {
    !char_after(text, start).is_some_and(needs_edge)
        || !char_before(text, start).is_some_and(needs_edge)
}

/// Makes a match stand at word edges. A regex prefers the first alternative that fits,
/// which may end inside a word ("fail" in "failed", "our production node" in "…nodes");
/// then the end of that word and the ends of earlier words are tried, and last, for a
/// pattern with a lazy repeat, the ends of later words up to the longest match (a lazy
/// `{0,3}?` stops at the first fit, "to" in "tonight", where a longer one stands at word
/// edges).
fn settle(p: &Pattern, text: &str, found: Found) -> Option<Found> {
    let start = found.start;
    if found.end == start {
        return None;
    }
    if edges_ok(text, start, found.end) {
        return Some(found);
    }
    let word_end = text[found.end..]
        .find(|c: char| !is_word_char(c))
        .map_or(text.len(), |i| found.end + i);
    if let Some(f) = exact(p, text, start, word_end) {
        return Some(f);
    }
    let mut limit = found.end;
    while let Some(shorter) = previous_word_end(text, start, limit) {
        limit = shorter;
        if let Some(f) = exact(p, text, start, limit) {
            return Some(f);
        }
    }
    if !p.lazy {
        return None;
    }
    let bound = text.floor_char_boundary(start + MAX_MATCH_LEN);
    let input = Input::new(text).range(start..bound).anchored(Anchored::Yes);
    let longest = first_match(p, p.exact(), &input)?.end;
    let mut at = word_end;
    while let Some(longer) = next_word_end(text, at, longest) {
        if let Some(f) = exact(p, text, start, longer) {
            return Some(f);
        }
        at = longer;
    }
    None
}

/// The first position in `(after, limit]` that ends a word.
fn next_word_end(text: &str, after: usize, limit: usize) -> Option<usize> {
    let limit = limit.min(text.len());
    let ends_word = |pos: usize| {
        char_before(text, pos).is_some_and(is_word_char)
            && !char_after(text, pos).is_some_and(is_word_char)
    };
    text.get(after..limit)?
        .char_indices()
        .map(|(i, c)| after + i + c.len_utf8())
        .find(|&pos| ends_word(pos))
}

/// The pattern's match beginning exactly at `start`, at word edges.
fn occurrence_at(p: &Pattern, text: &str, start: usize) -> Option<Found> {
    if !start_ok(text, start) {
        return None;
    }
    // No match is longer than this: bounding the stretch keeps each attempt short, whatever
    // the regex engine's strategy. The bound is a span of the whole text, so `^`, `$` and
    // `\b` still see the characters around it.
    let input = Input::new(text)
        .range(start..text.floor_char_boundary(start + MAX_MATCH_LEN))
        .anchored(Anchored::Yes);
    settle(p, text, first_match(p, &p.regex, &input)?)
}

/// The next occurrence in `text[at..to]` that stands at word edges (for patterns without
/// start literals, searched over each readable stretch of the message).
fn next_occurrence(p: &Pattern, text: &str, mut at: usize, to: usize) -> Option<Found> {
    while at <= to {
        let found = search(p, text, at, to)?;
        let start = found.start;
        let next_start = start + char_after(text, start).map_or(1, char::len_utf8);
        if start_ok(text, start)
            && let Some(f) = settle(p, text, found)
        {
            return Some(f);
        }
        at = next_start;
    }
    None
}

/// The last position in `(start, limit)` that ends a word.
fn previous_word_end(text: &str, start: usize, limit: usize) -> Option<usize> {
    let mut pos = limit;
    while pos > start {
        let c = char_before(text, pos)?;
        let before = pos - c.len_utf8();
        if before > start && !is_word_char(c) && char_before(text, before).is_some_and(is_word_char)
        {
            return Some(before);
        }
        pos = before;
    }
    None
}

/// The positions where each tried pattern may start, grouped by pattern (see [`Grouped`]),
/// each group sorted.
fn starts_by_pattern(
    anchors: &Anchors,
    literal_starts: &[(u32, usize)],
    tried: impl Fn(usize) -> bool,
) -> Grouped<usize> {
    // Whether each pattern is tried, asked once and only of patterns that may start
    // somewhere: 0 not asked yet, 1 tried, 2 not.
    let mut verdict = vec![0u8; anchors.needs.len()];
    let mut starts = Grouped::build(anchors.needs.len(), |emit| {
        for &(lit, start) in literal_starts {
            for &p in &anchors.patterns[lit as usize] {
                if verdict[p] == 0 {
                    verdict[p] = if tried(p) { 1 } else { 2 };
                }
                if verdict[p] == 1 {
                    emit(p, start);
                }
            }
        }
    });
    for (_, group) in starts.groups_mut() {
        group.sort_unstable();
    }
    starts
}

fn find_hits(policy: &Policy, norm: &Normalized) -> Vec<Hit> {
    let text = norm.text.as_str();
    let anchors = &policy.anchors;
    // Language packs this message opens (a Russian pack's patterns are not tried on a
    // message without a Cyrillic letter).
    let open = policy.open_packs(text);
    // One scan for every literal: where the patterns' last literals lie, and where a start
    // literal begins inside the text that can count (see `readable_ranges`). Start literals
    // are found inside words too ("ve" in "have"): a match may only begin at a word edge, so
    // those are dropped before any pattern is tried.
    let ranges = readable_ranges(norm);
    let (endings, literal_starts) = anchors.scan(text, &ranges, |start| start_ok(text, start));
    let tried = |pattern: usize| {
        policy.patterns[pattern].language.is_none_or(|l| open[l]) && endings.possible(pattern)
    };
    let starts = starts_by_pattern(anchors, &literal_starts, tried);
    let mut found: Vec<(usize, Found)> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    for (pattern, starts) in starts.groups() {
        let p = &policy.patterns[pattern];
        let phone = p.value == MatchValue::Phone;
        // A match ends with one of the pattern's last literals, no further than the
        // longest text the pattern can match.
        let known_ends = endings.positions(pattern, &mut ends);
        let reach = anchors.reach[pattern];
        let mut next_end = 0;
        // One pattern's occurrences do not overlap: the first one covers its stretch.
        let mut covered = 0;
        // Pasted logs and quoted text repeat themselves: a few occurrences of a pattern there
        // are all the evidence that can count, so the rest is not looked at. (hits, tries)
        // in logs and in quoted text.
        let mut weak = [(0usize, 0usize); 2];
        let mut previous = None;
        for &start in starts {
            // The same start found by two of the pattern's literals is tried once.
            if start < covered || previous == Some(start) {
                continue;
            }
            previous = Some(start);
            if known_ends {
                while next_end < ends.len() && ends[next_end] < start {
                    next_end += 1;
                }
                if ends.get(next_end).is_none_or(|&e| e >= start + reach) {
                    continue;
                }
            }
            let source = norm.source_at(start);
            let weak_slot = match source {
                None => continue,
                Some(Source::Signature) if !phone => continue,
                Some(Source::Log) => Some(0),
                Some(Source::Quoted) => Some(1),
                _ => None,
            };
            if let Some(w) = weak_slot {
                let (hits, tries) = &mut weak[w];
                if *hits >= MAX_EVIDENCE || *tries >= MAX_WEAK_TRIES {
                    continue;
                }
                *tries += 1;
            }
            if let Some(f) = occurrence_at(p, text, start) {
                if let Some(w) = weak_slot {
                    weak[w].0 += 1;
                }
                covered = f.end;
                found.push((pattern, f));
            }
        }
    }
    for &pattern in anchors.unanchored.iter().filter(|&&p| tried(p)) {
        for &(from, to) in &ranges {
            let mut at = from;
            while let Some(f) = next_occurrence(&policy.patterns[pattern], text, at, to) {
                at = f.end;
                found.push((pattern, f));
            }
        }
    }
    let clauses = Clauses::new(policy, text);
    let mut hits = Vec::new();
    for (idx, found) in found {
        let p = &policy.patterns[idx];
        let (start, end) = (found.start, found.end);
        if found.skip {
            // The pattern says this occurrence is about something else ("my VPS won't boot").
            continue;
        }
        let Some(source) = norm.source_of(start, end) else {
            continue;
        };
        let attr = &policy.attributes[p.attribute];
        if source == Source::Signature && attr.kind != AttributeKind::Phone {
            continue;
        }
        // A negation before a "no"-pattern ("we have not found any workaround") is the
        // same statement, not its opposite: only positive statements are negated, and
        // only for attributes that a preceding "not" can reverse.
        let positive = p.value != MatchValue::Flag(false);
        let negated = found.negated
            || positive && attr.negatable && negated_before(policy, text, &clauses, start);
        let past = policy.time.current_state[p.attribute]
            && in_past_clause(policy, text, &clauses, start, end);
        hits.push(Hit {
            attribute: p.attribute,
            value: p.value.clone(),
            strength: p.strength,
            start,
            end,
            source,
            negated,
            past,
            number: found.number.unwrap_or((start, end)),
        });
    }
    hits.sort_by_key(|h| (h.start, h.end));
    drop_shadowed(policy, &norm.text, &mut hits);
    hits
}

/// Drops the matches that a shadowing attribute found in the sender's words says mean
/// something else (see `shadows` in the policy).
fn drop_shadowed(policy: &Policy, text: &str, hits: &mut Vec<Hit>) {
    let shadows: Vec<_> = policy
        .attributes
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.shadows.as_ref().map(|s| (i, s)))
        .filter(|(i, _)| {
            hits.iter()
                .any(|h| h.attribute == *i && h.source == Source::Own && !h.negated)
        })
        .map(|(_, s)| s)
        .collect();
    if shadows.is_empty() {
        return;
    }
    hits.retain(|h| {
        !shadows.iter().any(|s| {
            s.attributes.contains(&h.attribute)
                && s.text
                    .as_ref()
                    .is_none_or(|t| t.is_match(&text[h.start..h.end]))
                && (!s.quoted
                    || s.logs && h.source == Source::Log
                    || in_quotes(text, h.start, h.end)
                    || in_quotes(text, last_char_start(text, h.end), h.end)
                    || introduces_quote(text, h.end))
        })
    });
}

/// Where the character that ends at `end` begins.
fn last_char_start(text: &str, end: usize) -> usize {
    end - char_before(text, end).map_or(0, char::len_utf8)
}

/// Whether a quotation follows right after `end` ("it prints 'Container is not running'"):
/// the words before it introduce the quoted message.
fn introduces_quote(text: &str, end: usize) -> bool {
    let rest = text[end..].trim_start_matches([' ', ':']);
    rest.starts_with(['\'', '"', '`'])
}

/// Whether `start..end` lies between quotation marks on its line ('…', "…" or `…`). A
/// single quote counts only at a word edge, so "doesn't" opens nothing.
fn in_quotes(text: &str, start: usize, end: usize) -> bool {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let is_quote = |s: &str, at: usize, c: char| -> bool {
        match c {
            '"' | '`' => true,
            '\'' => {
                !char_before(s, at).is_some_and(is_word_char)
                    || !char_after(s, at + 1).is_some_and(is_word_char)
            }
            _ => false,
        }
    };
    let opened = text[line_start..start]
        .char_indices()
        .filter(|&(i, c)| is_quote(text, line_start + i, c))
        .count();
    let closes = text[end..line_end]
        .char_indices()
        .any(|(i, c)| is_quote(text, end + i, c));
    opened % 2 == 1 && closes
}

/// A match that begins (ends) with a letter or digit must begin (end) a word: "lab" is not
/// found in "unavailable", nor "up" in "update".
fn edges_ok(text: &str, start: usize, end: usize) -> bool {
    let end_ok = !char_before(text, end).is_some_and(needs_edge)
        || !char_after(text, end).is_some_and(needs_edge);
    start_ok(text, start) && end_ok
}

/// Where the clauses of a message break, found once per message: negation and tense do not
/// reach across a break.
struct Clauses {
    /// Break stretches, in order and not overlapping.
    starts: Vec<usize>,
    ends: Vec<usize>,
    len: usize,
}

impl Clauses {
    fn new(policy: &Policy, text: &str) -> Clauses {
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        for m in policy.negation.breaks.find_iter(text) {
            starts.push(m.start());
            ends.push(m.end());
        }
        Clauses {
            starts,
            ends,
            len: text.len(),
        }
    }

    /// The start of the clause that holds `at`.
    fn start(&self, at: usize) -> usize {
        let i = self.ends.partition_point(|&e| e <= at);
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// The end of the clause that holds `at`.
    fn end(&self, at: usize) -> usize {
        let i = self.starts.partition_point(|&s| s < at);
        self.starts.get(i).copied().unwrap_or(self.len)
    }

    /// The stretch of `text` around `start..end` that negation and tense are looked for in:
    /// the clause holding it, cut to `CLAUSE_REACH` bytes on each side. A clause without
    /// breaks can be the whole message, and the bound keeps the cost linear in its length.
    fn window(&self, text: &str, start: usize, end: usize) -> (usize, usize) {
        let from =
            text.ceil_char_boundary(self.start(start).max(start.saturating_sub(CLAUSE_REACH)));
        let to = text.floor_char_boundary(self.end(end).min(end + CLAUSE_REACH));
        (from, to.max(from))
    }
}

/// Is there a negation word within the window before `at`, in the same clause?
fn negated_before(policy: &Policy, text: &str, clauses: &Clauses, at: usize) -> bool {
    let (from, _) = clauses.window(text, at, at);
    let neg = &policy.negation;
    text[from..at]
        .split(|c: char| !(is_word_char(c) || c == '\''))
        .filter(|w| !w.is_empty())
        .rev()
        .take(neg.window)
        .any(|w| neg.words.contains(w) || neg.suffixes.iter().any(|s| w.ends_with(s.as_str())))
}

fn in_past_clause(
    policy: &Policy,
    text: &str,
    clauses: &Clauses,
    start: usize,
    end: usize,
) -> bool {
    let (from, to) = clauses.window(text, start, end);
    policy.time.past.is_match(&text[from..to])
}

/// What a hit says once negation and time are applied; `None` when it says nothing.
fn effective(policy: &Policy, h: &Hit, recovered: bool) -> Option<FactValue> {
    match &h.value {
        MatchValue::Flag(b) => {
            let mut v = *b != h.negated;
            // A pasted log records what happened; when the sender says it is over, the log's
            // failures are not current either.
            if v && (h.past || h.source == Source::Log) && recovered {
                // "It was down yesterday, fine now": not a current outage.
                v = false;
            }
            Some(FactValue::Flag(v))
        }
        MatchValue::Value(v) => {
            if h.negated {
                policy.attributes[h.attribute]
                    .negated
                    .get(v)
                    .map(|n| FactValue::Value(n.clone()))
            } else {
                Some(FactValue::Value(v.clone()))
            }
        }
        MatchValue::Item(v) => (!h.negated).then(|| FactValue::List(vec![v.clone()])),
        MatchValue::Phone => None,
    }
}

fn evidence_of(policy: &Policy, text: &str, h: &Hit, negated: bool) -> Evidence {
    Evidence {
        attribute: policy.attributes[h.attribute].name.clone(),
        text: text[h.start..h.end].to_string(),
        start: h.start,
        end: h.end,
        source: h.source,
        negated,
    }
}

/// How far, in bytes, negation and tense are looked for around a match within its clause.
const CLAUSE_REACH: usize = 160;

/// Tries of one pattern in pasted logs (and in quoted text) before it is given up there.
const MAX_WEAK_TRIES: usize = 12;

/// At most this many pieces of evidence per fact: enough to show why, short enough to read.
const MAX_EVIDENCE: usize = 3;

/// Decides each attribute from the hits in the given sources; returns whether any fact that
/// counts (a non-internal flag or value) was found.
fn resolve(
    policy: &Policy,
    norm: &Normalized,
    hits: &[Hit],
    sources: &[Source],
    recovered: bool,
    facts: &mut Facts,
) -> bool {
    let mut by_attr: HashMap<usize, Vec<(&Hit, FactValue)>> = HashMap::new();
    for h in hits.iter().filter(|h| sources.contains(&h.source)) {
        if let Some(v) = effective(policy, h, recovered) {
            by_attr.entry(h.attribute).or_default().push((h, v));
        }
    }
    let mut found = false;
    let mut restored_evidence = None;
    for (attr, list) in by_attr {
        let a = &policy.attributes[attr];
        // The sender's own words beat a pasted log; a log counts when the words are silent.
        let best_source = list
            .iter()
            .map(|(h, _)| h.source)
            .min()
            .unwrap_or(Source::Own);
        let list: Vec<_> = list
            .into_iter()
            .filter(|(h, _)| h.source == best_source)
            .collect();
        let value = match a.kind {
            AttributeKind::List => {
                let mut items: Vec<String> = Vec::new();
                for (_, v) in &list {
                    if let FactValue::List(v) = v {
                        for item in v {
                            if !items.contains(item) {
                                items.push(item.clone());
                            }
                        }
                    }
                }
                FactValue::List(items)
            }
            _ => {
                let top = list.iter().map(|(h, _)| h.strength).max().unwrap_or(1);
                let strongest: Vec<_> = list.iter().filter(|(h, _)| h.strength == top).collect();
                let tie = a.tie.as_ref().and_then(|t| {
                    strongest
                        .iter()
                        .find(|(_, v)| matches!(v, FactValue::Value(x) if x == t))
                });
                // Later statements win: customers correct themselves as they write.
                match tie.or(strongest.last()) {
                    Some((_, v)) => v.clone(),
                    None => continue,
                }
            }
        };
        let mut seen = Vec::new();
        let supporting: Vec<Evidence> = list
            .iter()
            .filter(|(h, _)| {
                // Two patterns finding the same words are one piece of evidence.
                let span = (h.start, h.end);
                let fresh = !seen.contains(&span);
                seen.push(span);
                fresh
            })
            .filter(|(_, v)| match (&value, v) {
                (FactValue::List(all), FactValue::List(one)) => one.iter().all(|i| all.contains(i)),
                _ => *v == value,
            })
            .take(MAX_EVIDENCE)
            .map(|(h, v)| {
                let negated =
                    matches!((&h.value, v), (MatchValue::Flag(a), FactValue::Flag(b)) if a != b);
                evidence_of(policy, &norm.text, h, negated)
            })
            .collect();
        if policy.time.current_state[attr]
            && value == FactValue::Flag(false)
            && list
                .iter()
                .any(|(h, _)| h.past && h.value == MatchValue::Flag(true))
        {
            restored_evidence = supporting.first().cloned();
        }
        // Internal signals count too: "it works again since your fix" is something the
        // sender says, so the quoted text is not read in its place.
        if a.kind == AttributeKind::Flag && a.standalone {
            found = true;
        }
        facts.slots[attr] = Some(Fact {
            value,
            evidence: supporting,
            source: best_source,
        });
    }
    // A current-state failure told in the present tense is going on now.
    let present = policy.time.present_means;
    if facts.slots[present].is_none()
        && let Some(h) = list_present_failure(policy, hits, sources, recovered)
    {
        facts.slots[present] = Some(Fact {
            value: FactValue::Flag(true),
            evidence: vec![evidence_of(policy, &norm.text, h, false)],
            source: h.source,
        });
    }
    // The policy reads an outage that is already over as having a workaround.
    let restored = policy.time.restored_means;
    if recovered && facts.slots[restored].is_none() {
        let recovery = hits
            .iter()
            .find(|h| h.attribute == policy.time.recovered_by && sources.contains(&h.source));
        if let (Some(_), Some(h)) = (restored_evidence, recovery) {
            let mut ev = evidence_of(policy, &norm.text, h, false);
            ev.attribute = policy.attributes[restored].name.clone();
            facts.slots[restored] = Some(Fact {
                value: FactValue::Flag(true),
                evidence: vec![ev],
                source: h.source,
            });
        }
    }
    found
}

/// Fills in facts that follow from others ("the rollback did not help" answers "is there a
/// workaround?"), with the evidence of the facts they follow from.
fn imply(policy: &Policy, facts: &mut Facts) {
    for imp in &policy.implications {
        if facts.get(imp.set).is_some()
            || !super::facts::holds(policy, &imp.when, facts, Default::default())
        {
            continue;
        }
        let name = &policy.attributes[imp.set].name;
        let from = super::check::attributes_of(policy, &imp.when);
        let mut evidence: Vec<Evidence> = from
            .iter()
            .filter_map(|&i| facts.get(i))
            .flat_map(|f| f.evidence.iter().cloned())
            .collect();
        evidence.iter_mut().for_each(|e| e.attribute = name.clone());
        let source = facts.weakest_source(&from);
        facts.slots[imp.set] = Some(Fact {
            value: FactValue::Flag(imp.value),
            evidence,
            source,
        });
    }
}

/// Numbers already placed by the phone library, so each is parsed once per process: the
/// library's own regex cache is small and recompiles its patterns when numbers from many
/// countries come by, which made parsing the most expensive step of triage.
type PhoneKey = (Option<phonenumber::country::Id>, String);
static PHONE_CACHE: LazyLock<Mutex<HashMap<PhoneKey, Option<String>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// Beyond this many numbers the cache starts over, so memory stays bounded.
const PHONE_CACHE_LIMIT: usize = 16_384;

/// The number in E.164 when the phone library accepts it as valid.
fn to_e164(region: Option<phonenumber::country::Id>, written: &str) -> Option<String> {
    let key = (region, written.to_string());
    if let Ok(cache) = PHONE_CACHE.lock()
        && let Some(hit) = cache.get(&key)
    {
        return hit.clone();
    }
    let result = phonenumber::parse(region, written)
        .ok()
        .filter(phonenumber::is_valid)
        .map(|n| n.format().mode(phonenumber::Mode::E164).to_string());
    if let Ok(mut cache) = PHONE_CACHE.lock() {
        if cache.len() >= PHONE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, result.clone());
    }
    result
}

/// A hit that reports a current-state failure in the present tense, if any.
fn list_present_failure<'h>(
    policy: &Policy,
    hits: &'h [Hit],
    sources: &[Source],
    recovered: bool,
) -> Option<&'h Hit> {
    hits.iter().find(|h| {
        policy.time.current_state[h.attribute]
            && !h.past
            && sources.contains(&h.source)
            && effective(policy, h, recovered) == Some(FactValue::Flag(true))
    })
}

/// The contact phone: the first number in the sender's own words or signature that the
/// phone library accepts (E.164), else a number introduced by a phone word, as written.
fn phone(policy: &Policy, norm: &Normalized, hits: &[Hit], facts: &mut Facts) {
    let Some(attr) = policy
        .attributes
        .iter()
        .position(|a| a.kind == AttributeKind::Phone)
    else {
        return;
    };
    let mut candidates: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.attribute == attr && matches!(h.source, Source::Own | Source::Signature))
        .collect();
    if candidates.is_empty() {
        candidates = hits
            .iter()
            .filter(|h| h.attribute == attr && h.source == Source::Quoted && !facts.found_any)
            .collect();
    }
    let mut fallback = None;
    for h in candidates {
        let (s, e) = h.number;
        let written = &norm.text[s..e];
        let digits: String = written.chars().filter(char::is_ascii_digit).collect();
        if !(7..=15).contains(&digits.len()) {
            continue;
        }
        let international =
            written.trim_start().starts_with('+') || written.trim_start().starts_with("00");
        let e164 = if international {
            let plus = if let Some(rest) = written.trim_start().strip_prefix("00") {
                format!("+{rest}")
            } else {
                written.to_string()
            };
            to_e164(None, &plus)
        } else {
            policy
                .default_region
                .and_then(|region| to_e164(Some(region), written))
        };
        let ev = |text: String| Evidence {
            attribute: policy.attributes[attr].name.clone(),
            text,
            start: s,
            end: e,
            source: h.source,
            negated: false,
        };
        if let Some(e164) = e164 {
            facts.slots[attr] = Some(Fact {
                value: FactValue::Phone(e164),
                evidence: vec![ev(written.to_string())],
                source: h.source,
            });
            return;
        }
        if fallback.is_none() && (h.number != (h.start, h.end) || international) {
            // Introduced by a phone word, or written with its country code, but not a number
            // the library can place (an old numbering plan, a new range it does not know):
            // keep it as written (digits and a leading +) so an agent can still call.
            let kept = if international {
                format!("+{digits}")
            } else {
                digits
            };
            fallback = Some(Fact {
                value: FactValue::Phone(kept),
                evidence: vec![ev(written.to_string())],
                source: h.source,
            });
        }
    }
    if let Some(f) = fallback {
        facts.slots[attr] = Some(f);
    }
}
