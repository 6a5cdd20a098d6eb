//! `ticket-triage`: asks the host's `small` model to classify a support
//! ticket as `billing`, `bug`, `account` or `other`. The label set is fixed
//! here; the model's answer is only accepted if it is one of them (control
//! flow never comes from the model). Output is capped at a few tokens.

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:ticket-triage/ticket-triage",
    with: {
        "warden:host/types@0.1.0": warden_sdk::types,
        "warden:host/model@0.1.0": warden_sdk::model,
    },
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

use warden_sdk::model::{self, GenerateRequest, Message};

/// The only labels this capability ever returns.
pub const LABELS: [&str; 4] = ["billing", "bug", "account", "other"];

/// Longest ticket text forwarded to the model, in bytes.
const MAX_TICKET_BYTES: usize = 4000;

struct Classifier;

/// The label in a model answer, if it is exactly one of [`LABELS`]
/// (case, whitespace and a trailing full stop ignored).
pub fn label_of(answer: &str) -> Option<&'static str> {
    let a = answer.trim().trim_end_matches('.').to_ascii_lowercase();
    LABELS.into_iter().find(|l| *l == a)
}

fn clip(text: &str) -> &str {
    let mut end = text.len().min(MAX_TICKET_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Guest for Classifier {
    fn triage(subject: String, body: String) -> Triage {
        let request = GenerateRequest {
            model: "small".into(),
            messages: vec![
                Message {
                    role: "system".into(),
                    content: "Classify the support ticket. Answer with exactly one word: \
                              billing, bug, account or other."
                        .into(),
                },
                Message {
                    role: "user".into(),
                    content: format!("Subject: {}\n\n{}", clip(&subject), clip(&body)),
                },
            ],
            max_tokens: Some(3),
            temperature: Some(0.0),
        };
        match model::generate(&request) {
            Ok(reply) => {
                let tokens = reply.input_tokens.saturating_add(reply.output_tokens);
                match label_of(&reply.content) {
                    Some(label) => Triage { label: label.into(), from_model: true, tokens },
                    None => Triage { label: "other".into(), from_model: false, tokens },
                }
            }
            Err(_) => Triage { label: "other".into(), from_model: false, tokens: 0 },
        }
    }
}

export!(Classifier);
