//! The machine the kernels run on: its CPU model, the vector extensions it has, and OpenBLAS's
//! build and the kernel OpenBLAS runs (the bench and the report print them), which l2l chooses
//! from the CPU's features ([`choose_blas_kernel`]).

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

/// The memory the kernel says can be had without swapping (`MemAvailable` of /proc/meminfo), in
/// bytes; none where it does not say.
pub fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = cpuinfo_field(&info, "MemAvailable")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The variable through which OpenBLAS (built with DYNAMIC_ARCH, as Debian's is) takes its
/// kernel; it reads it once, when the library is loaded.
pub const BLAS_KERNEL_VARIABLE: &str = "OPENBLAS_CORETYPE";
/// Set by [`choose_blas_kernel`] when l2l, not the user, chose the kernel.
const CHOSEN_BY_L2L: &str = "L2L_BLAS_KERNEL_CHOSEN";

/// The OpenBLAS kernel for a CPU with `extensions` (names as /proc/cpuinfo has them):
/// SkylakeX with AVX-512 (F, BW, VL), Haswell with AVX2 and FMA, else none (OpenBLAS's own
/// choice stands). OpenBLAS 0.3.21 calls CPUs it does not know "Prescott", a generic SSE3
/// kernel a fifth as fast, whatever they can run.
pub fn blas_kernel_for(extensions: &[&str]) -> Option<&'static str> {
    let has = |x: &str| extensions.contains(&x);
    if has("avx512f") && has("avx512bw") && has("avx512vl") {
        Some("SkylakeX")
    } else if has("avx2") && has("fma") {
        Some("Haswell")
    } else {
        None
    }
}

/// Who chose the OpenBLAS kernel this process runs: "l2l" ([`choose_blas_kernel`]), "user"
/// (OPENBLAS_CORETYPE was set), or "OpenBLAS" (its own detection).
pub fn blas_kernel_chooser() -> &'static str {
    if std::env::var_os(CHOSEN_BY_L2L).is_some() {
        "l2l"
    } else if std::env::var_os(BLAS_KERNEL_VARIABLE).is_some() {
        "user"
    } else {
        "OpenBLAS"
    }
}

/// Makes OpenBLAS run the kernel [`blas_kernel_for`] picks for this CPU, unless the user set
/// OPENBLAS_CORETYPE. OpenBLAS reads that variable when it is loaded, before `main`, so when
/// its kernel differs this runs the program again, with the same arguments and the variable
/// set, and returns only if that cannot be done. l2l's own results do not depend on the
/// kernel (its products are its own, `kernels/gemm.rs`); the bench's sgemm reference does.
pub fn choose_blas_kernel() -> std::io::Result<()> {
    if std::env::var_os(BLAS_KERNEL_VARIABLE).is_some() {
        return Ok(());
    }
    let Some(kernel) = blas_kernel_for(&vector_extensions()) else {
        return Ok(());
    };
    if blas_kernel().eq_ignore_ascii_case(kernel) {
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(BLAS_KERNEL_VARIABLE, kernel)
        .env(CHOSEN_BY_L2L, "1")
        .exec();
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_follows_the_widest_vectors() {
        let avx512 = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl"];
        assert_eq!(blas_kernel_for(&avx512), Some("SkylakeX"));
        assert_eq!(blas_kernel_for(&avx512[..3]), Some("Haswell"));
        assert_eq!(blas_kernel_for(&["avx2", "fma"]), Some("Haswell"));
        assert_eq!(blas_kernel_for(&["avx", "sse4_2"]), None);
        assert_eq!(blas_kernel_for(&["asimd"]), None);
    }
}
