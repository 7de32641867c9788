"""dvc stage `download@<dataset>`: fetch the upstream files into data/raw/<dataset>/.

Reads: data.mirror, and for a set with no public download (`download_sea`) datasets.<dataset>.path.
The output directory is replaced only once every file is verified.
"""

import argparse

from cnnpipe import paths, stage
from cnnpipe.config.data import parse_data, parse_dataset
from cnnpipe.config.load import load_params
from cnnpipe.data.fetch import fetch_dataset, fetch_local_set
from cnnpipe.data.sources import LOCAL_SETS
from cnnpipe.fileio import atomic_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    values = load_params()
    data = parse_data(values, read=("mirror",))
    out = paths.raw_dir(args.dataset)
    stage.clean_outputs(out)
    with atomic_dir(out) as tmp:
        if args.dataset in LOCAL_SETS:
            path = parse_dataset(values, args.dataset, read=("path",)).need("path")
            fetch_local_set(args.dataset, path, tmp, out, mirror=data.mirror)
        else:
            fetch_dataset(args.dataset, tmp, mirror=data.mirror)


if __name__ == "__main__":
    stage.run(main)
