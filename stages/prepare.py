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
    out = Path("data/prepared") / args.dataset
    stage.clean_outputs(out)
    dataset_params = params.get(params.load_params(), f"datasets.{args.dataset}", default={}) or {}
    prepare_dataset(args.dataset, Path("data/raw") / args.dataset, out, dataset_params)


if __name__ == "__main__":
    stage.run(main)
