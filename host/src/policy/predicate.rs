//! The `when` language of `[[approval]]` rules: a small, total predicate
//! over the request's JSON input (docs/approvals.md).
//!
//! ```text
//! expr     := or
//! or       := and ("or" and)*
//! and      := unary ("and" unary)*
//! unary    := "not" unary | compare
//! compare  := operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
//!                     | "in" "[" literal ("," literal)* "]"
//!                     | "starts_with" operand ]
//! operand  := path | literal | "(" expr ")"
//! path     := root ("." name | "[" index "]")*
//! root     := "input"       (approval rules; workflows also allow "steps")
//! literal  := number | "string" | true | false | null
//! ```
//!
//! Evaluation never panics and never guesses: a missing field, an index out
//! of range or a type mismatch is an [`EvalError`], which the caller treats
//! as *requiring* approval. `and`/`or` do not short-circuit past an error: an
//! error anywhere in the expression makes the whole predicate an error, so a
//! malformed input can never skip a gate by failing the "right" half.

use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

/// Deepest nesting accepted (parentheses, `not`): keeps evaluation bounded.
const MAX_DEPTH: usize = 32;

/// Longest predicate text accepted: bounds the length of `and`/`or` chains
/// (and so the evaluator's recursion).
pub const MAX_LEN: usize = 4096;

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    source: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    In(Operand, Vec<Value>),
    StartsWith(Operand, Operand),
    Truth(Operand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Path(String, Vec<Step>),
    Literal(Value),
    Group(Box<Expr>),
}

/// One step of a path after its root: `.name` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name`
    Field(String),
    /// `[index]`
    Index(usize),
}

/// What the roots of paths are bound to when a predicate is evaluated.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Approval rules: the one root `input`.
    Input(&'a Value),
    /// Named roots (workflow `when`: `input` and `steps`).
    Roots(&'a serde_json::Map<String, Value>),
}

impl<'a> Scope<'a> {
    fn root(self, name: &str) -> Option<&'a Value> {
        match self {
            Scope::Input(v) => (name == "input").then_some(v),
            Scope::Roots(m) => m.get(name),
        }
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

/// Why a predicate could not be parsed: the message and the byte offset in
/// the predicate text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the predicate text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.offset + 1, self.message)
    }
}

/// Why a predicate could not be evaluated on an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Predicate {
    /// Parses predicate text.
    pub fn parse(text: &str) -> Result<Predicate, ParseError> {
        Predicate::parse_with_roots(text, &["input"])
    }

    /// Parses predicate text whose paths may start with any of `roots`
    /// (a workflow's `when` reads `input` and `steps`).
    pub fn parse_with_roots(text: &str, roots: &[&str]) -> Result<Predicate, ParseError> {
        if text.len() > MAX_LEN {
            return Err(ParseError {
                offset: MAX_LEN,
                message: format!("a predicate may not be longer than {MAX_LEN} bytes"),
            });
        }
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            end: text.len(),
            depth: 0,
            roots: roots.iter().map(|r| (*r).to_string()).collect(),
        };
        let expr = p.expr()?;
        if let Some((offset, t)) = p.tokens.get(p.at) {
            return Err(ParseError {
                offset: *offset,
                message: format!("unexpected {t} after a complete expression"),
            });
        }
        Ok(Predicate {
            source: text.to_string(),
            expr,
        })
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates on `input`; any missing field or type mismatch is an error.
    pub fn eval(&self, input: &Value) -> Result<bool, EvalError> {
        eval(&self.expr, Scope::Input(input))
    }

    /// Evaluates with each path root bound to the value of the same name
    /// in `roots`; a root not bound there is an error like a missing field.
    pub fn eval_in(&self, roots: &serde_json::Map<String, Value>) -> Result<bool, EvalError> {
        eval(&self.expr, Scope::Roots(roots))
    }

    /// Every path the predicate reads, as (root, steps), in source order.
    pub fn paths(&self) -> Vec<(String, Vec<Step>)> {
        let mut out = Vec::new();
        collect_paths(&self.expr, &mut out);
        out
    }

    /// Whether the predicate reads no path at all (so its value is fixed).
    pub fn is_constant(&self) -> bool {
        self.paths().is_empty()
    }
}

fn collect_paths(expr: &Expr, out: &mut Vec<(String, Vec<Step>)>) {
    let operand = |o: &Operand, out: &mut Vec<(String, Vec<Step>)>| match o {
        Operand::Path(root, steps) => out.push((root.clone(), steps.clone())),
        Operand::Group(e) => collect_paths(e, out),
        Operand::Literal(_) => {}
    };
    match expr {
        Expr::Or(a, b) | Expr::And(a, b) => {
            collect_paths(a, out);
            collect_paths(b, out);
        }
        Expr::Not(e) => collect_paths(e, out),
        Expr::Compare(a, _, b) | Expr::StartsWith(a, b) => {
            operand(a, out);
            operand(b, out);
        }
        Expr::In(a, _) | Expr::Truth(a) => operand(a, out),
    }
}

fn eval(expr: &Expr, input: Scope<'_>) -> Result<bool, EvalError> {
    match expr {
        Expr::Or(a, b) => {
            let (a, b) = (eval(a, input)?, eval(b, input)?);
            Ok(a || b)
        }
        Expr::And(a, b) => {
            let (a, b) = (eval(a, input)?, eval(b, input)?);
            Ok(a && b)
        }
        Expr::Not(e) => Ok(!eval(e, input)?),
        Expr::Truth(o) => match value(o, input)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "{} is {}, not a boolean",
                describe(o),
                kind(&other)
            ))),
        },
        Expr::Compare(a, op, b) => {
            let (va, vb) = (value(a, input)?, value(b, input)?);
            compare(&va, *op, &vb).map_err(|m| EvalError(format!("{} {m}", describe(a))))
        }
        Expr::In(a, list) => {
            let v = value(a, input)?;
            let mut found = false;
            for item in list {
                found |= compare(&v, CmpOp::Eq, item)
                    .map_err(|m| EvalError(format!("{} {m}", describe(a))))?;
            }
            Ok(found)
        }
        Expr::StartsWith(a, b) => match (value(a, input)?, value(b, input)?) {
            (Value::String(s), Value::String(prefix)) => Ok(s.starts_with(&prefix)),
            (x, y) => Err(EvalError(format!(
                "starts_with needs two strings; {} is {} and {} is {}",
                describe(a),
                kind(&x),
                describe(b),
                kind(&y)
            ))),
        },
    }
}

fn value(o: &Operand, input: Scope<'_>) -> Result<Value, EvalError> {
    match o {
        Operand::Literal(v) => Ok(v.clone()),
        Operand::Group(e) => eval(e, input).map(Value::Bool),
        Operand::Path(root, steps) => {
            let mut at = input
                .root(root)
                .ok_or_else(|| EvalError(format!("{root} is missing")))?;
            let mut path = root.clone();
            for step in steps {
                let next = match step {
                    Step::Field(name) => {
                        path.push('.');
                        path.push_str(name);
                        at.as_object().and_then(|m| m.get(name))
                    }
                    Step::Index(i) => {
                        path.push_str(&format!("[{i}]"));
                        at.as_array().and_then(|a| a.get(*i))
                    }
                };
                at = next.ok_or_else(|| EvalError(format!("{path} is missing")))?;
            }
            Ok(at.clone())
        }
    }
}

/// Compares two JSON values of the same kind; numbers exactly (integers as
/// integers, never through a lossy float when both are integers).
fn compare(a: &Value, op: CmpOp, b: &Value) -> Result<bool, String> {
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Some(x.cmp(y)),
        (Value::Null, Value::Null) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Some(Ordering::Equal),
        _ => {
            return Err(format!(
                "is {}, which cannot be compared with {} using `{}`",
                kind(a),
                kind(b),
                op.as_str()
            ));
        }
    };
    let ordering = ordering.ok_or_else(|| "is not a comparable number".to_string())?;
    Ok(match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    })
}

fn number_cmp(x: &serde_json::Number, y: &serde_json::Number) -> Option<Ordering> {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(x), int(y)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe(o: &Operand) -> String {
    match o {
        Operand::Literal(v) => v.to_string(),
        Operand::Group(_) => "(…)".into(),
        Operand::Path(root, steps) => {
            let mut s = root.clone();
            for step in steps {
                match step {
                    Step::Field(n) => {
                        s.push('.');
                        s.push_str(n);
                    }
                    Step::Index(i) => s.push_str(&format!("[{i}]")),
                }
            }
            s
        }
    }
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
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(serde_json::Number),
    Op(CmpOp),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Str(s) => write!(f, "string {s:?}"),
            Token::Num(n) => write!(f, "number {n}"),
            Token::Op(op) => write!(f, "`{}`", op.as_str()),
            Token::Dot => f.write_str("`.`"),
            Token::LBracket => f.write_str("`[`"),
            Token::RBracket => f.write_str("`]`"),
            Token::LParen => f.write_str("`(`"),
            Token::RParen => f.write_str("`)`"),
            Token::Comma => f.write_str("`,`"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset: usize, message: String| ParseError { offset, message };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'.' => Some(Token::Dot),
            b'[' => Some(Token::LBracket),
            b']' => Some(Token::RBracket),
            b'(' => Some(Token::LParen),
            b')' => Some(Token::RParen),
            b',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(t) = single {
            out.push((start, t));
            i += 1;
            continue;
        }
        let two = text.get(i..i + 2);
        let op = match (c, two) {
            (_, Some("==")) => Some((CmpOp::Eq, 2)),
            (_, Some("!=")) => Some((CmpOp::Ne, 2)),
            (_, Some("<=")) => Some((CmpOp::Le, 2)),
            (_, Some(">=")) => Some((CmpOp::Ge, 2)),
            (b'<', _) => Some((CmpOp::Lt, 1)),
            (b'>', _) => Some((CmpOp::Gt, 1)),
            _ => None,
        };
        if let Some((op, len)) = op {
            out.push((start, Token::Op(op)));
            i += len;
            continue;
        }
        if c == b'"' {
            let (s, len) = lex_string(&text[i..]).map_err(|m| err(start, m))?;
            out.push((start, Token::Str(s)));
            i += len;
            continue;
        }
        if c.is_ascii_digit() || (c == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let mut j = i + 1;
            while j < bytes.len()
                && (bytes[j].is_ascii_digit() || matches!(bytes[j], b'.' | b'e' | b'E' | b'_'))
            {
                j += 1;
            }
            let raw: String = text[i..j].chars().filter(|c| *c != '_').collect();
            let n: serde_json::Number = serde_json::from_str(&raw)
                .map_err(|_| err(start, format!("`{}` is not a number", &text[i..j])))?;
            out.push((start, Token::Num(n)));
            i = j;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'_'))
            {
                j += 1;
            }
            out.push((start, Token::Word(text[i..j].to_string())));
            i = j;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or('?');
        return Err(err(start, format!("unexpected character `{ch}`")));
    }
    Ok(out)
}

/// A JSON-style double-quoted string at the start of `text`: its value and
/// length in bytes.
fn lex_string(text: &str) -> Result<(String, usize), String> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                let raw = &text[..=i];
                let s: String = serde_json::from_str(raw)
                    .map_err(|e| format!("bad string literal {raw}: {e}"))?;
                return Ok((s, i + 1));
            }
            _ => {}
        }
    }
    Err("unterminated string literal".into())
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    depth: usize,
    roots: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(o, _)| *o)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x == w)
    }

    fn expect(&mut self, want: &Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(want) {
            self.at += 1;
            Ok(())
        } else {
            let found = self
                .peek()
                .map_or("the end".to_string(), ToString::to_string);
            self.fail(format!("expected {what}, found {found}"))
        }
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.is_word("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.is_word("not") {
            self.at += 1;
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand()?;
        match self.peek() {
            Some(Token::Op(op)) => {
                let op = *op;
                self.at += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(left, op, right))
            }
            Some(Token::Word(w)) if w == "in" => {
                self.at += 1;
                self.expect(&Token::LBracket, "`[` starting the list after `in`")?;
                let mut items = Vec::new();
                loop {
                    items.push(self.literal("a literal in the list")?);
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::RBracket) => break,
                        _ => {
                            self.at -= 1;
                            return self.fail("expected `,` or `]` in the list");
                        }
                    }
                }
                Ok(Expr::In(left, items))
            }
            Some(Token::Word(w)) if w == "starts_with" => {
                self.at += 1;
                let right = self.operand()?;
                Ok(Expr::StartsWith(left, right))
            }
            _ => Ok(Expr::Truth(left)),
        }
    }

    fn literal(&mut self, what: &str) -> Result<Value, ParseError> {
        let v = match self.peek() {
            Some(Token::Str(s)) => Value::String(s.clone()),
            Some(Token::Num(n)) => Value::Number(n.clone()),
            Some(Token::Word(w)) if w == "true" => Value::Bool(true),
            Some(Token::Word(w)) if w == "false" => Value::Bool(false),
            Some(Token::Word(w)) if w == "null" => Value::Null,
            Some(t) => return self.fail(format!("expected {what}, found {t}")),
            None => return self.fail(format!("expected {what}, found the end")),
        };
        self.at += 1;
        Ok(v)
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        match self.peek() {
            Some(Token::LParen) => {
                self.at += 1;
                self.nest()?;
                let inner = self.expr()?;
                self.depth -= 1;
                self.expect(&Token::RParen, "`)`")?;
                Ok(Operand::Group(Box::new(inner)))
            }
            Some(Token::Word(w)) if self.roots.iter().any(|r| r == w) => {
                let root = w.clone();
                self.at += 1;
                self.path(root)
            }
            Some(Token::Word(w)) if !matches!(w.as_str(), "true" | "false" | "null") => {
                let w = w.clone();
                let roots = self
                    .roots
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                self.fail(format!(
                    "unknown name `{w}`: paths start with {roots} (e.g. `input.amount`), strings are quoted"
                ))
            }
            _ => self
                .literal("a value: `input.<field>`, a number, a quoted string, true, false or null")
                .map(Operand::Literal),
        }
    }

    fn path(&mut self, root: String) -> Result<Operand, ParseError> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.at += 1;
                    match self.next() {
                        Some(Token::Word(name)) => steps.push(Step::Field(name)),
                        _ => {
                            self.at -= 1;
                            return self.fail("expected a field name after `.`");
                        }
                    }
                }
                Some(Token::LBracket) => {
                    self.at += 1;
                    let index = match self.next() {
                        Some(Token::Num(n)) => n.as_u64().and_then(|i| usize::try_from(i).ok()),
                        _ => None,
                    };
                    let Some(index) = index else {
                        self.at -= 1;
                        return self.fail("expected a non-negative integer index inside `[ ]`");
                    };
                    self.expect(&Token::RBracket, "`]`")?;
                    steps.push(Step::Index(index));
                }
                _ => return Ok(Operand::Path(root, steps)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_on(text: &str, input: Value) -> Result<bool, EvalError> {
        Predicate::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .eval(&input)
    }

    #[test]
    fn predicates_evaluate_to_the_expected_value_or_an_error() {
        let input = json!({
            "amount": 1500,
            "big": 18446744073709551615u64,
            "ratio": 0.25,
            "currency": "EUR",
            "customer": {"tier": "gold", "id": "C-42"},
            "items": [{"sku": "REF-1"}, {"sku": "X-2"}],
            "express": true,
            "note": null,
        });
        // (predicate, Some(value) | None = cannot be evaluated)
        let table: &[(&str, Option<bool>)] = &[
            ("input.amount > 1000", Some(true)),
            ("input.amount >= 1500", Some(true)),
            ("input.amount < 1500", Some(false)),
            ("input.amount <= 1_500", Some(true)),
            ("input.amount == 1500", Some(true)),
            ("input.amount != 1500", Some(false)),
            ("input.ratio > 0.2", Some(true)),
            ("input.amount > 1499.5", Some(true)),
            ("input.big > 18446744073709551614", Some(true)),
            ("input.currency == \"EUR\"", Some(true)),
            ("input.currency in [\"USD\", \"EUR\"]", Some(true)),
            ("input.currency in [\"USD\"]", Some(false)),
            ("input.customer.tier == \"gold\"", Some(true)),
            ("input.customer.id starts_with \"C-\"", Some(true)),
            ("input.items[0].sku starts_with \"REF-\"", Some(true)),
            ("input.items[1].sku starts_with \"REF-\"", Some(false)),
            ("input.express", Some(true)),
            ("not input.express", Some(false)),
            ("input.note == null", Some(true)),
            (
                "input.amount > 1000 and input.currency == \"EUR\"",
                Some(true),
            ),
            (
                "input.amount > 5000 or input.currency == \"EUR\"",
                Some(true),
            ),
            (
                "input.amount > 5000 or input.currency == \"USD\"",
                Some(false),
            ),
            ("not (input.amount > 5000 or input.express)", Some(false)),
            ("(input.amount > 5000) == false", Some(true)),
            ("true", Some(true)),
            // Missing fields, out-of-range indexes, wrong types: errors.
            ("input.missing > 1", None),
            ("input.customer.missing == \"x\"", None),
            ("input.items[5].sku == \"x\"", None),
            ("input.amount[0] == 1", None),
            ("input.currency > 10", None),
            ("input.amount == \"1500\"", None),
            ("input.amount starts_with \"1\"", None),
            ("input.amount", None),
            ("input.customer", None),
            ("input.express < true", None),
            ("input.amount in [\"a\", 1500]", None),
            // An error on either side of and/or is never skipped.
            ("input.amount > 1 or input.missing > 1", None),
            ("input.amount < 1 and input.missing > 1", None),
            ("not input.missing", None),
        ];
        for (text, want) in table {
            let got = eval_on(text, input.clone());
            match want {
                Some(v) => assert_eq!(got.as_ref().ok(), Some(v), "{text}: {got:?}"),
                None => assert!(got.is_err(), "{text} should not evaluate, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_non_object_input_makes_every_path_an_error() {
        for input in [json!(null), json!([1, 2]), json!("amount"), json!(5)] {
            assert!(
                eval_on("input.amount > 1", input.clone()).is_err(),
                "{input}"
            );
        }
        assert_eq!(eval_on("input > 1", json!(5)), Ok(true));
    }

    #[test]
    fn parse_errors_name_the_place_and_the_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "expected a value"),
            ("input.amount >", 14, "expected a value"),
            ("amount > 5", 0, "unknown name `amount`"),
            ("input.amount > 5 extra", 17, "unexpected `extra`"),
            ("input.amount >> 5", 14, "expected a value"),
            ("input. > 5", 7, "field name"),
            ("input.items[x]", 12, "integer index"),
            ("input.items[-1]", 12, "integer index"),
            ("input.a in [1, 2", 16, "`,` or `]`"),
            ("input.a in 1", 11, "`[`"),
            ("input.a == \"open", 11, "unterminated string"),
            ("(input.a == 1", 13, "`)`"),
            ("input.a # 1", 8, "unexpected character `#`"),
        ];
        for (text, offset, message) in cases {
            let e = Predicate::parse(text).expect_err(text);
            assert_eq!(e.offset, *offset, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
        let e = Predicate::parse(&deep).expect_err("too deep");
        assert!(e.message.contains("nested deeper"), "{e}");
        let nots = format!("{}true", "not ".repeat(40));
        assert!(Predicate::parse(&nots).is_err());
        let ok = format!("{}true{}", "(".repeat(10), ")".repeat(10));
        assert_eq!(
            Predicate::parse(&ok).map(|p| p.eval(&json!({}))),
            Ok(Ok(true))
        );
        let long = "true and ".repeat(600) + "true";
        let e = Predicate::parse(&long).expect_err("too long");
        assert!(e.message.contains("longer than"), "{e}");
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("(amount|customer|tier|items|a|b)", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Predicate text assembled from the language's own tokens, so the
    /// parser sees mostly-valid input and reaches its deep paths.
    fn predicate_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just("input.amount"),
            Just("input.customer.tier"),
            Just("input.items[0]"),
            Just("input.items[99999999999999999999]"),
            Just(" > "),
            Just(" >= "),
            Just(" == "),
            Just(" != "),
            Just(" and "),
            Just(" or "),
            Just("not "),
            Just("("),
            Just(")"),
            Just(" in "),
            Just("["),
            Just("]"),
            Just(","),
            Just(" starts_with "),
            Just("\"gold\""),
            Just("1000"),
            Just("-1e308"),
            Just("18446744073709551616"),
            Just("true"),
            Just("null"),
            Just("\""),
            Just("\\"),
            Just("é"),
        ];
        proptest::collection::vec(token, 0..24).prop_map(|t| t.concat())
    }

    proptest::proptest! {
        /// Any text parses or is refused with an error; any parsed
        /// predicate evaluates on any JSON to a value or an error. No panic.
        #[test]
        fn any_predicate_on_any_json_never_panics(text in predicate_text(), input in any_json()) {
            if let Ok(p) = Predicate::parse(&text) {
                let _ = p.eval(&input);
            }
        }

        /// Arbitrary bytes as predicate text never panic the parser.
        #[test]
        fn arbitrary_text_never_panics_the_parser(text in ".{0,64}") {
            let _ = Predicate::parse(&text);
        }
    }

    #[test]
    fn deep_nesting_and_long_text_are_refused_not_recursed() {
        let deep = format!("{}input.a > 1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Predicate::parse(&deep).is_err());
        let nots = format!("{}input.a", "not ".repeat(1_000));
        assert!(Predicate::parse(&nots).is_err());
    }
}
