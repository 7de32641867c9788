"""dvc stage `subset_<name>`: filter a prepared dataset into data/prepared/<name>/.

Reads: subsets.<name>.source and either .classes, or .attribute with .train_size,
.valid_size and .test_size.
"""

import argparse

from cnnpipe import paths, stage
from cnnpipe.config.data import parse_subset
from cnnpipe.config.load import load_params
from cnnpipe.data.subset import subset_by_attribute, subset_by_classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    args = parser.parse_args()
    subset = parse_subset(load_params(), args.name)
    source = paths.prepared_dir(subset.source)
    out = paths.prepared_dir(args.name)
    stage.clean_outputs(out)
    if subset.classes is not None:
        subset_by_classes(source, out, list(subset.classes), param=f"{subset.key}.classes")
    else:
        subset_by_attribute(source, out, subset.attribute, subset.sizes, param=f"{subset.key}.attribute")


if __name__ == "__main__":
    stage.run(main)
