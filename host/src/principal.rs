//! Principal and group names: one canonical form, checked where a name is
//! written (`[[principal]]` and `groups` in warden.toml, `approvers` in a
//! policy), so names are compared byte for byte and two spellings of one
//! identity (`Alice`, `alice `) can never be two approvers.
//!
//! Canonical form: 1 to [`MAX_PRINCIPAL_BYTES`] characters of ASCII
//! lowercase letters, digits, `.`, `_`, `-` and `@`, starting with a letter
//! or digit. Nothing is folded: a name outside the form is refused, naming
//! it, because rules elsewhere must match it exactly.
//!
//! Pure: no I/O.

/// Longest principal or group name, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 64;

/// Checks that `name` is a canonical principal (or group) name; the error
/// says what is wrong and quotes the name.
pub fn check_principal_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@')
    };
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || name.len() > MAX_PRINCIPAL_BYTES
        || !starts_well
        || !name.chars().all(allowed)
    {
        return Err(format!(
            "name {name:?} is not canonical: use 1 to {MAX_PRINCIPAL_BYTES} lowercase letters, digits, \
             `.`, `_`, `-` or `@`, starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_pass_and_every_other_spelling_is_refused_naming_it() {
        for ok in [
            "alice",
            "ops-2",
            "svc.billing",
            "a_b",
            "ana@example.com",
            "42",
        ] {
            assert!(check_principal_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "alice ",
            " alice",
            "-x",
            "a b",
            "ålice",
            "a\u{0}",
            &"a".repeat(65),
        ] {
            let err = check_principal_name(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
