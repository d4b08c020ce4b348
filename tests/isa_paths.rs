//! `make isa-check`'s comparison: the trajectories that builds for different instruction sets
//! wrote (L2L_ISA_TRAJECTORIES, space-separated, the portable build's first, then the builds
//! with FMA) agree with the portable one to a tolerance, and the FMA builds (AVX2, AVX-512) with
//! each other bit for bit: every kernel sums in one order whatever the vector width
//! (docs/performance.md, "Deterministic products"). Without the variable (`make test`) there is
//! nothing to compare and it passes.

use l2l::trajectory::read_trajectories;

#[test]
fn every_instruction_set_gives_the_portable_curves() {
    let Ok(files) = std::env::var("L2L_ISA_TRAJECTORIES") else {
        eprintln!("isa_paths: L2L_ISA_TRAJECTORIES is not set (make isa-check sets it); skipped");
        return;
    };
    let files: Vec<&str> = files.split_whitespace().collect();
    let reference = read_trajectories(std::path::Path::new(files[0])).unwrap();
    for f in &files[1..] {
        let rows = read_trajectories(std::path::Path::new(f)).unwrap();
        assert_eq!(rows.len(), reference.len(), "{f}: another number of rows");
        let (mut identical, mut worst) = (true, 0.0f64);
        for (r, p) in rows.iter().zip(&reference) {
            assert_eq!(
                (&r.optimizer, r.problem, r.step),
                (&p.optimizer, p.problem, p.step)
            );
            identical &= r.loss.to_bits() == p.loss.to_bits();
            let rel = (r.loss - p.loss).abs() / p.loss.abs().max(1e-6);
            worst = worst.max(rel);
        }
        eprintln!(
            "isa_paths: {f} against {}: {}, largest relative difference {worst:.2e}",
            files[0],
            if identical {
                "identical"
            } else {
                "not identical"
            }
        );
        // Different roundings (FMA or not) grow along 100 steps of a trained LSTM; 1e-3 of
        // the loss is far below any difference the figures show.
        assert!(worst < 1e-3, "{f} differs from {} by {worst:.2e}", files[0]);
    }
    if files.len() > 2 {
        let fused = read_trajectories(std::path::Path::new(files[1])).unwrap();
        for f in &files[2..] {
            let rows = read_trajectories(std::path::Path::new(f)).unwrap();
            let same = rows.len() == fused.len()
                && rows.iter().zip(&fused).all(|(r, p)| {
                    (&r.optimizer, r.problem, r.step, r.loss.to_bits())
                        == (&p.optimizer, p.problem, p.step, p.loss.to_bits())
                });
            assert!(same, "{f} is not bit for bit {}", files[1]);
        }
    }
}
