"""dvc stage `prepare*@<dataset>`: decode data/raw/<dataset>/ into data/prepared/<dataset>/.

Reads: datasets.<dataset>.* (valid_first, or image_size / valid_fraction / split_seed).
"""

import argparse
from pathlib import Path

from cnnpipe import params, stage
from cnnpipe.data.prepare import prepare_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    dataset_params = params.get(params.load_params(), f"datasets.{args.dataset}", default={}) or {}
    prepare_dataset(
        args.dataset, Path("data/raw") / args.dataset, Path("data/prepared") / args.dataset, dataset_params
    )


if __name__ == "__main__":
    stage.run(main)
