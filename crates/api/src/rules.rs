//! Collection rules: the small expression language that puts machines into
//! collections by their inventory facts, such as
//! `arch == "x86_64" and memory_mb >= 4096 and any(nic.mac, "52:54:00:*")`.
//!
//! `docs/rule-language.md` specifies the language (version 1); this module is
//! its implementation. A rule is parsed once ([`Rule::parse`]) and evaluated
//! against any number of facts documents ([`Rule::matches`]). Parsing refuses
//! hostile text with a [`RuleError`] (length and nesting limits, no panics);
//! evaluation never fails: a fact of the wrong type or a missing fact simply
//! does not satisfy a comparison. Globs are matched by a two-pointer matcher
//! that is O(text × pattern), not by a regex engine.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// The longest rule, in bytes, both as written and in canonical form.
pub const MAX_RULE_BYTES: usize = 4096;

/// The deepest nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 64;

/// The longest piece of the rule's text an error message quotes, in characters.
const MAX_EXCERPT: usize = 24;

const FUNCTIONS: &str = "any, all, exists, count";

/// A parsed collection rule. Its `Display` is the canonical text, which parses
/// back to an equal rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    expr: Expr,
}

/// Why a rule's text was refused: where (1-based character column, counting
/// from the start of the rule; a line break counts as one character) and what
/// was expected and found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct RuleError {
    pub column: usize,
    pub message: String,
}

impl Rule {
    /// Parses a rule, refusing text longer than [`MAX_RULE_BYTES`] (as written
    /// or in canonical form) or nested deeper than [`MAX_DEPTH`].
    pub fn parse(src: &str) -> Result<Rule, RuleError> {
        if src.len() > MAX_RULE_BYTES {
            return Err(err(1, format!("the rule is {} bytes long; the limit is {MAX_RULE_BYTES} bytes", src.len())));
        }
        let tokens = lex(src)?;
        let mut parser = Parser { tokens, pos: 0, depth: 0 };
        let expr = parser.parse_or()?;
        let end = parser.peek();
        if end.tok != Tok::End {
            let message = match end.tok {
                Tok::RParen => "found ')' without a matching '('".to_string(),
                _ => format!("expected 'and', 'or' or end of rule, found {}{}", end.describe(), case_hint(end)),
            };
            return Err(err(end.column, message));
        }
        let rule = Rule { expr };
        let canonical = rule.to_string().len();
        if canonical > MAX_RULE_BYTES {
            return Err(err(
                1,
                format!(
                    "the rule is {canonical} bytes long in canonical form (with spaces around operators); \
                     the limit is {MAX_RULE_BYTES} bytes"
                ),
            ));
        }
        Ok(rule)
    }

    /// Whether a machine with these facts belongs to the collection. Facts are
    /// a JSON object; anything else has no facts.
    #[must_use]
    pub fn matches(&self, facts: &Value) -> bool {
        self.expr.eval(facts)
    }

    /// The fact paths the rule reads, deduplicated, in order of appearance.
    #[must_use]
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.expr.collect_paths(&mut out);
        out
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Rule, RuleError> {
        Rule::parse(s)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.write(f)
    }
}

fn err(column: usize, message: String) -> RuleError {
    RuleError { column, message }
}

impl RuleError {
    fn with_hint(mut self, hint: &str) -> RuleError {
        self.message.push_str(hint);
        self
    }
}

// ---------------------------------------------------------------------------
// The syntax tree

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Const(bool),
    /// Two or more operands, none of them an `And` (the parser flattens).
    And(Vec<Expr>),
    /// Two or more operands, none of them an `Or`.
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        path: Path,
        op: CmpOp,
        value: Literal,
    },
    In {
        path: Path,
        list: Vec<Literal>,
    },
    /// `path ~ "glob"`; the same test as `any(path, "glob")`, kept apart so
    /// the rule prints as written.
    Match {
        path: Path,
        glob: Glob,
    },
    Any {
        path: Path,
        glob: Glob,
    },
    All {
        path: Path,
        glob: Glob,
    },
    Exists(Path),
    Count {
        path: Path,
        op: CmpOp,
        n: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Path(Vec<String>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    /// Always finite.
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write_string(f, s),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => {
                // Rust prints floats positionally, never with an exponent, and
                // with the fewest digits that read back to the same value; a
                // whole number gets ".0" so that it reads back as a decimal.
                let text = x.to_string();
                f.write_str(&text)?;
                if !text.contains('.') {
                    f.write_str(".0")?;
                }
                Ok(())
            }
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl Expr {
    /// Binding strength, for printing parentheses only where they are needed.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            Expr::Not(_) => 3,
            _ => 4,
        }
    }

    fn write_operand(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.precedence() < min {
            f.write_str("(")?;
            self.write(f)?;
            f.write_str(")")
        } else {
            self.write(f)
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Const(b) => write!(f, "{b}"),
            Expr::And(items) | Expr::Or(items) => {
                let (sep, min) = if matches!(self, Expr::And(_)) { (" and ", 3) } else { (" or ", 2) };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    item.write_operand(f, min)?;
                }
                Ok(())
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                inner.write_operand(f, 3)
            }
            Expr::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Expr::In { path, list } => {
                write!(f, "{path} in [")?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Expr::Match { path, glob } => {
                write!(f, "{path} ~ ")?;
                write_string(f, &glob.source)
            }
            Expr::Any { path, glob } | Expr::All { path, glob } => {
                let name = if matches!(self, Expr::Any { .. }) { "any" } else { "all" };
                write!(f, "{name}({path}, ")?;
                write_string(f, &glob.source)?;
                f.write_str(")")
            }
            Expr::Exists(path) => write!(f, "exists({path})"),
            Expr::Count { path, op, n } => write!(f, "count({path}) {} {n}", op.as_str()),
        }
    }

    fn collect_paths(&self, out: &mut Vec<String>) {
        let path = match self {
            Expr::Const(_) => return,
            Expr::And(items) | Expr::Or(items) => {
                items.iter().for_each(|e| e.collect_paths(out));
                return;
            }
            Expr::Not(inner) => return inner.collect_paths(out),
            Expr::Compare { path, .. }
            | Expr::In { path, .. }
            | Expr::Match { path, .. }
            | Expr::Any { path, .. }
            | Expr::All { path, .. }
            | Expr::Exists(path)
            | Expr::Count { path, .. } => path.to_string(),
        };
        if !out.contains(&path) {
            out.push(path);
        }
    }

    fn eval(&self, facts: &Value) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::And(items) => items.iter().all(|e| e.eval(facts)),
            Expr::Or(items) => items.iter().any(|e| e.eval(facts)),
            Expr::Not(inner) => !inner.eval(facts),
            Expr::Compare { path, op: CmpOp::Ne, value } => {
                !values(facts, path).iter().any(|v| compare(v, value) == Some(Ordering::Equal))
            }
            Expr::Compare { path, op, value } => {
                values(facts, path).iter().any(|v| compare(v, value).is_some_and(|ord| op.holds(ord)))
            }
            Expr::In { path, list } => {
                values(facts, path).iter().any(|v| list.iter().any(|item| compare(v, item) == Some(Ordering::Equal)))
            }
            Expr::Match { path, glob } | Expr::Any { path, glob } => {
                values(facts, path).iter().any(|v| v.as_str().is_some_and(|s| glob.matches(s)))
            }
            Expr::All { path, glob } => {
                let found = values(facts, path);
                !found.is_empty() && found.iter().all(|v| v.as_str().is_some_and(|s| glob.matches(s)))
            }
            Expr::Exists(path) => !values(facts, path).is_empty(),
            Expr::Count { path, op, n } => {
                let count = i128::try_from(values(facts, path).len()).unwrap_or(i128::MAX);
                op.holds(count.cmp(&i128::from(*n)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation over facts

/// Every value a path reaches: each segment looks up a key in every object
/// reached so far; arrays met on the way (nested ones too) stand for all
/// their elements, in order; `null` counts as no value.
fn values<'a>(facts: &'a Value, path: &Path) -> Vec<&'a Value> {
    let mut current = vec![facts];
    for segment in &path.0 {
        let mut next = Vec::new();
        for value in current {
            if let Some(found) = value.as_object().and_then(|m| m.get(segment)) {
                flatten_into(found, &mut next);
            }
        }
        if next.is_empty() {
            return next;
        }
        current = next;
    }
    current
}

/// Appends `value`, or the elements of an array (of arrays) in order, without
/// recursion so that deeply nested arrays cannot exhaust the stack.
fn flatten_into<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Null => {}
            v => out.push(v),
        }
    }
}

/// How a fact value compares with a literal: numbers numerically, strings
/// by Unicode code point, booleans with booleans; `None` for any other pair.
fn compare(value: &Value, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (Value::String(s), Literal::Str(l)) => Some(s.as_str().cmp(l.as_str())),
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::Number(n), Literal::Int(l)) => {
            if let Some(i) = n.as_i64() {
                Some(i.cmp(l))
            } else if let Some(u) = n.as_u64() {
                Some(i128::from(u).cmp(&i128::from(*l)))
            } else {
                n.as_f64()?.partial_cmp(&(*l as f64))
            }
        }
        (Value::Number(n), Literal::Float(l)) => n.as_f64()?.partial_cmp(l),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Globs

/// A glob pattern: `*` any run of characters, `?` one character, `[abc]`,
/// `[a-z]`, `[!abc]` or `[^abc]` one character from (or not from) a class;
/// anything else matches itself. ASCII letters match either case.
#[derive(Debug, Clone, PartialEq)]
struct Glob {
    source: String,
    tokens: Vec<GlobToken>,
}

#[derive(Debug, Clone, PartialEq)]
enum GlobToken {
    Star,
    One,
    Char(char),
    Class { negated: bool, ranges: Vec<(char, char)> },
}

impl GlobToken {
    fn matches(&self, c: char) -> bool {
        match self {
            GlobToken::Star | GlobToken::One => true,
            GlobToken::Char(p) => p.eq_ignore_ascii_case(&c),
            GlobToken::Class { negated, ranges } => {
                let within = |c: char| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                let hit = within(c) || within(c.to_ascii_lowercase()) || within(c.to_ascii_uppercase());
                hit != *negated
            }
        }
    }
}

impl Glob {
    /// Compiles a pattern; `column` is where its string starts, for errors.
    fn compile(source: String, column: usize) -> Result<Glob, RuleError> {
        let chars: Vec<char> = source.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if tokens.last() != Some(&GlobToken::Star) {
                        tokens.push(GlobToken::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(GlobToken::One);
                    i += 1;
                }
                '[' => {
                    let mut j = i + 1;
                    let negated = matches!(chars.get(j), Some('!' | '^'));
                    if negated {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let Some(&c) = chars.get(j) else {
                            return Err(err(
                                column,
                                "unclosed '[' in pattern; close the class with ']', or write '[[]' to match '['"
                                    .to_string(),
                            ));
                        };
                        if c == ']' && !ranges.is_empty() {
                            j += 1;
                            break;
                        }
                        match (chars.get(j + 1), chars.get(j + 2)) {
                            (Some('-'), Some(&hi)) if hi != ']' => {
                                if c > hi {
                                    return Err(err(
                                        column,
                                        format!("range '{c}-{hi}' in pattern is backwards; write '{hi}-{c}'"),
                                    ));
                                }
                                ranges.push((c, hi));
                                j += 3;
                            }
                            _ => {
                                ranges.push((c, c));
                                j += 1;
                            }
                        }
                    }
                    tokens.push(GlobToken::Class { negated, ranges });
                    i = j;
                }
                c => {
                    tokens.push(GlobToken::Char(c));
                    i += 1;
                }
            }
        }
        Ok(Glob { source, tokens })
    }

    /// Greedy two-pointer matching: on a mismatch, the last `*` takes one
    /// more character and matching resumes after it. O(text × pattern).
    fn matches(&self, text: &str) -> bool {
        let pattern = &self.tokens;
        let (mut p, mut t) = (0, 0);
        // After the last `*` seen: the pattern index after it and the text
        // offset where the rest of the pattern was last tried.
        let mut retry: Option<(usize, usize)> = None;
        while let Some(c) = text[t..].chars().next() {
            match pattern.get(p) {
                Some(GlobToken::Star) if p + 1 == pattern.len() => return true,
                Some(GlobToken::Star) => {
                    p += 1;
                    retry = Some((p, t));
                    continue;
                }
                Some(token) if token.matches(c) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            let Some((after_star, from)) = retry else { return false };
            let skipped = text[from..].chars().next().map_or(1, char::len_utf8);
            p = after_star;
            t = from + skipped;
            retry = Some((after_star, t));
        }
        pattern[p..].iter().all(|token| *token == GlobToken::Star)
    }
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Path(Path),
    And,
    Or,
    Not,
    In,
    True,
    False,
    Str(String),
    Int(i64),
    Float(f64),
    Op(CmpOp),
    Tilde,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
    /// The token's text, cut to [`MAX_EXCERPT`] characters.
    text: String,
}

impl Token {
    /// How an error message names the token.
    fn describe(&self) -> String {
        match self.tok {
            Tok::End => "end of rule".to_string(),
            Tok::Str(_) => self.text.clone(),
            _ => format!("'{}'", self.text),
        }
    }
}

fn excerpt(chars: &[char]) -> String {
    if chars.len() <= MAX_EXCERPT {
        chars.iter().collect()
    } else {
        let mut s: String = chars[..MAX_EXCERPT - 3].iter().collect();
        s.push_str("...");
        s
    }
}

fn is_segment_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn lex(src: &str) -> Result<Vec<Token>, RuleError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\n' | '\r') {
            i += 1;
        }
        let column = i + 1;
        let Some(&c) = chars.get(i) else {
            tokens.push(Token { tok: Tok::End, column, text: String::new() });
            return Ok(tokens);
        };
        let next = chars.get(i + 1).copied();
        let start = i;
        let tok = match c {
            '(' | ')' | '[' | ']' | ',' | '~' => {
                i += 1;
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    ',' => Tok::Comma,
                    _ => Tok::Tilde,
                }
            }
            '=' | '!' | '<' | '>' => {
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (CmpOp::Eq, 2),
                    ('!', Some('=')) => (CmpOp::Ne, 2),
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', _) => (CmpOp::Gt, 1),
                    ('=', Some('~')) | ('!', Some('~')) => {
                        let instead = if c == '=' { "'~'" } else { "'not PATH ~ PATTERN'" };
                        return Err(err(column, format!("'{c}~' is not an operator; write {instead}")));
                    }
                    ('=', _) => return Err(err(column, "'=' is not an operator; write '=='".to_string())),
                    _ => return Err(err(column, "'!' is not an operator; write 'not'".to_string())),
                };
                i += len;
                Tok::Op(op)
            }
            '&' | '|' => {
                let op: String = if next == Some(c) { [c, c].iter().collect() } else { c.to_string() };
                let word = if c == '&' { "and" } else { "or" };
                return Err(err(column, format!("'{op}' is not an operator; write '{word}'")));
            }
            '\'' => {
                return Err(err(column, "strings are written in double quotes: \"...\"".to_string()));
            }
            '"' => {
                let (s, end) = lex_string(&chars, i)?;
                i = end;
                Tok::Str(s)
            }
            '-' | '0'..='9' => {
                while i < chars.len() && (is_segment_char(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                lex_number(&chars[start..i], column)?
            }
            c if is_segment_start(c) => {
                let mut segments = Vec::new();
                loop {
                    let seg_start = i;
                    while i < chars.len() && is_segment_char(chars[i]) {
                        i += 1;
                    }
                    segments.push(chars[seg_start..i].iter().collect::<String>());
                    if chars.get(i) != Some(&'.') {
                        break;
                    }
                    i += 1;
                    match chars.get(i) {
                        Some(&c) if is_segment_start(c) => {}
                        Some(&c) if c.is_ascii_digit() => {
                            return Err(err(
                                i + 1,
                                format!(
                                    "expected a path segment after '.', found '{c}' (segments start with a \
                                     letter or '_'; arrays are not indexed: a path reaches every element)"
                                ),
                            ));
                        }
                        found => {
                            let found = found.map_or("end of rule".to_string(), |c| format!("'{c}'"));
                            return Err(err(i + 1, format!("expected a path segment after '.', found {found}")));
                        }
                    }
                }
                if segments.len() == 1 {
                    match segments[0].as_str() {
                        "and" => Tok::And,
                        "or" => Tok::Or,
                        "not" => Tok::Not,
                        "in" => Tok::In,
                        "true" => Tok::True,
                        "false" => Tok::False,
                        _ => Tok::Path(Path(segments)),
                    }
                } else {
                    Tok::Path(Path(segments))
                }
            }
            c => return Err(err(column, format!("unexpected character {c:?}"))),
        };
        tokens.push(Token { tok, column, text: excerpt(&chars[start..i]) });
    }
}

/// Reads the string starting at `chars[start]` (a `"`); returns it and the
/// index after its closing quote.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), RuleError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(err(start + 1, "unterminated string: no closing '\"'".to_string()));
        };
        match c {
            '"' => return Ok((s, i + 1)),
            '\\' => {
                let escaped = match chars.get(i + 1) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(&other) if !other.is_control() => {
                        return Err(err(
                            i + 1,
                            format!("unknown escape '\\{other}' in string (escapes: \\\" \\\\ \\n \\t)"),
                        ));
                    }
                    _ => return Err(err(i + 1, "unknown escape in string (escapes: \\\" \\\\ \\n \\t)".to_string())),
                };
                s.push(escaped);
                i += 2;
            }
            c if c.is_control() => {
                return Err(err(i + 1, format!("control character {c:?} in string; write \\n or \\t")));
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A number is `-?[0-9]+` (a 64-bit integer) or `-?[0-9]+\.[0-9]+` (a
/// decimal); `run` is every number-like character from its start, so that
/// `4096MB` or `1.2.3` is refused whole.
fn lex_number(run: &[char], column: usize) -> Result<Tok, RuleError> {
    let text: String = run.iter().collect();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let refuse = || err(column, format!("expected a number (like 4096, -1 or 2.5), found '{}'", excerpt(run)));
    match digits.split_once('.') {
        None if all_digits(digits) => text
            .parse()
            .map(Tok::Int)
            .map_err(|_| err(column, format!("the number '{}' is out of range for a 64-bit integer", excerpt(run)))),
        Some((whole, frac)) if all_digits(whole) && all_digits(frac) => match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Tok::Float(x)),
            _ => Err(err(column, format!("the number '{}' is too large", excerpt(run)))),
        },
        _ => Err(refuse()),
    }
}

/// A hint for a keyword written in the wrong case (`AND`, `True`).
fn case_hint(token: &Token) -> String {
    if let Tok::Path(Path(segments)) = &token.tok {
        let lower = segments[0].to_ascii_lowercase();
        if segments.len() == 1 && ["and", "or", "not", "in", "true", "false"].contains(&lower.as_str()) {
            return format!(" (keywords are lower case: '{lower}')");
        }
    }
    String::new()
}

// ---------------------------------------------------------------------------
// Parser: recursive descent over the tokens, one function per precedence
// level. Recursion happens only at '(' and is bounded by MAX_DEPTH, checked
// before descending; a run of `not` is read in a loop.

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Open parentheses and `not`s around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The lexer always ends the list with `End`, which is never consumed.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek().tok == *tok {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error_here(&self, expected: &str) -> RuleError {
        let found = self.peek();
        err(found.column, format!("expected {expected}, found {}{}", found.describe(), case_hint(found)))
    }

    fn deeper(&mut self, column: usize) -> Result<(), RuleError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(column, format!("the rule nests deeper than {MAX_DEPTH} levels of parentheses and 'not'")));
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, RuleError> {
        let first = self.parse_and()?;
        if self.peek().tok != Tok::Or {
            return Ok(first);
        }
        let mut items = Vec::new();
        push_flat(&mut items, first, true);
        while self.eat(&Tok::Or) {
            let next = self.parse_and()?;
            push_flat(&mut items, next, true);
        }
        Ok(Expr::Or(items))
    }

    fn parse_and(&mut self) -> Result<Expr, RuleError> {
        let first = self.parse_not()?;
        if self.peek().tok != Tok::And {
            return Ok(first);
        }
        let mut items = Vec::new();
        push_flat(&mut items, first, false);
        while self.eat(&Tok::And) {
            let next = self.parse_not()?;
            push_flat(&mut items, next, false);
        }
        Ok(Expr::And(items))
    }

    fn parse_not(&mut self) -> Result<Expr, RuleError> {
        let outer = self.depth;
        let mut nots = 0;
        while self.peek().tok == Tok::Not {
            let column = self.peek().column;
            self.deeper(column)?;
            self.pos += 1;
            nots += 1;
        }
        let mut expr = self.parse_primary()?;
        self.depth = outer;
        for _ in 0..nots {
            expr = Expr::Not(Box::new(expr));
        }
        Ok(expr)
    }

    fn parse_primary(&mut self) -> Result<Expr, RuleError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::LParen => {
                self.deeper(token.column)?;
                self.pos += 1;
                let inner = self.parse_or()?;
                if !self.eat(&Tok::RParen) {
                    return Err(self.error_here(&format!("')' to close the '(' at column {}", token.column)));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::True | Tok::False => {
                self.pos += 1;
                Ok(Expr::Const(token.tok == Tok::True))
            }
            Tok::Path(path) => {
                self.pos += 1;
                if self.peek().tok == Tok::LParen {
                    self.pos += 1;
                    self.parse_call(&path, token.column)
                } else {
                    self.parse_comparison(path)
                }
            }
            Tok::End if self.pos == 0 => {
                Err(err(token.column, "the rule is empty; write 'true' to match every machine".to_string()))
            }
            Tok::Str(_) | Tok::Int(_) | Tok::Float(_) => Err(self
                .error_here("a condition (a fact path, a function, 'not', '(', true or false)")
                .with_hint(" (the fact path goes on the left: path == value)")),
            _ => Err(self.error_here("a condition (a fact path, a function, 'not', '(', true or false)")),
        }
    }

    fn parse_comparison(&mut self, path: Path) -> Result<Expr, RuleError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Op(op) => {
                self.pos += 1;
                let value = self.parse_literal(&format!("a value after '{}'", op.as_str()))?;
                if op.is_ordering() && matches!(value, Literal::Bool(_)) {
                    return Err(err(
                        token.column,
                        format!("'{}' compares numbers or strings; true and false go with '==' and '!='", op.as_str()),
                    ));
                }
                Ok(Expr::Compare { path, op, value })
            }
            Tok::Tilde => {
                self.pos += 1;
                let glob = self.parse_pattern("a pattern in double quotes after '~'")?;
                Ok(Expr::Match { path, glob })
            }
            Tok::In => {
                self.pos += 1;
                if !self.eat(&Tok::LBracket) {
                    return Err(self.error_here("'[' to start the list after 'in'"));
                }
                if self.peek().tok == Tok::RBracket {
                    return Err(err(self.peek().column, "an 'in' list needs at least one value".to_string()));
                }
                let mut list = vec![self.parse_literal("a value in the list")?];
                while self.eat(&Tok::Comma) {
                    list.push(self.parse_literal("a value after ','")?);
                }
                if !self.eat(&Tok::RBracket) {
                    return Err(self.error_here("',' or ']' in the list"));
                }
                Ok(Expr::In { path, list })
            }
            _ => {
                let shown = short_path(&path);
                let hint = match token.tok {
                    Tok::Not => format!(" ('not' goes before the condition: not {shown} ...)"),
                    Tok::End | Tok::And | Tok::Or | Tok::RParen => {
                        format!(" (to test that the fact is there, write exists({shown}))")
                    }
                    _ => String::new(),
                };
                Err(self.error_here(&format!("an operator (== != < <= > >= ~ in) after '{shown}'")).with_hint(&hint))
            }
        }
    }

    fn parse_literal(&mut self, expected: &str) -> Result<Literal, RuleError> {
        let literal = match &self.peek().tok {
            Tok::Str(s) => Literal::Str(s.clone()),
            Tok::Int(i) => Literal::Int(*i),
            Tok::Float(x) => Literal::Float(*x),
            Tok::True => Literal::Bool(true),
            Tok::False => Literal::Bool(false),
            Tok::LBracket => {
                return Err(self.error_here(&format!("{expected} (a list goes after 'in': path in [...])")));
            }
            Tok::Path(p) if case_hint(self.peek()).is_empty() => {
                let quoted = format!("\"{}\"", short_path(p));
                return Err(self.error_here(&format!("{expected} (text goes in double quotes: {quoted})")));
            }
            _ => return Err(self.error_here(expected)),
        };
        self.pos += 1;
        Ok(literal)
    }

    fn parse_pattern(&mut self, expected: &str) -> Result<Glob, RuleError> {
        let token = self.peek().clone();
        let Tok::Str(source) = token.tok else {
            return Err(self.error_here(expected));
        };
        self.pos += 1;
        Glob::compile(source, token.column)
    }

    fn parse_path_arg(&mut self, function: &str) -> Result<Path, RuleError> {
        if let Tok::Path(path) = &self.peek().tok {
            let path = path.clone();
            self.pos += 1;
            Ok(path)
        } else {
            Err(self.error_here(&format!("a fact path in {function}()")))
        }
    }

    fn close_call(&mut self, function: &str) -> Result<(), RuleError> {
        if self.eat(&Tok::RParen) {
            Ok(())
        } else {
            Err(self.error_here(&format!("')' to close {function}(")))
        }
    }

    /// After `name(`.
    fn parse_call(&mut self, name: &Path, column: usize) -> Result<Expr, RuleError> {
        let function = name.to_string();
        match function.as_str() {
            "any" | "all" => {
                let path = self.parse_path_arg(&function)?;
                if !self.eat(&Tok::Comma) {
                    return Err(self.error_here(&format!("',' and a pattern after the path in {function}()")));
                }
                let glob = self.parse_pattern(&format!("a pattern in double quotes in {function}()"))?;
                self.close_call(&function)?;
                Ok(if function == "any" { Expr::Any { path, glob } } else { Expr::All { path, glob } })
            }
            "exists" => {
                let path = self.parse_path_arg(&function)?;
                self.close_call(&function)?;
                Ok(Expr::Exists(path))
            }
            "count" => {
                let path = self.parse_path_arg(&function)?;
                self.close_call(&function)?;
                let shown = format!("count({})", short_path(&path));
                let Tok::Op(op) = self.peek().tok else {
                    return Err(self.error_here(&format!("a comparison after '{shown}', like {shown} >= 1")));
                };
                self.pos += 1;
                let Tok::Int(n) = self.peek().tok else {
                    return Err(self.error_here(&format!("a whole number after '{shown} {}'", op.as_str())));
                };
                self.pos += 1;
                Ok(Expr::Count { path, op, n })
            }
            _ => {
                let shown: Vec<char> = function.chars().collect();
                let case = if ["any", "all", "exists", "count"].contains(&function.to_ascii_lowercase().as_str()) {
                    "; names are lower case"
                } else {
                    ""
                };
                Err(err(column, format!("unknown function '{}' (functions: {FUNCTIONS}{case})", excerpt(&shown))))
            }
        }
    }
}

fn push_flat(items: &mut Vec<Expr>, expr: Expr, or: bool) {
    match expr {
        Expr::Or(inner) if or => items.extend(inner),
        Expr::And(inner) if !or => items.extend(inner),
        expr => items.push(expr),
    }
}

/// A path as an error message shows it, cut to a short excerpt.
fn short_path(path: &Path) -> String {
    let chars: Vec<char> = path.to_string().chars().collect();
    excerpt(&chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Value {
        json!({
            "arch": "x86_64", "firmware": "uefi", "hostname": "n1", "memory_mb": 8192,
            "cpu": {"model": "QEMU Virtual CPU", "cores": 2, "threads": 2},
            "disk": [{"name": "vda", "size_bytes": 21474836480u64, "rotational": false, "removable": false}],
            "nic": [{"name": "ens3", "mac": "52:54:00:12:34:56"}, {"name": "ens4", "mac": "52:54:00:aa:bb:cc"}],
            "dmi": {"vendor": "QEMU", "model": "Standard PC", "serial": "A1"},
            "os": {"id": "debian", "version_id": "12"}, "rack": "r1", "gpu": true
        })
    }

    fn rule(src: &str) -> Rule {
        Rule::parse(src).unwrap_or_else(|e| panic!("{src:?} does not parse: {e}"))
    }

    fn eval(src: &str, facts: &Value) -> bool {
        rule(src).matches(facts)
    }

    fn check(src: &str, want: bool) {
        assert_eq!(eval(src, &facts()), want, "{src}");
    }

    fn refused(src: &str) -> RuleError {
        match Rule::parse(src) {
            Ok(r) => panic!("{src:?} parses as {r}"),
            Err(e) => e,
        }
    }

    #[test]
    fn example_rule_selects_matching_machine_only() {
        let example = r#"arch == "x86_64" and memory_mb >= 4096 and any(nic.mac, "52:54:00:*")"#;
        assert!(eval(example, &facts()));
        let mut small = facts();
        small["memory_mb"] = json!(2048);
        assert!(!eval(example, &small));
        let mut arm = facts();
        arm["arch"] = json!("aarch64");
        assert!(!eval(example, &arm));
        let mut other_nics = facts();
        other_nics["nic"] = json!([{"name": "eth0", "mac": "00:1b:21:00:00:01"}]);
        assert!(!eval(example, &other_nics));
        assert!(!eval(example, &json!({})));
        assert_eq!(rule(example).paths(), ["arch", "memory_mb", "nic.mac"]);
    }

    #[test]
    fn comparison_operators_on_numbers_and_strings() {
        for (src, want) in [
            ("memory_mb == 8192", true),
            ("memory_mb == 8192.0", true),
            ("memory_mb != 8192", false),
            ("memory_mb < 8193", true),
            ("memory_mb < 8192", false),
            ("memory_mb <= 8192", true),
            ("memory_mb > 8191.5", true),
            ("memory_mb > 8192", false),
            ("memory_mb >= 8192", true),
            ("memory_mb >= -1", true),
            ("cpu.cores == 2", true),
            ("arch == \"x86_64\"", true),
            ("arch == \"X86_64\"", false),
            ("arch != \"aarch64\"", true),
            ("arch < \"y\"", true),
            ("arch > \"x86\"", true),
            ("os.version_id >= \"12\"", true),
            ("gpu == true", true),
            ("gpu != false", true),
            ("gpu == false", false),
            ("disk.rotational == false", true),
        ] {
            check(src, want);
        }
    }

    #[test]
    fn large_and_fractional_fact_numbers_compare_numerically() {
        let f = json!({"big": u64::MAX, "neg": -5, "ghz": 2.4});
        assert!(eval("big > 9223372036854775807", &f));
        assert!(eval("big >= 1.0", &f));
        assert!(!eval("big == 9223372036854775807", &f));
        assert!(eval("neg < 0 and neg == -5", &f));
        assert!(eval("ghz > 2 and ghz < 3 and ghz == 2.4", &f));
        assert!(!eval("ghz == 2", &f));
    }

    #[test]
    fn type_mismatch_is_false_never_an_error() {
        check("arch == 1", false);
        check("arch > 1", false);
        check("memory_mb == \"8192\"", false);
        check("memory_mb ~ \"8*\"", false);
        check("os.version_id == 12", false);
        check("gpu == \"true\"", false);
        check("gpu == 1", false);
        check("cpu == 2", false);
        check("cpu ~ \"*\"", false);
        check("all(cpu, \"*\")", false);
        // A type mismatch is "not equal".
        check("memory_mb != \"8192\"", true);
    }

    #[test]
    fn paths_map_over_arrays() {
        check("nic.mac == \"52:54:00:aa:bb:cc\"", true);
        check("nic.name == \"ens3\"", true);
        check("disk.size_bytes > 20000000000", true);
        check("count(nic.mac) == 2", true);
        let f = json!({"a": [[{"b": 1}, {"b": [2, 3]}], {"b": null}, 7]});
        assert!(eval("count(a.b) == 3", &f));
        assert!(eval("a.b == 3", &f));
        assert!(eval("count(a) == 4", &f), "nested arrays flatten; scalars in the array count");
    }

    #[test]
    fn missing_paths_and_nulls_yield_no_values() {
        let f = json!({"x": null, "empty": [], "obj": {}});
        for (src, want) in [
            ("nope == 1", false),
            ("nope != 1", true),
            ("nope < 1", false),
            ("nope in [1, 2]", false),
            ("nope ~ \"*\"", false),
            ("any(nope, \"*\")", false),
            ("all(nope, \"*\")", false),
            ("exists(nope)", false),
            ("count(nope) == 0", true),
            ("exists(x)", false),
            ("exists(empty)", false),
            ("exists(obj)", true),
            ("obj.a.b == 1", false),
            ("x.y == 1", false),
        ] {
            assert_eq!(eval(src, &f), want, "{src}");
        }
        assert!(!eval("exists(a)", &json!([{"a": 1}])), "facts that are not an object have no facts");
        assert!(eval("true", &json!(null)));
    }

    #[test]
    fn not_equal_means_no_value_equals() {
        check("nic.name != \"ens3\"", false);
        check("nic.name != \"eth0\"", true);
        check("not nic.name == \"ens3\"", false);
        // Every `!=` agrees with `not ==` on these facts.
        for path in ["nic.name", "arch", "memory_mb", "missing", "disk.rotational"] {
            for lit in ["\"ens3\"", "8192", "false", "\"x86_64\""] {
                let ne = eval(&format!("{path} != {lit}"), &facts());
                let not_eq = eval(&format!("not {path} == {lit}"), &facts());
                assert_eq!(ne, not_eq, "{path} != {lit}");
            }
        }
    }

    #[test]
    fn in_lists() {
        check("os.id in [\"debian\", \"ubuntu\"]", true);
        check("os.id in [\"rhel\"]", false);
        check("memory_mb in [4096, 8192]", true);
        check("memory_mb in [8192.0]", true);
        check("nic.name in [\"eth9\", \"ens4\"]", true);
        check("gpu in [true, \"yes\", 1]", true);
        check("not os.id in [\"debian\"]", false);
    }

    #[test]
    fn globs() {
        let g = |pattern: &str, text: &str| {
            let glob = Glob::compile(pattern.to_string(), 1).expect("valid pattern");
            glob.matches(text)
        };
        assert!(g("web-*", "web-01"));
        assert!(g("web-*", "web-"));
        assert!(!g("web-*", "db-01"));
        assert!(g("*", ""));
        assert!(g("", ""));
        assert!(!g("", "a"));
        assert!(g("n?", "n1"));
        assert!(!g("n?", "n"));
        assert!(!g("n?", "n12"));
        assert!(g("?", "é"), "? is one character, not one byte");
        assert!(g("r[0-9]", "r7"));
        assert!(!g("r[0-9]", "rx"));
        assert!(g("r[!0-9]", "rx"));
        assert!(g("r[^0-9]", "rx"));
        assert!(!g("r[!0-9]", "r1"));
        assert!(g("[abc]x", "bx"));
        assert!(g("[]]", "]"));
        assert!(g("[a-]", "-"));
        assert!(g("[*]", "*"));
        assert!(!g("[*]", "x"));
        assert!(g("[[]", "["));
        assert!(g("a\\b", "a\\b"), "backslash is an ordinary character");
        assert!(g("*a*b*c", "xxaxxbxxc"));
        assert!(!g("*a*b*c", "xxaxxcxxb"));
        assert!(g("a*a*a", "aaa"));
        assert!(!g("a*a*a", "aa"));
        assert!(g("**x", "x"));
    }

    #[test]
    fn globs_ignore_ascii_case_and_equality_does_not() {
        let f = json!({"mac": "52:54:00:AA:BB:CC", "vendor": "Dell Inc.", "name": "Émile"});
        assert!(eval("mac ~ \"52:54:00:aa:*\"", &f));
        assert!(eval("any(mac, \"*:bb:cc\")", &f));
        assert!(eval("mac ~ \"*:[a-c][A-C]:*\"", &f));
        assert!(eval("vendor ~ \"dell*\"", &f));
        assert!(!eval("vendor == \"dell inc.\"", &f));
        assert!(!eval("name ~ \"émile\"", &f), "only ASCII letters fold");
        assert!(!eval("mac ~ \"52:54:00:[!a]a:*\"", &f), "a negated class folds case too");
    }

    #[test]
    fn pathological_glob_is_quadratic_not_exponential() {
        let text = "a".repeat(20_000);
        let pattern = format!("{}b", "*a".repeat(40));
        let glob = Glob::compile(pattern, 1).expect("valid pattern");
        assert!(!glob.matches(&text));
        let f = json!({"h": text});
        assert!(!eval("h ~ \"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b\"", &f));
        assert!(eval("h ~ \"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a\"", &f));
    }

    #[test]
    fn any_and_all() {
        check("any(nic.mac, \"52:54:00:aa:*\")", true);
        check("all(nic.mac, \"52:54:00:*\")", true);
        check("all(nic.mac, \"52:54:00:aa:*\")", false);
        check("all(nic.name, \"ens?\")", true);
        check("all(memory_mb, \"*\")", false);
        check("nic.mac ~ \"*:cc\"", true);
        assert!(!eval("all(x, \"*\")", &json!({"x": []})), "all() needs at least one value");
        assert!(!eval("all(x, \"a*\")", &json!({"x": ["ab", 1]})), "a number never matches a glob");
    }

    #[test]
    fn exists_and_count() {
        check("exists(gpu)", true);
        check("exists(cpu.model)", true);
        check("exists(tpm)", false);
        check("count(disk) >= 1", true);
        check("count(disk) >= 2", false);
        check("count(nic) == 2", true);
        check("count(nic) != 2", false);
        check("count(nic) < 3", true);
        check("count(nic) > -1", true);
        check("count(gpu) == 1", true);
        check("count(dmi) == 1", true);
        check("count(tpm) == 0", true);
        check("count(tpm) <= 0", true);
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        // a or b and c is a or (b and c).
        check("true or false and false", true);
        check("(true or false) and false", false);
        check("false and false or true", true);
        check("not true or true", true);
        check("not (true or true)", false);
        check("not false and false", false);
        check("not not true", true);
        check("true", true);
        check("false", false);
        assert_eq!(rule("a == 1 or b == 2 and c == 3"), rule("a == 1 or (b == 2 and c == 3)"));
        assert_ne!(rule("a == 1 or b == 2 and c == 3"), rule("(a == 1 or b == 2) and c == 3"));
        assert_eq!(rule("(a == 1 and b == 2) and c == 3"), rule("a == 1 and (b == 2 and c == 3)"));
    }

    #[test]
    fn whitespace_and_keywords_in_paths() {
        assert_eq!(rule(" \t\narch==\"x\"\r\nand(b<1)"), rule("arch == \"x\" and b < 1"));
        check("cpu.model == \"QEMU Virtual CPU\"", true);
        let f = json!({"any": 1, "count": 2, "x": {"in": 3, "not": 4}, "a-b": 5, "_c": 6});
        assert!(eval("any == 1 and count == 2 and x.in == 3 and x.not == 4 and a-b == 5 and _c == 6", &f));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (src, canonical) in [
            ("true", "true"),
            ("(false)", "false"),
            ("arch==\"x86_64\"", "arch == \"x86_64\""),
            ("a==1 or b==2 and c==3", "a == 1 or b == 2 and c == 3"),
            ("(a==1 or b==2) and c==3", "(a == 1 or b == 2) and c == 3"),
            ("((a==1 and b==2)) and (c==3)", "a == 1 and b == 2 and c == 3"),
            ("not(a==1)", "not a == 1"),
            ("not (a==1 and b==2)", "not (a == 1 and b == 2)"),
            ("not not exists(x)", "not not exists(x)"),
            ("x in [ \"a\",1, 2.5,true ]", "x in [\"a\", 1, 2.5, true]"),
            ("x == 007", "x == 7"),
            ("x == -0", "x == 0"),
            ("x == 1.50", "x == 1.5"),
            ("x == 2.0", "x == 2.0"),
            ("x == -0.0", "x == -0.0"),
            ("x >= 100000000000000000000.0", "x >= 100000000000000000000.0"),
            ("x == \"q\\\"b\\\\s\\n\\t\"", "x == \"q\\\"b\\\\s\\n\\t\""),
            ("x == \"héllo ☃\"", "x == \"héllo ☃\""),
            ("h ~ \"web-[0-9]*\"", "h ~ \"web-[0-9]*\""),
            ("any( nic.mac ,\"52:*\" )", "any(nic.mac, \"52:*\")"),
            ("all(nic.mac,\"52:*\")", "all(nic.mac, \"52:*\")"),
            ("count( disk )>=2", "count(disk) >= 2"),
            ("a==1 or (b==2 or c==3)", "a == 1 or b == 2 or c == 3"),
        ] {
            let r = rule(src);
            assert_eq!(r.to_string(), canonical, "{src}");
            assert_eq!(rule(canonical), r, "{canonical}");
            assert_eq!(canonical.parse::<Rule>().as_ref(), Ok(&r));
        }
    }

    #[test]
    fn paths_are_deduplicated_in_order() {
        let r = rule("b == 1 and (a.x ~ \"*\" or not exists(b)) and count(c) > 1 and all(a.x, \"y\")");
        assert_eq!(r.paths(), ["b", "a.x", "c"]);
        assert!(rule("true").paths().is_empty());
    }

    #[test]
    fn errors_say_where_what_was_expected_and_what_was_found() {
        for (src, column, message) in [
            ("memory_mb >= ", 14, "expected a value after '>=', found end of rule"),
            ("anyy(nic.mac, \"x\")", 1, "unknown function 'anyy' (functions: any, all, exists, count)"),
            ("gpu = true", 5, "'=' is not an operator; write '=='"),
            ("arch == \"x86_64", 9, "unterminated string: no closing '\"'"),
            ("a == 1 && b == 2", 8, "'&&' is not an operator; write 'and'"),
            ("(a == 1", 8, "expected ')' to close the '(' at column 1, found end of rule"),
            ("a == 1)", 7, "found ')' without a matching '('"),
            ("memory_mb >= 4096MB", 14, "expected a number (like 4096, -1 or 2.5), found '4096MB'"),
            (
                "disk.0.name == \"x\"",
                6,
                "expected a path segment after '.', found '0' (segments start with a letter or '_'; \
                 arrays are not indexed: a path reaches every element)",
            ),
            (
                "h ~ \"web[1-\"",
                5,
                "unclosed '[' in pattern; close the class with ']', or write '[[]' to match '['",
            ),
            ("h ~ \"[z-a]\"", 5, "range 'z-a' in pattern is backwards; write 'a-z'"),
            (
                "a == 1 AND b == 2",
                8,
                "expected 'and', 'or' or end of rule, found 'AND' (keywords are lower case: 'and')",
            ),
            (
                "gpu",
                4,
                "expected an operator (== != < <= > >= ~ in) after 'gpu', found end of rule \
                 (to test that the fact is there, write exists(gpu))",
            ),
            ("gpu < true", 5, "'<' compares numbers or strings; true and false go with '==' and '!='"),
            (
                "arch == x86_64",
                9,
                "expected a value after '==' (text goes in double quotes: \"x86_64\"), found 'x86_64'",
            ),
            (
                "os.id not in [\"a\"]",
                7,
                "expected an operator (== != < <= > >= ~ in) after 'os.id', found 'not' \
                 ('not' goes before the condition: not os.id ...)",
            ),
            ("count(disk)", 12, "expected a comparison after 'count(disk)', like count(disk) >= 1, found end of rule"),
            ("count(disk) > 1.5", 15, "expected a whole number after 'count(disk) >', found '1.5'"),
            ("x in []", 7, "an 'in' list needs at least one value"),
            ("x == [1]", 6, "expected a value after '==' (a list goes after 'in': path in [...]), found '['"),
            ("", 1, "the rule is empty; write 'true' to match every machine"),
            ("not", 4, "expected a condition (a fact path, a function, 'not', '(', true or false), found end of rule"),
            (
                "4096 <= memory_mb",
                1,
                "expected a condition (a fact path, a function, 'not', '(', true or false), found '4096' \
                 (the fact path goes on the left: path == value)",
            ),
            ("x == 'a'", 6, "strings are written in double quotes: \"...\""),
            ("x == \"a\\qb\"", 8, "unknown escape '\\q' in string (escapes: \\\" \\\\ \\n \\t)"),
            ("x == \"a\nb\"", 8, "control character '\\n' in string; write \\n or \\t"),
            ("hé == 1", 2, "unexpected character 'é'"),
            ("x == 99999999999999999999", 6, "the number '99999999999999999999' is out of range for a 64-bit integer"),
            ("x ! 1", 3, "'!' is not an operator; write 'not'"),
            ("x =~ \"a\"", 3, "'=~' is not an operator; write '~'"),
            ("nic. == 1", 5, "expected a path segment after '.', found ' '"),
            ("any(nic.mac \"x\")", 13, "expected ',' and a pattern after the path in any(), found \"x\""),
            ("exists(\"x\")", 8, "expected a fact path in exists(), found \"x\""),
            ("Count(disk) == 1", 1, "unknown function 'Count' (functions: any, all, exists, count; names are lower case)"),
            ("x ~ 1", 5, "expected a pattern in double quotes after '~', found '1'"),
            ("\"é\" == x", 1, "expected a condition (a fact path, a function, 'not', '(', true or false), found \"é\" (the fact path goes on the left: path == value)"),
        ] {
            let e = refused(src);
            assert_eq!((e.column, e.message.as_str()), (column, message), "{src:?}");
        }
        assert_eq!(refused("gpu = true").to_string(), "column 5: '=' is not an operator; write '=='");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(refused("x == \"ééé\" and").column, 15);
    }

    #[test]
    fn messages_quote_only_a_short_excerpt() {
        let long = "a".repeat(3000);
        for src in [
            format!("x == {long}"),
            format!("{long}(x)"),
            format!("x == 1 {long}"),
            format!("x == \"{long}"),
            format!("x == 1{long}"),
            long.clone(),
        ] {
            let e = refused(&src);
            assert!(e.message.len() < 200, "{}", e.message);
        }
    }

    #[test]
    fn length_limit() {
        let at_limit = format!("x == \"{}\"", "a".repeat(MAX_RULE_BYTES - 7));
        assert_eq!(at_limit.len(), MAX_RULE_BYTES);
        assert!(Rule::parse(&at_limit).is_ok());
        let over = format!("x == \"{}\"", "a".repeat(MAX_RULE_BYTES - 6));
        assert_eq!(refused(&over).to_string(), "column 1: the rule is 4097 bytes long; the limit is 4096 bytes");
    }

    #[test]
    fn rule_whose_canonical_form_is_too_long_is_refused() {
        // 8 bytes a term as written, 10 in canonical form.
        let dense = format!("{}a==1", "a==1 or ".repeat(500));
        assert!(dense.len() <= MAX_RULE_BYTES);
        let e = refused(&dense);
        assert_eq!(e.column, 1);
        assert!(e.message.contains("canonical form"), "{e}");
    }

    #[test]
    fn nesting_limit() {
        let nest = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
        assert!(Rule::parse(&nest(MAX_DEPTH)).is_ok());
        let e = refused(&nest(MAX_DEPTH + 1));
        assert_eq!(e.column, MAX_DEPTH + 1);
        assert_eq!(e.message, "the rule nests deeper than 64 levels of parentheses and 'not'");
        let nots = |n: usize| format!("{}true", "not ".repeat(n));
        assert!(Rule::parse(&nots(MAX_DEPTH)).is_ok());
        assert_eq!(refused(&nots(MAX_DEPTH + 1)).column, MAX_DEPTH * 4 + 1);
        // Mixed: 32 × "not (" is 64 levels; one more `not` is too many.
        let mixed = format!("{}not a == 1{}", "not (".repeat(32), ")".repeat(32));
        assert_eq!(refused(&mixed).column, 32 * 5 + 1);
        // Unclosed, right up to the length limit: refused without deep recursion.
        assert!(Rule::parse(&"(".repeat(MAX_RULE_BYTES)).is_err());
        assert!(Rule::parse(&"not ".repeat(MAX_RULE_BYTES / 4)).is_err());
        // Long flat chains are not nesting.
        let chain = vec!["a == 1"; 300].join(" and ");
        assert!(Rule::parse(&chain).is_ok());
    }

    #[test]
    fn hundred_thousand_deep_nesting_is_an_error_not_a_stack_overflow() {
        for src in [
            "(".repeat(100_000),
            format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("{}true", "not ".repeat(100_000)),
            "[".repeat(100_000),
        ] {
            assert!(Rule::parse(&src).is_err());
        }
        // And the depth check on its own, without the length limit in the way.
        let mut parser = Parser { tokens: lex("true").expect("lexes"), pos: 0, depth: 0 };
        let mut tokens: Vec<Token> =
            (0..100_000).map(|i| Token { tok: Tok::LParen, column: i + 1, text: "(".to_string() }).collect();
        tokens.append(&mut parser.tokens);
        parser.tokens = tokens;
        assert_eq!(parser.parse_or().map_err(|e| e.column), Err(MAX_DEPTH + 1));
    }

    #[test]
    fn evaluation_survives_hostile_facts() {
        let mut deep = json!(1);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        // Not json!, which serializes its arguments recursively.
        let f = Value::Object([("x".to_string(), deep)].into_iter().collect());
        assert!(eval("x == 1 and count(x) == 1", &f));
        // serde_json drops nested values recursively; take this one apart by hand.
        let mut v = f;
        let mut x = v["x"].take();
        while let Value::Array(mut items) = x {
            x = items.pop().unwrap_or(Value::Null);
        }
    }

    /// The specification, whose examples and error table these tests check.
    const SPEC: &str = include_str!("../../../docs/rule-language.md");

    /// The text of the section whose heading starts with `## {number}.`.
    fn spec_section(number: &str) -> &'static str {
        let heading = format!("\n## {number}. ");
        let start = SPEC.find(&heading).unwrap_or_else(|| panic!("no section {number} in the spec"));
        let body = &SPEC[start + heading.len()..];
        &body[..body.find("\n## ").unwrap_or(body.len())]
    }

    /// The cells of the table rows in a section that start with code, with
    /// the backticks around each cell taken off.
    fn spec_rows(section: &str) -> Vec<Vec<&str>> {
        section
            .lines()
            .filter(|line| line.starts_with("| `") && line.ends_with(" |"))
            .map(|line| {
                line[2..line.len() - 2]
                    .split(" | ")
                    .map(|cell| cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')).unwrap_or(cell))
                    .collect()
            })
            .collect()
    }

    fn spec_facts() -> Value {
        let section = spec_section("2");
        let start = section.find("```json\n").expect("a json block in section 2") + "```json\n".len();
        let end = start + section[start..].find("```").expect("the json block ends");
        serde_json::from_str(&section[start..end]).expect("the example facts are JSON")
    }

    #[test]
    fn spec_examples_select_what_the_spec_says() {
        let facts = spec_facts();
        assert_eq!(facts, self::facts(), "the spec's example facts are the ones these tests use");
        let rows = spec_rows(spec_section("12"));
        assert!(rows.len() >= 10, "only {} examples", rows.len());
        for row in rows {
            let [src, _, selects] = row[..] else { panic!("example row {row:?} does not have 3 cells") };
            match (Rule::parse(src), selects) {
                (Ok(r), "yes" | "no") => assert_eq!(r.matches(&facts), selects == "yes", "{src}"),
                (Err(_), "refused") => {}
                (got, _) => panic!("{src}: the spec says {selects}, got {got:?}"),
            }
        }
    }

    #[test]
    fn spec_errors_are_the_errors_given() {
        let rows = spec_rows(spec_section("11"));
        assert!(rows.len() >= 8, "only {} error examples", rows.len());
        for row in rows {
            let [src, error] = row[..] else { panic!("error row {row:?} does not have 2 cells") };
            assert_eq!(refused(src).to_string(), error, "{src}");
        }
    }

    /// xorshift64*, seeded: no dependencies, same cases on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    fn gen_ws(rng: &mut Rng) -> &'static str {
        ["", " ", "  ", "\t", "\n ", " "][rng.below(6)]
    }

    fn gen_literal(rng: &mut Rng) -> String {
        match rng.below(7) {
            0 => rng.pick(&["\"x86_64\"", "\"\"", "\"a\\\"b\"", "\"tab\\there\\n\"", "\"é☃\"", "\"\\\\\""]).to_string(),
            1 => (rng.next() as i64).to_string(),
            2 => format!("{}", rng.below(10_000) as i64 - 5_000),
            3 => format!("{}.{}", rng.below(100_000), rng.below(1000)),
            4 => format!("-{}.{:03}", rng.below(10), rng.below(1000)),
            5 => rng.pick(&["0.1", "100000000000000000000.0", "0.000001", "99999999999999999999.0"]).to_string(),
            _ => rng.pick(&["true", "false"]).to_string(),
        }
    }

    fn gen_path(rng: &mut Rng) -> String {
        // Keywords are fine after a dot, never as a whole path.
        let mut path = rng.pick(&["a", "nic", "mac", "_x", "b-2", "count", "ANY", "not_", "in9"]).to_string();
        for _ in 0..rng.below(3) {
            path.push('.');
            path.push_str(rng.pick(&["mac", "in", "not", "true", "Z", "size_bytes"]));
        }
        path
    }

    fn gen_glob(rng: &mut Rng) -> &'static str {
        ["\"*\"", "\"52:54:00:*\"", "\"n?\"", "\"[a-c]*[!0-9]\"", "\"[]]x\"", "\"\"", "\"*a*a*b\""][rng.below(7)]
    }

    fn gen_atom(rng: &mut Rng) -> String {
        let ws = gen_ws(rng);
        let path = gen_path(rng);
        let op = rng.pick(&["==", "!=", "<", "<=", ">", ">="]);
        match rng.below(9) {
            0 => rng.pick(&["true", "false"]).to_string(),
            1 | 2 => {
                let mut lit = gen_literal(rng);
                if op != "==" && op != "!=" && (lit == "true" || lit == "false") {
                    lit = "1".to_string();
                }
                format!("{path}{ws}{op} {lit}")
            }
            3 => {
                let n = 1 + rng.below(3);
                let items: Vec<String> = (0..n).map(|_| gen_literal(rng)).collect();
                format!("{path} in{ws}[{}]", items.join(&format!(",{ws}")))
            }
            4 => format!("{path}{ws}~{ws}{}", gen_glob(rng)),
            5 => format!("any({path},{ws}{})", gen_glob(rng)),
            6 => format!("all({ws}{path}, {}{ws})", gen_glob(rng)),
            7 => format!("exists({path})"),
            _ => format!("count({path}){ws}{op} {}", rng.below(5) as i64 - 1),
        }
    }

    fn gen_rule(rng: &mut Rng, depth: usize) -> String {
        if depth == 0 {
            return gen_atom(rng);
        }
        let ws = gen_ws(rng);
        match rng.below(6) {
            0 => gen_atom(rng),
            1 => format!("{} and {}", gen_rule(rng, depth - 1), gen_rule(rng, depth - 1)),
            2 => format!("{} or{ws} {}", gen_rule(rng, depth - 1), gen_rule(rng, depth - 1)),
            3 => format!("not {}", gen_rule(rng, depth - 1)),
            _ => format!("({ws}{}{ws})", gen_rule(rng, depth - 1)),
        }
    }

    #[test]
    fn random_rules_round_trip_through_display() {
        let mut rng = Rng(0x5EED_0F5E_1FCA_FE01);
        let f = facts();
        for _ in 0..5000 {
            let depth = rng.below(6);
            let src = gen_rule(&mut rng, depth);
            let r = rule(&src);
            let text = r.to_string();
            let again = Rule::parse(&text).unwrap_or_else(|e| panic!("{text:?} (from {src:?}): {e}"));
            assert_eq!(again, r, "{src:?} printed as {text:?}");
            assert_eq!(again.to_string(), text);
            assert_eq!(again.matches(&f), r.matches(&f));
            assert_eq!(again.paths(), r.paths());
        }
    }
}
