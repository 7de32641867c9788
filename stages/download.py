"""dvc stage `download@<dataset>`: fetch the upstream files into data/raw/<dataset>/.

Reads: data.mirror. The output directory is replaced only once every file is verified.
"""

import argparse
from pathlib import Path

from cnnpipe import params, stage
from cnnpipe.data.fetch import fetch_dataset
from cnnpipe.fileio import atomic_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    mirror = params.get(params.load_params(), "data.mirror")
    with atomic_dir(Path("data/raw") / args.dataset) as tmp:
        fetch_dataset(args.dataset, tmp, mirror=mirror)


if __name__ == "__main__":
    stage.run(main)
