"""The `cnnpipe` command: sample, prepare-folder and info, including their one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnpipe.cli import main


def test_sample_writes_only_the_named_dataset_with_its_manifest(tmp_path, capsys):
    main(
        [
            "sample",
            str(tmp_path / "m"),
            "--only",
            "mnist",
            "--size",
            "mnist.train=50",
            "--size",
            "mnist.test=20",
        ]
    )
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["MD5SUMS", "mnist"]
    assert len((tmp_path / "m" / "MD5SUMS").read_text().splitlines()) == 4
    assert "dvc exp run -S data.mirror=" in capsys.readouterr().out


def test_bad_size_override_is_one_line_error_and_exit_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(tmp_path / "m"), "--size", "mnist.train=lots"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "mnist.train=lots" in err
    assert not (tmp_path / "m").exists()


def test_prepare_folder_and_info(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        for cls in ("octopus", "crab"):
            folder = tmp_path / "sea" / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "prepared" / "sea"
    main(
        [
            "prepare-folder",
            str(tmp_path / "sea"),
            str(out),
            "--image-size",
            "20",
            "24",
            "--valid-fraction",
            "0.5",
        ]
    )
    meta = json.loads((out / "classes.json").read_text())
    assert meta["classes"] == ["crab", "octopus"]
    assert meta["splits"] == {"train": 6, "valid": 6, "test": 4}
    assert np.load(out / "train.images.npy").shape == (6, 3, 20, 24)
    capsys.readouterr()
    main(["info", "--prepared", str(tmp_path / "prepared"), "--stats", str(tmp_path / "none")])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["dataset", "C×H×W"]
    assert table[2].split()[:3] == ["sea", "3×20×24", "6/6/4"]
