//! Whether a text mentions a topic: lowercase, `-` and `_` read as spaces,
//! whole words only, singular or plural. The coverage, KPI and persona
//! checks all match words this way, so "pain points", "Pain-Point" and
//! "pain_points" are the same topic and "referrer" is not "referral".

/// Lowercase, `-` and `_` as spaces, whitespace collapsed.
pub(super) fn normalize(s: &str) -> String {
    s.to_lowercase()
        .replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Whether normalized `text` holds `phrase` starting at a word boundary and
/// ending at one, allowing a plural `s`/`es` after it.
pub(super) fn has_word(text: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return true;
    }
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(phrase) {
        let start = from + i;
        let end = start + phrase.len();
        let left_ok = start == 0 || !is_word_byte(bytes[start - 1]);
        let tail = &text[end..];
        let tail = tail
            .strip_prefix("es")
            .filter(|t| !t.bytes().next().is_some_and(is_word_byte))
            .or_else(|| tail.strip_prefix('s'))
            .unwrap_or(tail);
        let right_ok = !tail.bytes().next().is_some_and(is_word_byte);
        if left_ok && right_ok {
            return true;
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

/// A topic or field is mentioned in its plural or singular form ("pain
/// points" or "pain point", "metrics" or "metric").
pub(super) fn mentions(text_norm: &str, topic: &str) -> bool {
    let t = normalize(topic);
    let singular = t.strip_suffix('s').unwrap_or(&t);
    has_word(text_norm, &t) || has_word(text_norm, singular)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_word_boundaries() {
        assert!(has_word("the referral rate", "referral"));
        assert!(has_word("referrals", "referral"));
        assert!(!has_word("referrer", "referral"));
        assert!(!has_word("preactivation", "activation"));
        assert!(has_word("pre activation", "activation"));
        assert!(!has_word("revenued", "revenue"));
    }
}
