"""dvc stage `evaluate@<model>`: test-split metrics, DVC plot data and figures of a trained model.

Reads: models.<model>.dataset, evaluate.batch_size, evaluate.grid_images, evaluate.worst_images,
run.device. Writes metrics/<model>.json (numbers only), metrics/<model>.info.json,
plots/<model>/{predictions,roc,per_class}.csv and plots/<model>/figures/*.png (see cnnpipe.evaluate).
"""

import argparse

from cnnpipe import paths, stage
from cnnpipe.config.evaluate import parse_evaluate
from cnnpipe.config.load import load_params
from cnnpipe.config.run import parse_device
from cnnpipe.config.train import parse_dataset_name
from cnnpipe.evaluate.stage import evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    args = parser.parse_args()
    plots = paths.plots_dir(args.model)
    stage.clean_outputs(
        paths.metrics_file(args.model),
        paths.info_file(args.model),
        *(plots / name for name in paths.EVAL_PLOT_FILES),
        paths.figures_dir(args.model),
    )
    values = load_params()
    evaluate_model(
        args.model,
        parse_evaluate(values),
        dataset=parse_dataset_name(values, args.model),
        device=parse_device(values),
    )


if __name__ == "__main__":
    stage.run(main)
