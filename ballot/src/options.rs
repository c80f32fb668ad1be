use clap::Args;
use serde::Serialize;

/// One choice on the ballot: its id (`a`..`h`) and the label people see.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct VoteOption {
    pub id: &'static str,
    pub label: String,
}

/// Every option id a ballot may name: `a`..`h`. The worker counts a ballot
/// for any of them, labelled or not, so a vote replica configured with more
/// options than the worker never has an acknowledged ballot dropped.
pub const OPTION_IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

/// The configured choices, in id order. Always at least two (`a` and `b`).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct VoteOptions(Vec<VoteOption>);

impl VoteOptions {
    pub fn defaults() -> Self {
        OptionArgs::default().options()
    }

    /// Every id in [`OPTION_IDS`], labelled "Option A" and so on: what the
    /// worker accepts.
    pub fn every_id() -> Self {
        VoteOptions(
            OPTION_IDS
                .iter()
                .map(|&id| VoteOption {
                    id,
                    label: fallback_label(id),
                })
                .collect(),
        )
    }

    /// The label of `id`, or "Option C" for an id with no label configured.
    pub fn label(&self, id: &str) -> String {
        self.get(id)
            .map_or_else(|| fallback_label(id), |o| o.label.clone())
    }

    pub fn get(&self, id: &str) -> Option<&VoteOption> {
        self.0.iter().find(|o| o.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &VoteOption> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `OPTION_A`..`OPTION_H`: the labels of the choices. `a` and `b` always
/// exist; `c`..`h` exist when set.
#[derive(Args, Clone, Debug)]
pub struct OptionArgs {
    #[arg(long, env = "OPTION_A", default_value = "Cats", value_parser = label)]
    pub option_a: String,
    #[arg(long, env = "OPTION_B", default_value = "Dogs", value_parser = label)]
    pub option_b: String,
    #[arg(long, env = "OPTION_C", value_parser = label)]
    pub option_c: Option<String>,
    #[arg(long, env = "OPTION_D", value_parser = label)]
    pub option_d: Option<String>,
    #[arg(long, env = "OPTION_E", value_parser = label)]
    pub option_e: Option<String>,
    #[arg(long, env = "OPTION_F", value_parser = label)]
    pub option_f: Option<String>,
    #[arg(long, env = "OPTION_G", value_parser = label)]
    pub option_g: Option<String>,
    #[arg(long, env = "OPTION_H", value_parser = label)]
    pub option_h: Option<String>,
}

impl Default for OptionArgs {
    fn default() -> Self {
        OptionArgs {
            option_a: "Cats".into(),
            option_b: "Dogs".into(),
            option_c: None,
            option_d: None,
            option_e: None,
            option_f: None,
            option_g: None,
            option_h: None,
        }
    }
}

impl OptionArgs {
    pub fn options(&self) -> VoteOptions {
        let labels = [
            ("a", Some(&self.option_a)),
            ("b", Some(&self.option_b)),
            ("c", self.option_c.as_ref()),
            ("d", self.option_d.as_ref()),
            ("e", self.option_e.as_ref()),
            ("f", self.option_f.as_ref()),
            ("g", self.option_g.as_ref()),
            ("h", self.option_h.as_ref()),
        ];
        VoteOptions(
            labels
                .into_iter()
                .filter_map(|(id, label)| {
                    label.map(|l| VoteOption {
                        id,
                        label: l.clone(),
                    })
                })
                .collect(),
        )
    }
}

fn fallback_label(id: &str) -> String {
    format!("Option {}", id.to_uppercase())
}

/// Labels are shown on buttons: non-empty and short enough to fit.
fn label(value: &str) -> Result<String, String> {
    let value = value.trim();
    match value.chars().count() {
        0 => Err("must not be empty".into()),
        1..=40 => Ok(value.to_string()),
        _ => Err("must be at most 40 characters".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: OptionArgs,
    }

    #[test]
    fn defaults_are_cats_and_dogs() {
        let o = Cli::parse_from(["x"]).options.options();
        let labels: Vec<_> = o.iter().map(|o| (o.id, o.label.as_str())).collect();
        assert_eq!(labels, [("a", "Cats"), ("b", "Dogs")]);
    }

    #[test]
    fn extra_options_keep_their_letters() {
        let o = Cli::parse_from(["x", "--option-d", "Fish"])
            .options
            .options();
        assert_eq!(o.get("d").unwrap().label, "Fish");
        assert_eq!(o.len(), 3);
        assert!(o.get("c").is_none());
    }

    #[test]
    fn every_id_is_a_to_h_with_stand_in_labels() {
        let every = VoteOptions::every_id();
        assert_eq!(every.len(), 8);
        assert_eq!(every.get("h").unwrap().label, "Option H");
        assert!(every.get("i").is_none());
        assert_eq!(VoteOptions::defaults().label("a"), "Cats");
        assert_eq!(VoteOptions::defaults().label("c"), "Option C");
    }

    #[test]
    fn empty_label_is_refused() {
        assert!(Cli::try_parse_from(["x", "--option-a", " "]).is_err());
    }
}
