//! Containment of panics in third-party decoders. The parquet crate trusts some of a file's
//! internal lengths and indexes and panics on corrupt ones (fuzzing found several);
//! a corrupt file must be one error line, so its decoding runs here, where such a panic becomes
//! an error and prints nothing. This needs `panic = "unwind"`, Rust's default, which
//! Cargo.toml keeps.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contain`], whose panics are reported as errors.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode`; a panic inside it becomes `Err(its message)`, and the panic hook stays
/// silent for it. Panics anywhere else are reported as before.
pub fn contain<T>(decode: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(decode));
    CONTAINED.with(|c| c.set(was));
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown failure".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_an_error() {
        assert_eq!(contain(|| 3), Ok(3));
        let e = contain(|| -> u8 { panic!("index out of bounds") }).unwrap_err();
        assert_eq!(e, "index out of bounds");
        let v: Vec<u8> = Vec::new();
        let e = contain(|| v[std::hint::black_box(2)]).unwrap_err();
        assert!(e.contains("index out of bounds"), "{e}");
    }
}
