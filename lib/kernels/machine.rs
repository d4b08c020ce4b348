//! The machine the kernels run on: its CPU model, the vector extensions it has, and OpenBLAS's
//! build and the kernel OpenBLAS chose for it (the bench and the report print them).

use std::os::raw::c_char;

extern "C" {
    // OpenBLAS's own description of its build and of the kernel it chose for this CPU.
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

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

/// /proc/cpuinfo (empty where there is none).
fn cpuinfo() -> String {
    std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
}

/// A field of the first processor in `cpuinfo`.
fn cpuinfo_field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The CPU's model name ("unknown" where /proc/cpuinfo does not say).
pub fn cpu_model() -> String {
    let info = cpuinfo();
    let field = |name| cpuinfo_field(&info, name);
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
        .unwrap_or_else(|| "unknown".into())
}

/// Which of [`VECTOR_EXTENSIONS`] the CPU has.
pub fn vector_extensions() -> Vec<&'static str> {
    let info = cpuinfo();
    let flags = cpuinfo_field(&info, "flags")
        .or_else(|| cpuinfo_field(&info, "Features"))
        .unwrap_or_default();
    VECTOR_EXTENSIONS
        .iter()
        .copied()
        .filter(|x| flags.split_whitespace().any(|f| f == *x))
        .collect()
}

fn openblas_text(p: *const c_char) -> String {
    if p.is_null() {
        return "unknown".to_string();
    }
    // SAFETY: OpenBLAS returns pointers to static NUL-terminated strings.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_string()
}

/// OpenBLAS's build description.
pub fn blas_config() -> String {
    // SAFETY: a plain getter of a static string.
    openblas_text(unsafe { openblas_get_config() })
}

/// The sgemm kernel OpenBLAS chose for this CPU (e.g. SkylakeX, Haswell, Zen, Prescott).
pub fn blas_kernel() -> String {
    // SAFETY: a plain getter of a static string.
    openblas_text(unsafe { openblas_get_corename() })
}
