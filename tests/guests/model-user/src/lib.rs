//! Guest that imports `warden:host/model`: grants, budgets, clamping.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:model-user/model-user",
    generate_all,
});

use warden::host::model::{self, GenerateRequest, Message};

struct G;

impl Guest for G {
    fn generate(
        model: String,
        prompt: String,
        max_tokens: Option<u32>,
        times: u32,
    ) -> Result<Vec<Reply>, String> {
        let mut out = Vec::new();
        for _ in 0..times {
            let r = model::generate(&GenerateRequest {
                model: model.clone(),
                messages: vec![Message {
                    role: "user".into(),
                    content: prompt.clone(),
                }],
                max_tokens,
                temperature: Some(0.0),
            })
            .map_err(|e| format!("{e:?}"))?;
            out.push(Reply {
                content: r.content,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                finish_reason: r.finish_reason,
            });
        }
        Ok(out)
    }
}

export!(G);
