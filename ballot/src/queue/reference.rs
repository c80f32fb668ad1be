//! Entries in the reference app's format carry only `voter_id` and `vote`.
//! When the worker takes one, the take script (`scripts/fill.lua`) gives it
//! its place in the queue, written at its start:
//! `{"cast_at":N,"queue_seq":N,...`, the place of the latest ballot taken
//! before it and a sequence number that grows with every such entry. The
//! place stays in the entry, so a batch handed back to the queue keeps its
//! order. Our vote service never writes that shape (it appends `cast_at`
//! at the end), so [`as_queued`] can take exactly it off again, and dead
//! letters stay as they were queued.

use std::borrow::Cow;

/// An entry as it was queued: without the place the take wrote into a
/// reference-format entry (`{"cast_at":N,"queue_seq":N,` at its start, a
/// shape our vote service never writes), so dead letters stay verbatim.
pub fn as_queued(entry: &[u8]) -> Cow<'_, [u8]> {
    let brace = entry.iter().take_while(|b| b.is_ascii_whitespace()).count() + 1;
    let Some(rest) = entry
        .get(brace..)
        .filter(|_| entry.get(brace - 1) == Some(&b'{'))
        .and_then(|rest| strip_number_field(rest, b"\"cast_at\":"))
        .and_then(|rest| strip_number_field(rest, b"\"queue_seq\":"))
    else {
        return Cow::Borrowed(entry);
    };
    Cow::Owned([&entry[..brace], rest].concat())
}

/// `rest` after `name`, a run of digits and a comma, if it starts so.
fn strip_number_field<'a>(rest: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = rest.strip_prefix(name)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    rest[digits..].strip_prefix(b",").filter(|_| digits > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_reference_entry_is_restored_as_queued() {
        let queued = |e: &str| String::from_utf8(as_queued(e.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            queued(r#" {"cast_at":17,"queue_seq":3,"voter_id":"v","vote":"z"}"#),
            r#" {"voter_id":"v","vote":"z"}"#
        );
        assert_eq!(queued(r#"{"cast_at":1,"queue_seq":2,}"#), "{}");
        for unchanged in [
            r#"{"voter_id":"v","vote":"z","cast_at":17}"#,
            r#"{"cast_at":17,"voter_id":"v"}"#,
            r#"{"cast_at":-1,"queue_seq":3,"vote":"a"}"#,
            "not json",
            "",
        ] {
            assert_eq!(queued(unchanged), unchanged);
        }
    }
}
