"""dvc stage `evaluate@<model>`: test-split metrics, DVC plot data and figures of a trained model.

Reads: models.<model>.dataset, evaluate.batch_size, evaluate.grid_images, evaluate.worst_images,
run.device. Writes metrics/<model>.json (numbers only), metrics/<model>.info.json,
plots/<model>/{predictions,roc,per_class}.csv and plots/<model>/figures/*.png (see cnnpipe.evaluate).
"""

import argparse
from pathlib import Path

from cnnpipe import stage
from cnnpipe.config import load as params
from cnnpipe.evaluate.stage import evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    args = parser.parse_args()
    metrics, plots = Path("metrics"), Path("plots") / args.model
    stage.clean_outputs(
        metrics / f"{args.model}.json",
        metrics / f"{args.model}.info.json",
        *(plots / f"{name}.csv" for name in ("predictions", "roc", "per_class")),
        plots / "figures",
    )
    evaluate_model(args.model, params.load_params())


if __name__ == "__main__":
    stage.run(main)
