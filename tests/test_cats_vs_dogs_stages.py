"""Dogs vs Cats end to end on the sample mirror: download → prepare → stats → train → evaluate.

`dvc repro evaluate@inception_cats_dogs` in a fresh copy of this repository, with data.mirror
pointing at a sample mirror of cats_vs_dogs alone (its zip holds an empty, a truncated and a
random-bytes JPEG and Thumbs.db files, as upstream does) and inception_cats_dogs shrunk to run
in seconds: random init, one epoch, 75×75 input without the auxiliary head. The broken files
must be skipped and listed, and the metrics written.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from cnnpipe.data.sources import CATS_DOGS_ZIP
from cnnpipe.sample.mirror import write_sample_mirror
from tests.helpers.worktree import clone_env, commit_copy, copy_worktree, run

BROKEN = ["PetImages/Cat/8.jpg", "PetImages/Dog/8.jpg", "PetImages/Dog/9.jpg"]  # 8 photos per class


def test_cats_vs_dogs_runs_end_to_end_on_the_sample_mirror(tmp_path):
    mirror = write_sample_mirror(
        tmp_path / "mirror",
        sizes={"cats_vs_dogs": {"train": 16}},
        datasets=["cats_vs_dogs"],
        log=lambda _: None,
    )
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_worktree(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["mirror"] = str(mirror)
    params["datasets"]["cats_vs_dogs"].update(valid_fraction=0.25, test_fraction=0.25)
    model = params["models"]["inception_cats_dogs"]
    model["arch"].update(weights="none", aux_logits=False, input=[3, 75, 75])
    model["augment"] = [{"op": "random_resized_crop", "size": [75, 75]}]
    model["eval_transform"] = [{"op": "resize", "size": [75, 75]}]
    model["train"].update(epochs=1, batch_size=4)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = clone_env(repo)
    commit_copy(repo, env)

    output = run(["dvc", "repro", "evaluate@inception_cats_dogs"], repo, env)
    for stage in ("download@cats_vs_dogs", "prepare_classfolders@cats_vs_dogs", "stats@cats_vs_dogs",
                  "train@inception_cats_dogs", "evaluate@inception_cats_dogs"):  # fmt: skip
        assert f"Running stage '{stage}'" in output, stage
    prepared = repo / "data/prepared/cats_vs_dogs"
    assert (
        f"cats_vs_dogs: skipped 3 unreadable images (listed in {Path('data/prepared/cats_vs_dogs')}" in output
    )
    skipped = json.loads((prepared / "skipped.json").read_text())
    assert sorted(s["path"] for s in skipped) == BROKEN
    assert all(s["source"] == CATS_DOGS_ZIP and s["error"] for s in skipped)
    meta = json.loads((prepared / "classes.json").read_text())
    assert meta["classes"] == ["Cat", "Dog"] and meta["image_shape"] == [3, 300, 300]
    assert sum(meta["splits"].values()) == 16 and min(meta["splits"].values()) > 0
    stats = json.loads((repo / "data/stats/cats_vs_dogs.json").read_text())
    assert stats["count"] == meta["splits"]["train"]

    metrics = json.loads((repo / "metrics/inception_cats_dogs.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["train"].keys() == {"loss", "acc"}
    info = json.loads((repo / "metrics/inception_cats_dogs.info.json").read_text())
    assert info["n_test"] == meta["splits"]["test"] and info["backbone_weights"] == "none (random init)"
    assert (repo / "plots/inception_cats_dogs/figures/confusion_matrix.png").is_file()
