//! The machine that wrote the report: CPU model and vector extensions, threads, BLAS, the
//! compiler, l2l's version, the git commit and the date.

use super::Block;
use crate::kernels::machine::{blas_config, blas_kernel, cpu_model, vector_extensions};
use std::path::Path;
use std::process::Command;

/// One labelled line of the environment section.
pub type Fact = (&'static str, String);

pub fn collect(repository: &Path) -> Vec<Fact> {
    let model = cpu_model();
    let present = vector_extensions();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let blas = format!("{} (kernel {})", blas_config(), blas_kernel());
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repository)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{c} (with uncommitted changes)"),
            _ => c,
        },
        None => "unknown (not a git checkout)".into(),
    };
    vec![
        (
            "CPU",
            format!("{model} ({} {cores} cores)", std::env::consts::ARCH),
        ),
        (
            "vector extensions",
            if present.is_empty() {
                "none of the listed ones".into()
            } else {
                present.join(" ")
            },
        ),
        (
            "threads",
            format!("{} (rayon)", rayon::current_num_threads()),
        ),
        ("BLAS", blas),
        (
            "kernels built for",
            crate::kernels::isa::KERNEL_ISA.to_string(),
        ),
        ("rustc", env!("L2L_RUSTC_VERSION").to_string()),
        ("l2l", env!("CARGO_PKG_VERSION").to_string()),
        ("git commit", commit),
        ("date", utc_now()),
    ]
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to the proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The page's last section: the machine and build that wrote it.
pub fn section(out: &Path) -> Vec<Block> {
    let repository = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let rows = collect(repository)
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    vec![
        Block::Heading("Environment".into()),
        Block::Paragraph("The machine and build that wrote this page.".into()),
        Block::Table {
            id: Some("environment"),
            header: vec!["item".into(), "value".into()],
            rows,
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_gregorian() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
