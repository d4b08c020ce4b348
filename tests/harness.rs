//! The integration tests, one binary: each module runs one binary of the pipeline on tiny
//! inputs (or checks the tree: layers, make targets, instruction-set paths). `cargo test
//! --test harness -- MODULE::` runs one module's tests.

mod common;
mod evaluate;
mod external;
mod isa_paths;
mod l2l_bench;
mod layers;
mod make_targets;
mod meta_train;
mod plot;
mod report;
mod sample_optimizee;
mod streams;
