//! Comparing two resume fingerprints ([`super::MetaTrainConfig::fingerprint`]) setting by
//! setting, so that a refused resume names what changed.

/// The names of the settings that differ between two fingerprints, `source` included; `None`
/// when `saved` is not a fingerprint of this form (a resume state of an earlier version).
pub(crate) fn differing_settings(saved: &str, wanted: &str) -> Option<Vec<String>> {
    let (saved, wanted) = (fields(saved)?, fields(wanted)?);
    let mut names: Vec<String> = wanted
        .iter()
        .filter(|field| !saved.contains(field))
        .map(|(name, _)| name.clone())
        .collect();
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
