//! Which language a message is written in: the sender's own words (not logs, not quotes) go
//! to whatlang; the answer is one of the languages the policy has a pack for, else English.

use super::facts::Source;
use super::policy::{Policy, Script};
use super::text::Normalized;

/// The base language of every policy.
pub const BASE: &str = "en";

/// ISO 639-1 code of a whatlang language, for the languages firstline may have packs for.
fn code(lang: whatlang::Lang) -> Option<&'static str> {
    use whatlang::Lang::*;
    Some(match lang {
        Eng => "en",
        Deu => "de",
        Fra => "fr",
        Spa => "es",
        Rus | Ukr | Bel => "ru",
        Cmn | Jpn => "zh",
        Ita => "it",
        Por => "pt",
        Nld => "nl",
        Pol => "pl",
        _ => return None,
    })
}

/// The language of the sender's own words, among the policy's (English when unsure).
pub fn detect(policy: &Policy, norm: &Normalized) -> String {
    let mut own = String::new();
    for seg in &norm.segments {
        if seg.source == Some(Source::Own) {
            own.push_str(&norm.text[seg.start..seg.end]);
            own.push(' ');
        }
    }
    if own.trim().is_empty() {
        own = norm.text.clone();
    }
    detect_text(policy, &own)
}

/// The language of a text, among the policy's (English when unsure).
pub fn detect_text(policy: &Policy, text: &str) -> String {
    let known = |c: &str| c == BASE || policy.languages.iter().any(|l| l.code == c);
    // Scripts first: a message with Han or Cyrillic letters is in that language even when
    // most of its words are English jargon and log lines.
    let (mut han, mut cyrillic, mut letters) = (0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if Script::Han.has(c) {
            han += 1;
        } else if Script::Cyrillic.has(c) {
            cyrillic += 1;
        }
    }
    if han >= 2 && known("zh") {
        return "zh".into();
    }
    if letters > 0 && cyrillic * 5 >= letters && known("ru") {
        return "ru".into();
    }
    let allow: Vec<whatlang::Lang> = [
        whatlang::Lang::Eng,
        whatlang::Lang::Deu,
        whatlang::Lang::Fra,
        whatlang::Lang::Spa,
    ]
    .into_iter()
    .filter(|l| code(*l).is_some_and(known))
    .collect();
    if allow.len() < 2 {
        return BASE.to_string();
    }
    // A language is only chosen over English when at least one of its function words is
    // there (see below): without any, whatlang need not run.
    let counts = function_word_counts(text);
    if !allow
        .iter()
        .filter_map(|l| code(*l))
        .any(|c| c != BASE && counts.get(c) > 0)
    {
        return BASE.to_string();
    }
    // Hosting jargon is English in every language ("Server", "Backup", "Update"), which makes
    // whatlang unsure: its guess counts when it is reliable, or when the language's own
    // small words back it up.
    let guess = whatlang::Detector::with_allowlist(allow).detect(text);
    match guess {
        Some(info) => {
            let Some(c) = code(info.lang()) else {
                return BASE.to_string();
            };
            if c == BASE {
                return BASE.to_string();
            }
            let own = counts.get(c);
            let english = counts.get(BASE);
            if own > english && (info.is_reliable() || own >= 2) {
                c.to_string()
            } else {
                BASE.to_string()
            }
        }
        None => BASE.to_string(),
    }
}

/// How many of a language's most common small words the text holds.
/// How many of each language's function words a text has (whole words).
struct FunctionWords([usize; FUNCTION_WORD_LANGS.len()]);

const FUNCTION_WORD_LANGS: [&str; 4] = [BASE, "de", "fr", "es"];

impl FunctionWords {
    fn get(&self, lang: &str) -> usize {
        FUNCTION_WORD_LANGS
            .iter()
            .position(|&l| l == lang)
            .map_or(0, |i| self.0[i])
    }
}

/// Counts every language's function words in one pass over the words.
fn function_word_counts(text: &str) -> FunctionWords {
    let mut counts = [0; FUNCTION_WORD_LANGS.len()];
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() || w.len() > LONGEST_FUNCTION_WORD {
            continue;
        }
        let lower;
        let w = if w.chars().any(char::is_uppercase) {
            lower = w.to_lowercase();
            lower.as_str()
        } else {
            w
        };
        for (i, lang) in FUNCTION_WORD_LANGS.iter().enumerate() {
            if function_words(lang).contains(&w) {
                counts[i] += 1;
            }
        }
    }
    FunctionWords(counts)
}

/// Longer than any function word below, in bytes.
const LONGEST_FUNCTION_WORD: usize = 16;

fn function_words(lang: &str) -> &'static [&'static str] {
    match lang {
        "en" => &[
            "the", "is", "and", "not", "we", "our", "it", "to", "of", "after", "please", "with",
            "on", "does", "since",
        ],
        "de" => &[
            "der", "die", "das", "und", "nicht", "ist", "wir", "unser", "unsere", "nach", "mit",
            "bitte", "auf", "seit", "kein", "keine", "ein", "eine", "mehr", "geht", "läuft",
            "auch", "noch",
        ],
        "fr" => &[
            "le", "la", "les", "et", "pas", "est", "nous", "notre", "nos", "après", "avec",
            "depuis", "une", "des", "ne", "plus", "sur", "merci", "il", "sont",
        ],
        "es" => &[
            "el", "la", "los", "las", "y", "no", "está", "están", "nuestro", "nuestra", "después",
            "con", "desde", "una", "por", "favor", "funciona", "hay", "del", "se",
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use crate::triage::{Policy, extract};

    #[test]
    fn english_cases_stay_english_and_other_languages_are_told_apart() {
        let policy = Policy::embedded();
        for f in [
            "fixtures/triage/dev.jsonl",
            "fixtures/triage/dev2.jsonl",
            "fixtures/triage/phrases.jsonl",
        ] {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let Some(t) = v["text"].as_str() else {
                    continue;
                };
                assert_eq!(extract(&policy, t).language, "en", "{f}: {t}");
            }
        }
        for (text, lang) in [
            (
                "Hallo, unser Server bootet nach dem Update nicht mehr, alle Container sind offline.",
                "de",
            ),
            ("der Server ist down", "de"),
            (
                "Bonjour, le serveur ne démarre plus depuis la mise à jour.",
                "fr",
            ),
            ("el vps no arranca", "es"),
            ("сервер лежит после обновления", "ru"),
            ("prod нода упала, all CTs offline", "ru"),
            ("虚拟机无法启动", "zh"),
        ] {
            assert_eq!(extract(&policy, text).language, lang, "{text}");
        }
    }
}
