//! The page as one static HTML file (no script, no network: it opens from disk) and as its
//! Markdown twin for a repository host. Both render the same blocks.

use super::Block;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str =
    "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}\
th,td{border:1px solid #ccc;padding:0.3em 0.5em;vertical-align:top;text-align:left}\
th{background:#f2f2f2}td.held{font-weight:bold}tr.notrun td{color:#888}\
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}\
figcaption{font-size:0.9em}figcaption ul{margin:0.3em 0;padding-left:1.2em;color:#555}";

/// The HTML page; `figures` is the figures folder relative to the page's folder.
pub fn html(title: &str, blocks: &[Block], figures: &str) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(h) => s += &format!("<h2>{}</h2>\n", escape(h)),
            Block::Paragraph(p) => s += &format!("<p>{}</p>\n", escape(p)),
            Block::Table { id, header, rows } => {
                match id {
                    Some(id) => s += &format!("<table id=\"{id}\">\n<thead><tr>"),
                    None => s += "<table>\n<thead><tr>",
                }
                for h in header {
                    s += &format!("<th>{}</th>", escape(h));
                }
                s += "</tr></thead>\n<tbody>\n";
                for row in rows {
                    let not_run = row.iter().any(|c| c == "not run");
                    s += if not_run {
                        "<tr class=\"notrun\">"
                    } else {
                        "<tr>"
                    };
                    for (i, c) in row.iter().enumerate() {
                        let class = if header.get(i).is_some_and(|h| h == "held") {
                            " class=\"held\""
                        } else {
                            ""
                        };
                        s += &format!("<td{class}>{}</td>", escape(c));
                    }
                    s += "</tr>\n";
                }
                s += "</tbody>\n</table>\n";
            }
            Block::Figure {
                file,
                caption,
                settings,
            } => {
                s += &format!(
                    "<figure>\n<img src=\"{}/{}\" alt=\"{}\">\n<figcaption>{}",
                    escape(figures),
                    escape(file),
                    escape(file),
                    escape(caption)
                );
                if !settings.is_empty() {
                    s += "<ul>";
                    for line in settings {
                        s += &format!("<li>{}</li>", escape(line));
                    }
                    s += "</ul>";
                }
                s += "</figcaption>\n</figure>\n";
            }
            Block::Svg { svg, caption } => {
                // plotters writes a standalone document; its XML declaration has no place
                // inside HTML.
                let body = svg
                    .trim_start()
                    .strip_prefix("<?xml")
                    .and_then(|r| r.split_once("?>"))
                    .map_or(svg.as_str(), |(_, rest)| rest);
                s += &format!(
                    "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                    body.trim(),
                    escape(caption)
                );
            }
        }
    }
    s += "</body>\n</html>\n";
    s
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown twin; `figures` is the figures folder relative to the Markdown file's folder.
pub fn markdown(title: &str, blocks: &[Block], figures: &str) -> String {
    let mut s = format!("# {title}\n\n");
    for b in blocks {
        match b {
            Block::Heading(h) => s += &format!("## {h}\n\n"),
            Block::Paragraph(p) => s += &format!("{p}\n\n"),
            Block::Table { header, rows, .. } => {
                s += &format!(
                    "| {} |\n|{}\n",
                    header
                        .iter()
                        .map(|h| cell(h))
                        .collect::<Vec<_>>()
                        .join(" | "),
                    "---|".repeat(header.len())
                );
                for row in rows {
                    s += &format!(
                        "| {} |\n",
                        row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                }
                s += "\n";
            }
            Block::Figure {
                file,
                caption,
                settings,
            } => {
                s += &format!("![{file}]({figures}/{file})\n\n{caption}\n\n");
                for line in settings {
                    s += &format!("- {line}\n");
                }
                if !settings.is_empty() {
                    s += "\n";
                }
            }
            Block::Svg { caption, .. } => s += &format!("{caption} (drawn in the HTML page)\n\n"),
        }
    }
    s
}
