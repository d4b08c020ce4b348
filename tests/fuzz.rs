//! Fuzzing the readers. Valid specs, checkpoints and trajectories are mutated at
//! the byte level, at the `.npy` header level, member by member and column by column, then read;
//! what a reader accepts is used for two steps, as evaluate and plot would use it. A panic, an
//! abort, a single allocation over 1 GiB (the files are a few KiB) or a case over 30 s is a
//! failure; the file that caused it is kept under `target/fuzz-failures/`.
//!
//! `L2L_FUZZ_SECONDS` is each reader's budget (3 s by default, as `make test` runs it;
//! `make fuzz` gives 600). `L2L_FUZZ_SEED` starts another sequence of cases.

mod common;
mod fuzzing;

use common::*;
use fuzzing::{mutate_bytes, mutate_npz, mutate_parquet, Rng};
use l2l::baselines::Baseline;
use l2l::evaluation;
use l2l::learned::{LearnedOptimizer, Networks, OptimizerChoice};
use l2l::plotting::{draw_figure, draw_sweep, Panel, SweepCell, DEFAULT_FONT_PATH};
use l2l::problems::{FromSpec, QuadraticSet, SetVisitor, Spec};
use l2l::trajectory::read_trajectories;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest single allocation a case may make.
const ALLOCATION_LIMIT: usize = 1 << 30;
/// The longest a case may take.
const CASE_LIMIT: Duration = Duration::from_secs(30);

/// Refuses any allocation over [`ALLOCATION_LIMIT`], so a reader that trusts a declared size
/// aborts here (with this message) instead of passing on a machine with enough memory.
struct Guard;

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            too_large(layout.size());
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            too_large(layout.size());
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            too_large(new_size);
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

/// Says which cases were running, without allocating (we are inside the allocator).
fn too_large(size: usize) {
    use std::io::Write;
    let mut buf = [0u8; 256];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = writeln!(
        cursor,
        "fuzz: an allocation of {size} bytes, over the limit; cases running: spec {}, checkpoint {}, trajectory {}",
        CURRENT[0].load(Ordering::Relaxed),
        CURRENT[1].load(Ordering::Relaxed),
        CURRENT[2].load(Ordering::Relaxed)
    );
    let n = cursor.position() as usize;
    let _ = std::io::stderr().write_all(&buf[..n]);
}

static CURRENT: [AtomicUsize; 4] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

/// One reader under test: its valid inputs, how to mutate them, and how to read and use one.
struct Reader {
    name: &'static str,
    slot: usize,
    extension: &'static str,
    bases: Vec<Vec<u8>>,
    mutate: fn(&mut Rng, &[u8]) -> (Vec<u8>, String),
    exercise: Box<dyn Fn(&Path) + Sync>,
}

fn budget() -> Duration {
    let seconds = std::env::var("L2L_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

fn seed() -> u64 {
    std::env::var("L2L_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13)
}

/// Runs cases until the budget is spent; panics with the failing case's description.
fn fuzz(reader: Reader, dir: &Dir) {
    let budget = budget();
    let mut rng = Rng::new(seed() ^ (reader.slot as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let started = Arc::new(Mutex::new(Instant::now()));
    let watched = Arc::clone(&started);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let name = reader.name;
    let slot = reader.slot;
    let path = dir.path(&format!("case.{}", reader.extension));
    let case_file = path.clone();
    std::thread::spawn(move || {
        while !finished.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if watched.lock().unwrap().elapsed() > CASE_LIMIT {
                let case = CURRENT[slot].load(Ordering::Relaxed);
                let kept = keep_failure(name, case, &std::fs::read(&case_file).unwrap_or_default());
                eprintln!(
                    "fuzz: {name} case {case} ran over {CASE_LIMIT:?}: a hang; the file is {}",
                    kept.display()
                );
                std::process::exit(1);
            }
        }
    });
    let clock = Instant::now();
    let (mut cases, mut accepted) = (0usize, 0usize);
    while clock.elapsed() < budget {
        let base = &reader.bases[rng.below(reader.bases.len())];
        let (bytes, what) = (reader.mutate)(&mut rng, base);
        std::fs::write(&path, &bytes).unwrap();
        CURRENT[slot].store(cases, Ordering::Relaxed);
        *started.lock().unwrap() = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| (reader.exercise)(&path)));
        if let Err(panic) = outcome {
            let kept = keep_failure(reader.name, cases, &bytes);
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz: {} case {cases} ({what}) panicked: {message}; the file is {}",
                reader.name,
                kept.display()
            );
        }
        if ACCEPTED.with(|a| a.replace(false)) {
            accepted += 1;
        }
        cases += 1;
    }
    done.store(true, Ordering::Relaxed);
    eprintln!(
        "fuzz: {}: {cases} cases in {:.0} s, {accepted} accepted, no panic, abort or hang",
        reader.name,
        clock.elapsed().as_secs_f64()
    );
}

thread_local! {
    /// Whether the reader accepted the case just run (for the summary line).
    static ACCEPTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn accepted() {
    ACCEPTED.with(|a| a.set(true));
}

fn keep_failure(reader: &str, case: usize, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{reader}-{}-{case}", seed()));
    let _ = std::fs::write(&path, bytes);
    path
}

/// A mutation of an npz: mostly at the member and header level (a rebuilt, valid archive, so
/// the mutation reaches the `.npy` decoder and the field checks), sometimes byte by byte.
fn mutate_archive(rng: &mut Rng, base: &[u8]) -> (Vec<u8>, String) {
    if rng.below(4) == 0 {
        mutate_bytes(rng, base)
    } else {
        mutate_npz(rng, base)
    }
}

fn mutate_table(rng: &mut Rng, base: &[u8]) -> (Vec<u8>, String) {
    if rng.below(2) == 0 {
        mutate_bytes(rng, base)
    } else {
        mutate_parquet(rng, base)
    }
}

/// Two steps of SGD on an accepted spec, as evaluate would run it.
struct TwoSteps;

impl SetVisitor for TwoSteps {
    type Output = ();
    fn visit<P: FromSpec>(self, set: P) {
        let sgd = OptimizerChoice::Baseline {
            kind: Baseline::Sgd,
            lr: 0.01,
        };
        let _ = evaluation::run(&set, &sgd, 2);
    }
}

#[test]
fn spec_reader() {
    let d = Dir::new();
    specs_for_fuzzing(&d);
    let mlp = Dir::new();
    mlp_specs(&mlp);
    let bases = [
        d.path("train.npz"),
        d.path("numpy.npz"),
        mlp.path("test.npz"),
        mlp.path("test2.npz"),
    ]
    .iter()
    .map(|p| std::fs::read(p).unwrap())
    .collect();
    let data = mlp.path("digits.csv");
    fuzz(
        Reader {
            name: "spec",
            slot: 0,
            extension: "npz",
            bases,
            mutate: mutate_archive,
            exercise: Box::new(move |path| {
                if let Ok(spec) = Spec::load(path, Some(&data)) {
                    accepted();
                    spec.visit(TwoSteps);
                }
            }),
        },
        &d,
    );
}

/// Neural-art specs on the tiny feature network: the pixels, layers and weights they carry.
#[test]
fn neural_art_spec_reader() {
    let d = Dir::new();
    art_spec(&d, "art.npz", 2, 1);
    let bases = vec![std::fs::read(d.path("art.npz")).unwrap()];
    let net = d.path("art_net.npz");
    fuzz(
        Reader {
            name: "neural-art spec",
            slot: 3,
            extension: "npz",
            bases,
            mutate: mutate_archive,
            exercise: Box::new(move |path| {
                if let Ok(spec) = Spec::load(path, Some(&net)) {
                    accepted();
                    spec.visit(TwoSteps);
                }
            }),
        },
        &d,
    );
}

#[test]
fn checkpoint_reader() {
    let d = Dir::new();
    specs_for_fuzzing(&d);
    train(&d, "v1.npz");
    train_with(&d, &["--base", "nag"], "v2.npz");
    // Version 3: two networks by parameter group.
    let mut two = LearnedOptimizer::load(&d.path("v1.npz")).unwrap();
    let architecture = two.networks.0[0].architecture.clone();
    two.networks = Networks::per_group(&["conv".into(), "fc".into()], architecture);
    two.weights = two.networks.init(3, 0, 1.0);
    two.save(&d.path("v3.npz")).unwrap();
    let bases = ["v1.npz", "v2.npz", "v3.npz"]
        .iter()
        .map(|n| std::fs::read(d.path(n)).unwrap())
        .collect();
    let Ok(Spec::Quadratic(problems)) = Spec::load(&d.path("test.npz"), None) else {
        panic!("no quadratic test spec");
    };
    let problems: QuadraticSet = problems;
    fuzz(
        Reader {
            name: "checkpoint",
            slot: 1,
            extension: "npz",
            bases,
            mutate: mutate_archive,
            exercise: Box::new(move |path| {
                if let Ok(optimizer) = LearnedOptimizer::load(path) {
                    accepted();
                    let choice = OptimizerChoice::Learned {
                        label: "lstm".into(),
                        optimizer: Arc::new(optimizer),
                    };
                    let _ = evaluation::run(&problems, &choice, 2);
                }
            }),
        },
        &d,
    );
}

#[test]
fn trajectory_reader() {
    let d = Dir::new();
    specs_for_fuzzing(&d);
    train(&d, "opt.npz");
    evaluate_briefly(&d, "lstm:opt.npz,sgd,adam", "t.parquet");
    evaluate_tuned(&d, "sgd,adam", "tuned.parquet");
    let bases = ["t.parquet", "tuned.parquet", "tuning.parquet"]
        .iter()
        .map(|n| std::fs::read(d.path(n)).unwrap())
        .collect();
    let figure = d.path("figure.png");
    let draws = AtomicUsize::new(0);
    fuzz(
        Reader {
            name: "trajectory",
            slot: 2,
            extension: "parquet",
            bases,
            mutate: mutate_table,
            exercise: Box::new(move |path| {
                if let Ok(rows) = read_trajectories(path) {
                    accepted();
                    // Drawing is slow; one accepted file in four is drawn, as a panel and
                    // as a sweep cell in turn.
                    let draw = draws.fetch_add(1, Ordering::Relaxed);
                    let font = Path::new(DEFAULT_FONT_PATH);
                    if let Ok(cell) = SweepCell::from_rows(1, 20, &rows) {
                        if draw % 8 == 4 {
                            let _ = draw_sweep(&[cell], (1, 20), &figure, font);
                        }
                    }
                    if let Ok(panel) = Panel::from_rows("case", &rows) {
                        if draw.is_multiple_of(8) {
                            let _ = draw_figure(&[panel], &figure, font);
                        }
                    }
                }
            }),
        },
        &d,
    );
}

/// The quadratic specs of the shared harness, and one written as numpy writes it.
fn specs_for_fuzzing(d: &Dir) {
    specs(d);
    numpy_spec(&d.path("numpy.npz"), 3, 2, "W", 3, false);
}
