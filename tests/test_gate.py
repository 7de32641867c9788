"""`cnnpipe check-metrics`: committed floors pass on good metrics and fail on a regression."""

import json

import pytest

from cnnpipe.cli import main


def _write(tmp_path, metrics, floors):
    (tmp_path / "metrics").mkdir()
    for model, values in metrics.items():
        (tmp_path / "metrics" / f"{model}.json").write_text(json.dumps(values))
    (tmp_path / "floors.yaml").write_text(floors)


def test_passes_when_every_metric_meets_its_floor(tmp_path, capsys):
    _write(tmp_path, {"mnist_cnn": {"accuracy": 0.91, "loss": 0.3}}, "mnist_cnn: {accuracy: 0.9}\n")
    main(
        [
            "check-metrics",
            "--floors",
            str(tmp_path / "floors.yaml"),
            "--metrics-dir",
            str(tmp_path / "metrics"),
        ]
    )
    assert "| mnist_cnn | accuracy | 0.9100 | 0.9000 | ok |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"mnist_cnn": {"accuracy": 0.5}}, "| mnist_cnn | accuracy | 0.5000 | 0.9000 | **below** |"),
        ({}, "| mnist_cnn | accuracy | missing | 0.9000 | **below** |"),
    ],
)
def test_fails_on_a_drop_or_a_missing_metrics_file(tmp_path, capsys, metrics, expected):
    _write(tmp_path, metrics, "mnist_cnn: {accuracy: 0.9}\n")
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "check-metrics",
                "--floors",
                str(tmp_path / "floors.yaml"),
                "--metrics-dir",
                str(tmp_path / "metrics"),
            ]
        )
    assert exc.value.code == 1
    out, err = capsys.readouterr()
    assert expected in out
    assert err.startswith("error: 1 metric(s) below their floor") and "mnist_cnn.accuracy" in err


def test_malformed_floors_file_is_a_one_line_error(tmp_path, capsys):
    _write(tmp_path, {}, "mnist_cnn: [0.9]\n")
    with pytest.raises(SystemExit):
        main(["check-metrics", "--floors", str(tmp_path / "floors.yaml")])
    assert capsys.readouterr().err.count("\n") == 1
