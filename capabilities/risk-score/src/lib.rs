//! `risk-score`: asks the host's `small` model for an order's risk level,
//! `low`, `medium` or `high`, within the token budget its policy grants.
//! The level set is fixed here and the model's answer is only accepted if
//! it is one of them; anything else is `high`. The score informs the
//! humans who approve (the order workflow shows it to them); it never
//! decides the workflow's control flow.

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:risk-score/risk-score",
    with: {
        "warden:host/types@0.1.0": warden_sdk::types,
        "warden:host/model@0.1.0": warden_sdk::model,
    },
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

use warden_sdk::model::{self, GenerateRequest, Message};

/// The only levels this capability ever returns.
pub const LEVELS: [&str; 3] = ["low", "medium", "high"];

/// Longest order or SKU forwarded to the model, in bytes.
const MAX_FIELD_BYTES: usize = 64;

struct Scorer;

/// The level in a model answer, if it is exactly one of [`LEVELS`]
/// (case, whitespace and a trailing full stop ignored).
pub fn level_of(answer: &str) -> Option<&'static str> {
    let a = answer.trim().trim_end_matches('.').to_ascii_lowercase();
    LEVELS.into_iter().find(|l| *l == a)
}

fn clip(text: &str) -> &str {
    let mut end = text.len().min(MAX_FIELD_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Guest for Scorer {
    fn score(order: String, sku: String, units: u32, amount: u64, currency: String) -> Score {
        let request = GenerateRequest {
            model: "small".into(),
            messages: vec![
                Message {
                    role: "system".into(),
                    content: "Rate the fraud risk of the order. Answer with exactly one word: \
                              low, medium or high."
                        .into(),
                },
                Message {
                    role: "user".into(),
                    content: format!(
                        "order {} sku {} units {units} amount {amount} {} (minor units)",
                        clip(&order),
                        clip(&sku),
                        clip(&currency)
                    ),
                },
            ],
            max_tokens: Some(3),
            temperature: Some(0.0),
        };
        let high = |tokens| Score {
            level: "high".into(),
            from_model: false,
            tokens,
        };
        match model::generate(&request) {
            Ok(reply) => {
                let tokens = reply.input_tokens.saturating_add(reply.output_tokens);
                match level_of(&reply.content) {
                    Some(level) => Score {
                        level: level.into(),
                        from_model: true,
                        tokens,
                    },
                    None => high(tokens),
                }
            }
            Err(_) => high(0),
        }
    }
}

export!(Scorer);
