//! The machine that wrote the report: CPU model and vector extensions, threads, BLAS, the
//! compiler, l2l's version, the git commit and the date.

use std::os::raw::c_char;
use std::path::Path;
use std::process::Command;

extern "C" {
    // OpenBLAS's own description of its build and of the kernel it chose for this CPU.
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

/// One labelled line of the environment section.
pub type Fact = (&'static str, String);

/// The vector extensions that matter for l2l's kernels, as /proc/cpuinfo names them
/// (x86-64 `flags`, aarch64 `Features`).
const VECTOR_EXTENSIONS: &[&str] = &[
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "asimd",
    "asimdhp",
    "sve",
    "sve2",
];

pub fn collect(repository: &Path) -> Vec<Fact> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
        .unwrap_or_else(|| "unknown".into());
    let flags = field("flags")
        .or_else(|| field("Features"))
        .unwrap_or_default();
    let present: Vec<&str> = VECTOR_EXTENSIONS
        .iter()
        .copied()
        .filter(|x| flags.split_whitespace().any(|f| f == *x))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // SAFETY: both return pointers to static NUL-terminated strings inside OpenBLAS.
    let blas = unsafe {
        let text = |p: *const c_char| {
            if p.is_null() {
                "unknown".to_string()
            } else {
                std::ffi::CStr::from_ptr(p)
                    .to_string_lossy()
                    .trim()
                    .to_string()
            }
        };
        format!(
            "{} (kernel {})",
            text(openblas_get_config()),
            text(openblas_get_corename())
        )
    };
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

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_gregorian() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
