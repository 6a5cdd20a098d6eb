//! The redaction scanner: byte-oriented, single pass, no regex.
//!
//! Rules (heuristics, documented so callers know what is and is not caught):
//! * **email**: `local@domain.tld` where local is `[A-Za-z0-9._%+-]+` starting
//!   at a token boundary, domain is dot-separated labels of `[A-Za-z0-9-]`
//!   with at least one dot and an alphabetic TLD of 2+ letters.
//! * **number-like spans** start at a token boundary with a digit, `+digit` or
//!   `(digit`, continue over digit groups separated by 1–2 of ` -.()`, and end
//!   at the last digit; a letter or digit right after the span disqualifies it.
//!   - **card**: 13–19 digits, separators only single spaces or dashes, no
//!     `+`/parentheses, Luhn-valid.
//!   - **phone**: 7–15 digits with at least one separator (or a leading `+`),
//!     last group at least 3 digits (so `2024-01-15` is not a phone), not a
//!     `dd.mm.yyyy`/`yyyy.mm.dd`-shaped date and not a dotted quad (IPv4).
//!
//! Offsets are byte offsets into the original text, end exclusive.

/// What a span was classified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    Card,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Phone => "[PHONE]",
            Kind::Card => "[CARD]",
        }
    }
}

/// One redacted span of the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_label(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

/// Try an e-mail starting at `i`; returns its end.
fn email_at(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < s.len() && is_local(s[j]) {
        j += 1;
    }
    if j == i || j >= s.len() || s[j] != b'@' || s[i] == b'.' {
        return None;
    }
    let dom_start = j + 1;
    let mut k = dom_start;
    let mut last_good = None; // end of the last label that is a valid TLD after >=1 dot
    let mut dots = 0;
    loop {
        let label_start = k;
        while k < s.len() && is_label(s[k]) {
            k += 1;
        }
        if k == label_start {
            break;
        }
        let label = &s[label_start..k];
        if dots >= 1 && label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic) {
            last_good = Some(k);
        }
        if k + 1 < s.len() && s[k] == b'.' && is_label(s[k + 1]) {
            dots += 1;
            k += 1;
        } else {
            break;
        }
    }
    last_good
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (n, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if n % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Classify the digits/groups/separators of a candidate span.
fn classify(plus: bool, paren: bool, digits: &[u8], groups: &[usize], seps: &[&[u8]]) -> Option<Kind> {
    let n = digits.len();
    if !plus
        && !paren
        && (13..=19).contains(&n)
        && seps.iter().all(|r| r.len() == 1 && matches!(r[0], b' ' | b'-'))
        && luhn(digits)
    {
        return Some(Kind::Card);
    }
    let last = groups.last().copied().unwrap_or(0);
    let all_dots = !seps.is_empty() && seps.iter().all(|r| *r == b".");
    let date_like = groups.len() == 3 && n == 8 && (groups == [4, 2, 2] || groups == [2, 2, 4]);
    let ip_like = all_dots && groups.len() == 4 && groups.iter().all(|g| *g <= 3);
    if (7..=15).contains(&n) && (plus || !seps.is_empty()) && last >= 3 && !date_like && !ip_like {
        return Some(Kind::Phone);
    }
    None
}

/// Try a number-like span at `i`. Returns (end, classification). The whole
/// run is tried first; failing that, a shorter prefix of whole digit groups
/// is accepted only at a clear break (` (` before the next group, or a single
/// space after a Luhn-valid card), so adjacent numbers such as
/// `4111111111111111 (555) 123-4567` split correctly. If nothing classifies,
/// the whole run is skipped so no substring of it is redacted.
fn number_at(s: &[u8], i: usize) -> (usize, Option<Kind>) {
    let plus = s[i] == b'+';
    let paren = s[i] == b'(';
    let mut j = i + usize::from(plus || paren);
    let mut digits: Vec<u8> = Vec::new();
    // per group: (end offset, digit count so far)
    let mut groups: Vec<(usize, usize, usize)> = Vec::new();
    let mut seps: Vec<&[u8]> = Vec::new();
    loop {
        let g = j;
        while j < s.len() && s[j].is_ascii_digit() {
            digits.push(s[j]);
            j += 1;
        }
        groups.push((j, j - g, digits.len()));
        if digits.len() > 19 {
            break;
        }
        // separator run of 1-2 chars, at most one space, followed by a digit
        let sep_start = j;
        let mut k = j;
        while k < s.len() && k - sep_start < 2 && is_sep(s[k]) {
            k += 1;
        }
        let run = &s[sep_start..k];
        if run.is_empty()
            || run.iter().filter(|b| **b == b' ').count() > 1
            || k >= s.len()
            || !s[k].is_ascii_digit()
        {
            break;
        }
        seps.push(run);
        j = k;
    }
    let end = groups.last().map(|g| g.0).unwrap_or(j);
    if end < s.len() && s[end].is_ascii_alphanumeric() {
        let mut e = end;
        while e < s.len() && s[e].is_ascii_alphanumeric() {
            e += 1;
        }
        return (e, None);
    }
    let sizes: Vec<usize> = groups.iter().map(|g| g.1).collect();
    for k in (1..=groups.len()).rev() {
        let (gend, _, ndig) = groups[k - 1];
        let kind = classify(plus, paren, &digits[..ndig], &sizes[..k], &seps[..k - 1]);
        let ok = match (k == groups.len(), kind) {
            (_, None) => false,
            (true, Some(_)) => true,
            // a shorter prefix only at a clear break between two numbers:
            // " (" before anything, or a single space after a valid card
            (false, Some(kind)) => seps[k - 1] == b" (" || (seps[k - 1] == b" " && kind == Kind::Card),
        };
        if ok {
            return (gend, kind);
        }
    }
    (end, None)
}

/// Find all spans, in text order, non-overlapping.
pub fn scan(text: &str) -> Vec<Span> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !s[i - 1].is_ascii_alphanumeric();
        let local_boundary = i == 0 || !is_local(s[i - 1]);
        if local_boundary && is_local(s[i]) {
            if let Some(end) = email_at(s, i) {
                out.push(Span { kind: Kind::Email, start: i, end });
                i = end;
                continue;
            }
        }
        let starts_number = s[i].is_ascii_digit()
            || (matches!(s[i], b'+' | b'(') && i + 1 < s.len() && s[i + 1].is_ascii_digit());
        if boundary && starts_number {
            let (end, kind) = number_at(s, i);
            if let Some(kind) = kind {
                out.push(Span { kind, start: i, end });
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// Redact `text`: returns the new text and the spans (original offsets).
pub fn redact(text: &str) -> (String, Vec<Span>) {
    let spans = scan(text);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for sp in &spans {
        out.push_str(&text[pos..sp.start]);
        out.push_str(sp.kind.placeholder());
        pos = sp.end;
    }
    out.push_str(&text[pos..]);
    (out, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str) -> String {
        redact(t).0
    }

    #[test]
    fn emails() {
        assert_eq!(r("mail john.doe+x@example.co.uk now"), "mail [EMAIL] now");
        assert_eq!(r("<a@b.io>."), "<[EMAIL]>.");
        assert_eq!(r("not an email: a@b, @x.com, foo@bar"), "not an email: a@b, @x.com, foo@bar");
        let (_, spans) = redact("x a@b.com");
        assert_eq!(spans, vec![Span { kind: Kind::Email, start: 2, end: 9 }]);
    }

    #[test]
    fn phones() {
        assert_eq!(r("call +1 555-123-4567."), "call [PHONE].");
        assert_eq!(r("call (555) 123-4567"), "call [PHONE]");
        assert_eq!(r("call 555.123.4567 or 555-1234"), "call [PHONE] or [PHONE]");
        assert_eq!(r("+1 (555) 123-4567"), "[PHONE]");
        assert_eq!(r("+44 20 7946 0958"), "[PHONE]");
    }

    #[test]
    fn not_phones() {
        for t in ["on 2024-01-15", "at 15.01.2024", "ip 192.168.100.200", "v1.2.3", "order 12345", "id 5551234567x", "total 1,234.56"] {
            assert_eq!(r(t), t, "{t}");
        }
    }

    #[test]
    fn cards() {
        assert_eq!(r("card 4111 1111 1111 1111 ok"), "card [CARD] ok");
        assert_eq!(r("card 4111-1111-1111-1111"), "card [CARD]");
        assert_eq!(r("card 4111111111111111"), "card [CARD]");
        assert_eq!(r("amex 378282246310005"), "amex [CARD]");
        // not Luhn-valid, too long for a phone
        assert_eq!(r("card 4111 1111 1111 1112"), "card 4111 1111 1111 1112");
    }

    #[test]
    fn offsets_refer_to_original_and_utf8_is_safe() {
        let t = "héllo ✉ a@b.de, tel 555-123-4567 — ünïcode";
        let (out, spans) = redact(t);
        assert_eq!(out, "héllo ✉ [EMAIL], tel [PHONE] — ünïcode");
        assert_eq!(&t[spans[0].start..spans[0].end], "a@b.de");
        assert_eq!(&t[spans[1].start..spans[1].end], "555-123-4567");
    }

    #[test]
    fn mixed() {
        let (out, spans) = redact("a@b.com 4111111111111111 (555) 123-4567");
        assert_eq!(out, "[EMAIL] [CARD] [PHONE]");
        assert_eq!(spans.len(), 3);
        assert_eq!(r("4111 1111 1111 1111 555-1234"), "[CARD] [PHONE]");
    }
}
