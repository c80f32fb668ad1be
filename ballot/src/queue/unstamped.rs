//! What the vote service hands the queue script for each vote: the entry
//! without `cast_at`, which only the script can give (from the queue's clock).

use super::Ballot;

/// The ballot's JSON as [`Ballot::to_json`] writes it, without `cast_at`
/// and without the closing brace: the queue script ([`super::scripts::QUEUE`])
/// appends both. Written directly, as this runs for every vote: voter ids
/// the vote service keeps (`[0-9A-Za-z_-]`) and option ids (`a`..`h`) need
/// no escaping; other text goes through serde.
pub fn unstamped_entry(voter_id: &str, vote: &str) -> Vec<u8> {
    let plain = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !(plain(voter_id) && plain(vote)) {
        let mut ballot = Ballot::cast(voter_id, vote);
        ballot.cast_at = None;
        let mut json = ballot.to_json().into_bytes();
        json.pop(); // the closing brace
        return json;
    }
    let mut json = Vec::with_capacity(28 + voter_id.len() + vote.len());
    json.extend_from_slice(br#"{"voter_id":""#);
    json.extend_from_slice(voter_id.as_bytes());
    json.extend_from_slice(br#"","vote":""#);
    json.extend_from_slice(vote.as_bytes());
    json.push(b'"');
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VoteOptions;

    #[test]
    fn the_unstamped_ballot_is_the_ballot_json_open_at_the_end() {
        let prefix = String::from_utf8(unstamped_entry("42ea16b298bc356", "b")).unwrap();
        assert_eq!(prefix, r#"{"voter_id":"42ea16b298bc356","vote":"b""#);
        let stamped = format!(r#"{prefix},"cast_at":1795453181208434}}"#);
        let ballot = Ballot::parse(stamped.as_bytes(), &VoteOptions::defaults()).unwrap();
        assert_eq!(ballot.cast_at, Some(1_795_453_181_208_434));
    }

    /// Written by hand or by serde, it is what `Ballot::to_json` writes.
    #[test]
    fn the_unstamped_ballot_matches_serde_for_any_text() {
        let long = "x".repeat(64);
        let cases = [
            ("3f1c0e9a6b2d4c8e9f00112233445566", "a"),
            ("Voter_id-with_UPPER-and-lower-0123456789", "h"),
            (long.as_str(), "b"),
            ("quote\"back\\slash", "a"),
            ("tr\u{e9}ma \u{1}", "b"),
        ];
        for (voter_id, option) in cases {
            let mut ballot = Ballot::cast(voter_id, option);
            ballot.cast_at = None;
            let serde = ballot.to_json();
            let ours = String::from_utf8(unstamped_entry(voter_id, option)).unwrap();
            assert_eq!(format!("{ours}}}"), serde, "{voter_id:?}");
        }
    }
}
