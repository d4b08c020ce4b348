//! Every claim the report checks, and where its evidence lies under `out/`.

use super::{ClaimSpec, Expect, Measure};

/// The MNIST recipes' output folders, the default recipe's first.
const MNIST_DIRS: &[&str] = &[
    "mnist",
    "mnist-paper",
    "mnist-nag-imitation",
    "mnist-scale-invariant",
];

fn each_mnist(file: &str) -> Vec<Vec<String>> {
    MNIST_DIRS
        .iter()
        .map(|d| vec![format!("{d}/{file}")])
        .collect()
}

/// Every claim the report checks, in the paper's order.
pub fn specs() -> Vec<ClaimSpec> {
    let paired = |section, claim, target, sources, measure, expect| ClaimSpec {
        section,
        claim,
        target,
        sources,
        measure,
        expect,
        sweep: false,
        against: None,
    };
    let split = |panel: &str, kind: &str| {
        vec![vec![
            format!("{kind}/{panel}.learned.parquet"),
            format!("{kind}/{panel}.baselines.parquet"),
        ]]
    };
    let fig6_cells: Vec<Vec<String>> = MNIST_DIRS
        .iter()
        .map(|d| {
            let mut cells = Vec::new();
            for layers in 1..=3 {
                for units in [5, 10, 20, 40, 80] {
                    cells.push(format!("{d}/fig6/L{layers}_H{units}/trajectories.parquet"));
                }
            }
            cells
        })
        .collect();
    use Expect::*;
    use Measure::*;
    vec![
        paired(
            "§3.1, Figure 4 left",
            "On 10-d quadratics the learned optimizer beats tuned SGD, RMSprop, Adam and NAG",
            "figure4",
            vec![vec!["quadratic/trajectories.parquet".into()]],
            Loss,
            Wins,
        ),
        paired(
            "§3.2, Figure 4 centre",
            "On the MNIST base network (784-20-10, sigmoid) it beats them over the 100 steps it was trained for",
            "figure4",
            each_mnist("base_100.parquet"),
            Loss,
            Wins,
        ),
        paired(
            "§3.2, Figure 4 right",
            "Run for 200 steps, twice its training horizon, it still beats them",
            "figure4",
            each_mnist("base_200.parquet"),
            Loss,
            Wins,
        ),
        paired(
            "§3.2, Figure 5 left",
            "It generalises to 40 hidden units",
            "figure5",
            each_mnist("fig5/h40/trajectories.parquet"),
            Loss,
            Wins,
        ),
        paired(
            "§3.2, Figure 5 centre",
            "It generalises to two hidden layers",
            "figure5",
            each_mnist("fig5/l2/trajectories.parquet"),
            Loss,
            Wins,
        ),
        paired(
            "§3.2, Figure 5 right",
            "It fails on ReLU units (a higher loss than the best baseline)",
            "figure5",
            each_mnist("fig5/relu/trajectories.parquet"),
            Loss,
            Loses,
        ),
        ClaimSpec {
            section: "§3.2, Figure 6",
            claim: "Across layers {1, 2, 3} × units {5, 10, 20, 40, 80} it beats the best tuned baseline in most cells",
            target: "figure6",
            sources: fig6_cells,
            measure: Loss,
            expect: Wins,
            sweep: true,
            against: None,
        },
        paired(
            "Beyond §3.2: Fashion-MNIST, step 100",
            "No claim in the paper; measured: the MNIST optimizers, unchanged, beat the baselines tuned on Fashion-MNIST",
            "fashion-mnist",
            each_mnist("fashion/base_100.parquet"),
            Loss,
            Wins,
        ),
        paired(
            "Beyond §3.2: Fashion-MNIST, step 200",
            "No claim in the paper; measured: the same over 200 steps, against baselines tuned for 200",
            "fashion-mnist",
            each_mnist("fashion/base_200.parquet"),
            Loss,
            Wins,
        ),
        paired(
            "§3.3, Figure 7 left",
            "On CIFAR-10 it beats the tuned baselines",
            "figure7",
            split("cifar10", "cifar"),
            Loss,
            Wins,
        ),
        paired(
            "§3.3, Figure 7 centre",
            "On CIFAR-5 it beats them, and so does LSTM-sub, trained on the other labels",
            "figure7",
            split("cifar5", "cifar"),
            Loss,
            Wins,
        ),
        paired(
            "§3.3, Figure 7 right",
            "On CIFAR-2 the same",
            "figure7",
            split("cifar2", "cifar"),
            Loss,
            Wins,
        ),
        paired(
            "Beyond §3.3: Figure 7's runs, CIFAR-10",
            "Their loss on images the optimizee never trained on is lower too",
            "figure7",
            split("cifar10", "cifar"),
            TestLoss,
            Wins,
        ),
        paired(
            "Beyond §3.3: Figure 7's runs, CIFAR-5",
            "The same on CIFAR-5",
            "figure7",
            split("cifar5", "cifar"),
            TestLoss,
            Wins,
        ),
        paired(
            "Beyond §3.3: Figure 7's runs, CIFAR-2",
            "The same on CIFAR-2",
            "figure7",
            split("cifar2", "cifar"),
            TestLoss,
            Wins,
        ),
        paired(
            "§3.4, Figure 8 (training style, 64 px)",
            "On neural art at the training style and resolution it beats every tuned baseline",
            "figure8",
            split("train64", "neural_art"),
            Loss,
            Wins,
        ),
        paired(
            "§3.4, Figure 8 (new style, 128 px)",
            "With both the style and the resolution changed it still performs very well",
            "figure8",
            split("new128", "neural_art"),
            Loss,
            Wins,
        ),
        paired(
            "§3.4, Figure 8 (training style, 128 px)",
            "At double the resolution with the training style",
            "figure8",
            split("train128", "neural_art"),
            Loss,
            Wins,
        ),
        paired(
            "§3.4, Figure 8 (new style, 64 px)",
            "With a new style at the training resolution",
            "figure8",
            split("new64", "neural_art"),
            Loss,
            Wins,
        ),
    ]
    .into_iter()
    .chain(APPENDIX_D.iter().map(|&(section, file)| {
        paired(
            section,
            APPENDIX_D_QUESTION,
            "appendix-d",
            vec![vec![format!("appendix-d/{file}")]],
            Loss,
            Wins,
        )
    }))
    .chain(APPENDIX_D.iter().map(|&(section, file)| ClaimSpec {
        against: Some("lstm:LSTM"),
        ..paired(
            section,
            APPENDIX_D_AGAINST_LSTM,
            "appendix-d",
            vec![vec![format!("appendix-d/{file}")]],
            Loss,
            Wins,
        )
    }))
    .collect()
}

/// Appendix D's rows against the coordinatewise LSTM of the same training.
const APPENDIX_D_AGAINST_LSTM: &str =
    "No claim in the paper; measured: is it lower than the coordinatewise LSTM?";

/// Appendix D gives no number: its rows ask of each architecture what the paper asks of the
/// LSTM, and say what l2l measured.
const APPENDIX_D_QUESTION: &str =
    "No claim in the paper; measured: does it beat every tuned baseline?";

/// Appendix D's panels and horizons (trained for 100 steps on 10-d quadratics).
const APPENDIX_D: [(&str, &str); 8] = [
    ("App. D, 10-d quadratics, step 100", "quadratic_100.parquet"),
    ("App. D, 10-d quadratics, step 200", "quadratic_200.parquet"),
    ("App. D, 30-d quadratics, step 100", "wide_100.parquet"),
    ("App. D, 30-d quadratics, step 200", "wide_200.parquet"),
    ("App. D, 10-d, W ~ U[0, 1), step 100", "uniform_100.parquet"),
    ("App. D, 10-d, W ~ U[0, 1), step 200", "uniform_200.parquet"),
    ("App. D, MNIST base network, step 100", "mnist_100.parquet"),
    ("App. D, MNIST base network, step 200", "mnist_200.parquet"),
];
