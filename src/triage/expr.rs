//! The condition language of the policy: `when = "server_down & !hardware_fault"`.
//!
//! Grammar (whitespace is free):
//! ```text
//! expr    := and ('|' and)*
//! and     := unary ('&' unary)*
//! unary   := '!' unary | primary
//! primary := '(' expr ')' | 'true' | 'false'
//!          | 'known' '(' NAME ')' | 'unknown' '(' NAME ')'
//!          | NAME [ ('==' | '!=' | '<=' | '>=' | '<' | '>') VALUE ]
//! ```
//! Facts are tri-state, so negation needs care: a bare flag `x` holds when the fact is
//! `true`; `!x` holds when it is not `true` (false *or* unknown), which is how the policy
//! reads "and not hardware_fault". `x == false` asks for an explicit "no".

use std::fmt;

/// A comparison operator in a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
}

impl CmpOp {
    pub fn holds_num(self, left: i64, right: i64) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::Ne => left != right,
            CmpOp::Le => left <= right,
            CmpOp::Ge => left >= right,
            CmpOp::Lt => left < right,
            CmpOp::Gt => left > right,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
        })
    }
}

/// A parsed condition, with names still as text; `policy.rs` resolves them.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(bool),
    /// A bare name: a flag is true, a value or list is known, a derived condition holds.
    Name(String),
    Known(String),
    Unknown(String),
    Compare(String, CmpOp, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Every name the condition refers to, in order of appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Const(_) => {}
            Expr::Name(n) | Expr::Known(n) | Expr::Unknown(n) | Expr::Compare(n, _, _) => {
                out.push(n)
            }
            Expr::Not(e) => e.collect_names(out),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.collect_names(out)),
        }
    }
}

/// Why a condition could not be parsed; `at` is a byte offset into the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(String),
    And,
    Or,
    Not,
    Open,
    Close,
    Cmp(CmpOp),
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.' || c == '-'
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let mut toks = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        let two = src.get(i..i + 2).unwrap_or("");
        let (tok, len) = match c {
            _ if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '&' => (Tok::And, if two == "&&" { 2 } else { 1 }),
            '|' => (Tok::Or, if two == "||" { 2 } else { 1 }),
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            '=' if two == "==" => (Tok::Cmp(CmpOp::Eq), 2),
            '!' if two == "!=" => (Tok::Cmp(CmpOp::Ne), 2),
            '!' => (Tok::Not, 1),
            '<' if two == "<=" => (Tok::Cmp(CmpOp::Le), 2),
            '>' if two == ">=" => (Tok::Cmp(CmpOp::Ge), 2),
            '<' => (Tok::Cmp(CmpOp::Lt), 1),
            '>' => (Tok::Cmp(CmpOp::Gt), 1),
            _ if is_name_char(c) => {
                let end = src[i..]
                    .find(|ch: char| !is_name_char(ch))
                    .map_or(src.len(), |n| i + n);
                let word = &src[i..end];
                let tok = if word.chars().all(|ch| ch.is_ascii_digit()) {
                    Tok::Num(word.to_string())
                } else {
                    match word {
                        "and" => Tok::And,
                        "or" => Tok::Or,
                        "not" => Tok::Not,
                        _ => Tok::Name(word.to_string()),
                    }
                };
                (tok, end - i)
            }
            _ => {
                return Err(ParseError {
                    at: i,
                    message: format!("unexpected character '{c}'"),
                });
            }
        };
        toks.push((i, tok));
        for _ in 0..len {
            chars.next();
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(i, _)| *i)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            at: self.at(),
            message: message.into(),
        })
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return self.err("expected ')'");
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Name(name)) => {
                self.pos += 1;
                match name.as_str() {
                    "true" => return Ok(Expr::Const(true)),
                    "false" => return Ok(Expr::Const(false)),
                    "known" | "unknown" if self.peek() == Some(&Tok::Open) => {
                        self.pos += 1;
                        let Some(Tok::Name(inner)) = self.peek().cloned() else {
                            return self.err(format!("expected a name inside {name}( )"));
                        };
                        self.pos += 1;
                        if self.peek() != Some(&Tok::Close) {
                            return self.err("expected ')'");
                        }
                        self.pos += 1;
                        return Ok(if name == "known" {
                            Expr::Known(inner)
                        } else {
                            Expr::Unknown(inner)
                        });
                    }
                    _ => {}
                }
                if let Some(Tok::Cmp(op)) = self.peek().cloned() {
                    self.pos += 1;
                    match self.peek().cloned() {
                        Some(Tok::Name(v)) | Some(Tok::Num(v)) => {
                            self.pos += 1;
                            Ok(Expr::Compare(name, op, v))
                        }
                        _ => self.err(format!("expected a value after '{op}'")),
                    }
                } else {
                    Ok(Expr::Name(name))
                }
            }
            Some(Tok::Num(n)) => self.err(format!("a number ({n}) can only follow a comparison")),
            Some(t) => self.err(format!("unexpected {t:?}")),
            None => self.err("the condition ends too early"),
        }
    }
}

/// Parses a condition. An empty condition is an error: say `true` to mean "always".
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.len(),
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return p.err("unexpected text after the end of the condition");
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let e = parse("a | b & !c").unwrap();
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::Name("a".into()),
                Expr::And(vec![
                    Expr::Name("b".into()),
                    Expr::Not(Box::new(Expr::Name("c".into())))
                ])
            ])
        );
    }

    #[test]
    fn comparisons_functions_and_words() {
        let e = parse("environment != non_production and unknown(scope) or level <= 2").unwrap();
        assert_eq!(e.names(), vec!["environment", "scope", "level"]);
        assert!(matches!(e, Expr::Or(_)));
        assert_eq!(
            parse("rule == s2.after_update").unwrap(),
            Expr::Compare("rule".into(), CmpOp::Eq, "s2.after_update".into())
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = parse("a & (b | c").unwrap_err();
        assert_eq!(err.message, "expected ')'");
        assert_eq!(err.at, 10);
        let err = parse("a $ b").unwrap_err();
        assert_eq!(err.at, 2);
        assert!(parse("").is_err());
        assert!(parse("level <=").is_err());
        assert!(parse("a b").is_err());
    }
}
