"""dvc stage `subset_<name>`: filter a prepared dataset into data/prepared/<name>/.

Reads: subsets.<name>.source and either .classes, or .attribute with .train_size,
.valid_size and .test_size.
"""

import argparse
from pathlib import Path

from cnnpipe import stage
from cnnpipe.config import load as params
from cnnpipe.data.subset import subset_by_attribute, subset_by_classes
from cnnpipe.errors import ParamError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    args = parser.parse_args()
    key = f"subsets.{args.name}"
    spec = params.get(params.load_params(), key)
    source = Path("data/prepared") / params.get(spec, "source")
    out = Path("data/prepared") / args.name
    stage.clean_outputs(out)
    if "classes" in spec:
        subset_by_classes(source, out, spec["classes"], param=f"{key}.classes")
    elif "attribute" in spec:
        sizes = {split: spec.get(f"{split}_size") for split in ("train", "valid", "test")}
        subset_by_attribute(source, out, spec["attribute"], sizes, param=f"{key}.attribute")
    else:
        raise ParamError(f"params.yaml: {key} needs either 'classes' or 'attribute'")


if __name__ == "__main__":
    stage.run(main)
