//! The results page (`report`): which of the paper's claims held on this machine, by how
//! much and with which recipe, built only from what the pipeline wrote under `out/` and
//! `figures/`. The page is a list of [`Block`]s rendered twice, as one static HTML file and
//! as its Markdown twin, so that the two always say the same.

mod claims;
mod environment;
mod render;
mod sections;

pub use claims::{mean_and_se, measure, specs, Claim, ClaimSpec, Evidence, Expect};
pub use render::{html, markdown};

use crate::error::Result;
use std::path::{Path, PathBuf};

/// One piece of the page.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Heading(String),
    Paragraph(String),
    /// A table; `id` names it in the HTML (the claims table is `claims`).
    Table {
        id: Option<&'static str>,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A committed figure: its path relative to the figures folder, caption and settings.
    Figure {
        file: String,
        caption: String,
        settings: Vec<String>,
    },
    /// A drawing inlined in the HTML (the Markdown twin shows only its caption).
    Svg {
        svg: String,
        caption: String,
    },
}

/// Where the report reads from.
pub struct Sources {
    /// The pipeline's outputs (`out/`).
    pub out: PathBuf,
    /// The committed figures (`figures/`).
    pub figures: PathBuf,
    /// The TrueType font the inlined drawings use.
    pub font: PathBuf,
}

/// Builds the page from `sources`; a file that exists but cannot be read is an error, a file
/// that does not exist yet is reported as "not run".
pub fn build(sources: &Sources) -> Result<Vec<Block>> {
    let claims = measure(&sources.out)?;
    let mut page = vec![Block::Paragraph(
        "Which of the paper's claims held on the machine that ran the pipeline, computed from \
         the parquet files under out/ by l2l's own report binary (make report). A claim whose \
         outputs do not exist yet says which make target writes them."
            .into(),
    )];
    page.extend(sections::claims_table(&claims));
    page.extend(sections::figures(sources)?);
    page.extend(sections::tuning(&sources.out)?);
    page.extend(sections::training_logs(sources)?);
    page.extend(sections::bench(&sources.out)?);
    page.extend(environment::section(&sources.out));
    Ok(page)
}

/// `path` relative to the folder `from` (both made absolute first), for links in a page.
pub fn relative_link(path: &Path, from: &Path) -> String {
    let absolute = |p: &Path| {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Lexically, so that folders that do not exist yet still work.
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let (to, from) = (absolute(path), absolute(from));
    let common = to
        .components()
        .zip(from.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = from
        .components()
        .skip(common)
        .map(|_| "..".into())
        .collect();
    parts.extend(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_page() {
        assert_eq!(
            relative_link(
                Path::new("/r/figures/figure4.png"),
                Path::new("/r/out/report")
            ),
            "../../figures/figure4.png"
        );
        assert_eq!(
            relative_link(Path::new("/r/figures/a.png"), Path::new("/r")),
            "figures/a.png"
        );
    }
}
