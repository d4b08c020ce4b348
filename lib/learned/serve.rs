//! A learned optimizer inside someone else's training loop (`evaluate --serve-updates`;
//! docs/formats.md, "Learned updates"): the loop sends θ and ∇f each step over the external
//! protocol's frames, and l2l answers the θ its optimizer steps to, keeping the LSTM's state
//! between steps. The update is the one `evaluate` makes on a spec, bit for bit.

use super::OptimizerChoice;
use crate::baselines::UpdateRule;
use crate::error::{Error, Result};
use crate::problems::external::{
    parse_handshake, read_frame, read_values, write_frame, PROTOCOL_VERSION,
};
use std::io::{Read, Write};

/// Answers a training loop on `input` and `output` until it closes `input`: first its `HELO`
/// (the problem's size and parameter groups, as an external optimizee's handshake gives them),
/// then one `STEP` (θ, then ∇f) after another. Returns the steps served.
pub fn serve_updates(
    choice: &OptimizerChoice,
    mut input: impl Read,
    mut output: impl Write,
) -> Result<u64> {
    let closed = |e: std::io::Error| Error::Other(format!("writing the answer: {e}"));
    let (dim, mut rule) = match read_frame(&mut input) {
        Ok((tag, body)) if &tag == b"HELO" => {
            let hello = parse_handshake(&body)
                .map_err(|e| Error::Other(format!("the training loop's HELO: it {e}")))?;
            let rule: Box<dyn UpdateRule> = choice.rule(&hello.groups, hello.dim, 1)?;
            write_frame(&mut output, b"HELO", &PROTOCOL_VERSION.to_le_bytes()).map_err(closed)?;
            (hello.dim, rule)
        }
        Ok((tag, _)) => return Err(unexpected(&tag, "HELO", 0)),
        Err(e) => {
            return Err(Error::Other(format!(
                "reading the training loop's HELO: {e}"
            )))
        }
    };
    let mut theta = vec![0.0f32; dim];
    let mut grad = vec![0.0f32; dim];
    let mut steps = 0u64;
    loop {
        let body = match read_frame(&mut input) {
            Ok((tag, body)) if &tag == b"STEP" => body,
            Ok((tag, _)) => return Err(unexpected(&tag, "STEP", steps)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(steps),
            Err(e) => return Err(Error::Other(format!("step {steps}: {e}"))),
        };
        let at = |e: String| Error::Other(format!("step {steps}: the training loop {e}"));
        if body.len() != 8 * dim {
            return Err(at(format!(
                "sent a STEP of {} bytes; θ and ∇f of {dim} parameters take {}",
                body.len(),
                8 * dim
            )));
        }
        read_values(&body[..4 * dim], &mut theta, "θ").map_err(at)?;
        read_values(&body[4 * dim..], &mut grad, "gradient").map_err(at)?;
        rule.step(&mut theta, &grad);
        let answer: Vec<u8> = theta.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_frame(&mut output, b"STEP", &answer).map_err(closed)?;
        steps += 1;
    }
}

fn unexpected(tag: &[u8; 4], wanted: &str, step: u64) -> Error {
    Error::Other(format!(
        "step {step}: the training loop sent a frame tagged {:?} where {wanted} belongs",
        String::from_utf8_lossy(tag)
    ))
}
