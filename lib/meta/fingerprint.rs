//! Comparing two resume fingerprints ([`super::MetaTrainConfig::fingerprint`]) setting by
//! setting, so that a refused resume names what changed; and the record earlier versions
//! wrote, so that their resume states still resume.

use super::config::MetaTrainSettings;
use crate::learned::ALL_PARAMETERS;

/// The names of the settings that differ between two fingerprints, `source` included; `None`
/// when `saved` is not a fingerprint of this form (a resume state of an earlier version).
pub(crate) fn differing_settings(saved: &str, wanted: &str) -> Option<Vec<String>> {
    let (saved, wanted) = (fields(saved)?, fields(wanted)?);
    let mut names: Vec<String> = wanted
        .iter()
        .filter(|field| !saved.contains(field))
        .map(|(name, _)| name.clone())
        .collect();
    // A setting left out at its first value (the architecture) is in one of them only.
    names.extend(
        saved
            .iter()
            .filter(|(name, _)| !wanted.iter().any(|(n, _)| n == name))
            .map(|(name, _)| name.clone()),
    );
    names.dedup();
    Some(names)
}

/// `MetaTrainSettings { name: value, … } source=S` as (name, value) pairs, `source` last.
fn fields(fingerprint: &str) -> Option<Vec<(String, String)>> {
    let body = fingerprint.strip_prefix("MetaTrainSettings { ")?;
    let (mut out, mut depth, mut quoted, mut start) = (Vec::new(), 0i32, false, 0);
    let mut end = None;
    let mut previous = ' ';
    for (i, ch) in body.char_indices() {
        match ch {
            '"' if previous != '\\' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            '}' if !quoted && depth == 0 => {
                end = Some(i);
                break;
            }
            '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(body[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        previous = ch;
    }
    let end = end?;
    out.push(body[start..end].trim().to_string());
    let mut pairs: Vec<(String, String)> = out
        .iter()
        .filter_map(|f| f.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let source = body[end + 1..].trim().strip_prefix("source=")?;
    pairs.push(("source".to_string(), source.to_string()));
    Some(pairs)
}

/// The record of the settings that resume states written before the fingerprint was derived
/// from the settings hold: the settings of that time, listed by hand (docs/formats.md). Only
/// read, to resume such a state; never written.
pub(crate) fn earlier_record(s: &MetaTrainSettings, source: &str) -> String {
    let optional = [
        (s.loss_from != 1).then(|| format!(" loss_from={}", s.loss_from)),
        (s.validation_window != 1).then(|| format!(" validation_window={}", s.validation_window)),
        s.base.map(|base| format!(" base={base}")),
        (s.groups != [ALL_PARAMETERS]).then(|| format!(" groups={}", s.groups.join(","))),
    ];
    format!(
        "hidden={} preprocessing={} output_scale={} forget_bias={} batch={} steps={} unroll={} \
         meta_lr={} meta_lr_decay={} clip={:?} curriculum={:?} meta_loss={} imitation={:?} \
         meta_gradient={:?} validation_steps={} eval_every={} seed={} source={source}",
        s.hidden,
        s.preprocessing,
        s.output_scale,
        s.forget_bias,
        s.batch,
        s.steps,
        s.unroll,
        s.meta_lr,
        s.meta_lr_decay,
        s.clip,
        s.curriculum,
        s.meta_loss,
        s.imitation,
        s.meta_gradient,
        s.validation_steps,
        s.eval_every,
        s.seed
    ) + &optional.into_iter().flatten().collect::<String>()
}
