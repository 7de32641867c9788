"""dvc stage `download@<dataset>`: fetch the upstream files into data/raw/<dataset>/.

Reads: data.mirror, and for a set with no public download (`download_sea`) datasets.<dataset>.path.
The output directory is replaced only once every file is verified.
"""

import argparse
from pathlib import Path

from cnnpipe import stage
from cnnpipe.config import load as params
from cnnpipe.data.fetch import fetch_dataset, fetch_local_set
from cnnpipe.data.sources import LOCAL_SETS
from cnnpipe.fileio import atomic_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    all_params = params.load_params()
    mirror = params.get(all_params, "data.mirror")
    out = Path("data/raw") / args.dataset
    stage.clean_outputs(out)
    with atomic_dir(out) as tmp:
        if args.dataset in LOCAL_SETS:
            path = params.get(all_params, f"datasets.{args.dataset}.path")
            fetch_local_set(args.dataset, path, tmp, out, mirror=mirror)
        else:
            fetch_dataset(args.dataset, tmp, mirror=mirror)


if __name__ == "__main__":
    stage.run(main)
