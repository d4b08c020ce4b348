//! `l2l-bench`: its help. The benchmark itself runs with `make bench`, never in the tests
//! (speed lives in the benchmark, not in timed tests).

use crate::common::*;

#[test]
fn has_help() {
    assert_help("l2l-bench");
}
