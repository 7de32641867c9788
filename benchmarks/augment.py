"""Augmentation speed: cnnpipe's batched ops vs kornia.augmentation, side by side, and kornia's fidelity.

For the SPEC pipelines that augment (smile_cnn, horses_cnn_aug, sea_cnn: their ``augment`` lists
and batch sizes read from params.yaml), on random uint8 batches of the prepared image size, on
one device, both sides drawing random parameters per sample:

* cnnpipe: ``build_transform(augment)(batch, generator)``, as the train stage runs it;
* kornia: the same ops as ``kornia.augmentation`` modules, set to torchvision's conventions
  where kornia has the switch (``align_corners=False``, antialiased resize) and ``p=1`` where
  ours has no ``p``; ``random_apply`` / ``random_choice`` pick per sample between whole-batch
  results, as ours do (kornia's containers choose once per batch). Input is converted to
  float first: kornia rejects uint8.

Each op alone (on the float batch of the size it sees in the pipeline) and the whole
pipeline (from uint8) are timed, median of ``--repeats`` calls after two warm-up calls.

Then the checks our tests apply to our own ops (tests/transforms/test_ops.py), applied to the
kornia op that would replace each: fixed parameters equal to
``torchvision.transforms.v2.functional`` (atol 1e-5, crops and flips exactly), identity
parameters giving the identity, random_crop giving exact windows of its input; and whether a
``torch.Generator`` can drive kornia's draws (the train stage draws every augmentation from
``augment_generator(seed, epoch, rank)``, which is what makes a resumed run bit-exact).

Run:  python benchmarks/augment.py [--device cpu|cuda] [--repeats 11] [--json augment.json]
kornia is not a cnnpipe dependency: ``pip install kornia`` to run the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cnnpipe.transforms.containers import as_float_images
from cnnpipe.transforms.spec import build_transform

try:
    import kornia
    import kornia.augmentation as K
except ImportError:  # pragma: no cover - depends on the environment
    kornia = K = None

REPO = Path(__file__).resolve().parents[1]
MODELS = ("smile_cnn", "horses_cnn_aug", "sea_cnn")
CELEBA_HW = (218, 178)  # celeba is kept at its aligned size (no datasets.celeba.image_size)
WITHIN = 1.2  # the rule: kornia replaces an op only within 1.2× of ours and faithful
ATOL = 1e-5  # the tolerance of our torchvision parity tests

Batch = Callable[[Tensor], Tensor]


# ------------------------------------------------------------------ the SPEC pipelines


def stored_hw(params: Mapping[str, Any], dataset: str) -> tuple[int, int]:
    """Height and width of the prepared images of ``dataset`` (a dataset or a subset of one)."""
    source = params.get("subsets", {}).get(dataset, {}).get("source", dataset)
    size = (params.get("datasets", {}).get(source) or {}).get("image_size")
    if size is not None:
        return int(size[0]), int(size[1])
    if source == "celeba":
        return CELEBA_HW
    raise SystemExit(f"no stored image size known for dataset {dataset!r}")


def _entry(entry: Any) -> dict[str, Any]:
    return {"op": entry} if isinstance(entry, str) else dict(entry)


def describe(entry: Any) -> str:
    """``rotation degrees=15``: an op and its arguments on one line (nested ops by name)."""
    e = _entry(entry)
    args = [f"{k}={v}" for k, v in e.items() if k not in ("op", "ops")]
    if "ops" in e:
        args.append("(" + ", ".join(_entry(o)["op"] for o in e["ops"]) + ")")
    return " ".join([e["op"], *args])


def leaves(spec: list, hw: tuple[int, int]) -> list[tuple[Any, tuple[int, int]]]:
    """Every op of ``spec`` with the input size it sees, containers and the ops inside them."""
    out = []
    for i, entry in enumerate(spec):
        here = build_transform(spec[:i], key="k").output_size(hw)
        out.append((entry, here))
        inner = _entry(entry).get("ops")
        if inner:
            for child in inner:
                out.extend(leaves([child], here))
    return out


# ------------------------------------------------------------------ the kornia side


def _size(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _tv_size(v: Any) -> list[int]:
    return list(v) if isinstance(v, list) else [v]


def _per_sample_where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.to(a.device).view(-1, 1, 1, 1), a, b)


def kornia_op(entry: Any) -> Batch:
    """The kornia module (or composition of them) standing for one op entry of params.yaml."""
    e = _entry(entry)
    name = e["op"]
    if name == "hflip":
        return K.RandomHorizontalFlip(p=e.get("p", 0.5))
    if name == "vflip":
        return K.RandomVerticalFlip(p=e.get("p", 0.5))
    if name == "rotation":
        return K.RandomRotation(degrees=e["degrees"], align_corners=False, p=1.0)
    if name == "random_crop":
        return K.RandomCrop(_size(e["size"]))
    if name == "random_resized_crop":
        scale, ratio = e.get("scale", (0.08, 1.0)), e.get("ratio", (3 / 4, 4 / 3))
        return K.RandomResizedCrop(
            _size(e["size"]), scale=tuple(scale), ratio=tuple(ratio), align_corners=False
        )
    if name == "resize":
        size = e["size"] if isinstance(e["size"], int) else _size(e["size"])
        return K.Resize(size, align_corners=False, antialias=e.get("antialias", True))
    if name == "center_crop":
        return K.CenterCrop(_size(e["size"]))
    if name == "color_jitter":
        keys = ("brightness", "contrast", "saturation", "hue")
        return K.ColorJitter(**{k: e[k] for k in keys if k in e}, p=1.0)
    if name == "perspective":
        return K.RandomPerspective(distortion_scale=e.get("distortion", 0.5), p=e.get("p", 0.5))
    if name == "random_apply":
        group, p = kornia_pipeline(e["ops"]), e.get("p", 0.5)
        return lambda x: _per_sample_where(torch.rand(x.shape[0]) < p, group(x), x)
    if name == "random_choice":
        choices = [kornia_op(o) for o in e["ops"]]
        weights = torch.tensor(e.get("p", [1.0] * len(choices)), dtype=torch.float64)

        def choose(x: Tensor) -> Tensor:
            outs = [c(x) for c in choices]
            pick = torch.multinomial(weights, x.shape[0], replacement=True)
            out = outs[0]
            for i, y in enumerate(outs[1:], start=1):
                out = _per_sample_where(pick == i, y, out)
            return out

        return choose
    raise SystemExit(f"no kornia counterpart written for op {name!r}")


def kornia_pipeline(spec: list) -> Batch:
    """The whole list, in order, on a float batch."""
    ops = [kornia_op(entry) for entry in spec]

    def apply(x: Tensor) -> Tensor:
        for op in ops:
            x = op(x)
        return x

    return apply


def kornia_from_uint8(spec: list) -> Batch:
    """What the train stage needs: uint8 in, float32 in [0, 1] out."""
    pipeline = kornia_pipeline(spec)
    return lambda x: pipeline(x.to(torch.float32) / 255.0).clamp(0.0, 1.0)


# ------------------------------------------------------------------ timing


def median_ms(ours: Callable[[], Tensor], theirs: Callable[[], Tensor], repeats: int, device: torch.device):
    """Median wall times of ``ours()`` and ``theirs()`` in milliseconds, after two warm-up calls each.

    The calls alternate, so both sides run under the same load on a shared machine.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        ours(), theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((ours, times[0]), (theirs, times[1])):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3


def time_model(name: str, params: Mapping[str, Any], device: torch.device, repeats: int) -> list[dict]:
    """Rows for each op of ``models.<name>.augment`` and for the whole pipeline."""
    model = params["models"][name]
    spec, batch = list(model["augment"]), int(model["train"]["batch_size"])
    hw = stored_hw(params, model["dataset"])
    gen = torch.Generator().manual_seed(0)
    uint8 = torch.randint(0, 256, (batch, 3, *hw), dtype=torch.uint8, generator=gen).to(device)
    rows = []
    for entry, here in leaves(spec, hw):
        x = torch.rand((batch, 3, *here), generator=gen).to(device)
        ours, theirs = build_transform([entry], key="k"), kornia_op(entry)
        ms = median_ms(lambda x=x, t=ours: t(x, gen), lambda x=x, t=theirs: t(x), repeats, device)
        rows.append({"model": name, "op": describe(entry), "input": [batch, 3, *here], "ms": ms})
    ours, theirs = build_transform(spec, key="k"), kornia_from_uint8(spec)
    ms = median_ms(lambda: ours(uint8, gen), lambda: theirs(uint8), repeats, device)
    rows.append({"model": name, "op": "whole pipeline, from uint8", "input": [batch, 3, *hw], "ms": ms})
    for row in rows:
        row["ours_ms"], row["kornia_ms"] = row.pop("ms")
        row["ratio"] = row["kornia_ms"] / row["ours_ms"]
    return rows


# ------------------------------------------------------------------ fidelity


def _images(n: int = 4, c: int = 3, h: int = 21, w: int = 17) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return as_float_images(torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen))


def _smooth_images(n: int = 2, h: int = 24, w: int = 20) -> Tensor:
    """As in the tests: float RGB images with no exact symmetries."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx * yy, (xx**2 + 0.3 * yy) / 1.3, (1 - yy) * (0.2 + 0.8 * xx)])
    return base.expand(n, 3, h, w).clone()


def _diff(a: Tensor, b: Tensor) -> float:
    return float("inf") if a.shape != b.shape else (a - b).abs().max().item()


def _compare(pairs: Callable[[], list[tuple[Tensor, Tensor]]], exact: bool = False) -> tuple[bool, str]:
    try:
        diffs = [_diff(a, b) for a, b in pairs()]
    except Exception as err:  # kornia refusing a case the test demands is a failed check
        return False, f"raises {type(err).__name__}: {str(err).splitlines()[0][:70]}"
    worst = max(diffs)
    ok = worst == 0.0 if exact else worst <= ATOL
    return ok, "shape differs" if worst == float("inf") else f"max |Δ| {worst:.2g}"


def _crop_windows() -> list[tuple[Tensor, Tensor]]:
    x = _images(n=6, h=15, w=12)
    out = K.RandomCrop((9, 7))(x)
    hits = [
        any(torch.equal(out[i], x[i, :, t : t + 9, s : s + 7]) for t in range(7) for s in range(6))
        for i in range(6)
    ]
    return [(torch.tensor(float(all(hits))), torch.tensor(1.0))]


def fidelity_checks() -> list[dict]:
    """The parity checks of tests/transforms/test_ops.py, applied to the kornia ops."""
    x, smooth = _images(), _smooth_images()
    tall = _images(h=37, w=29)
    resize_sizes, crop_sizes = (
        [16, 40, [20, 13], [50, 60], [21, 17]],
        [[20, 13], 15, [40, 40], [38, 10], [21, 17]],
    )
    jitter = [("brightness", 1.3, TF.adjust_brightness), ("contrast", 0.6, TF.adjust_contrast),
              ("saturation", 1.7, TF.adjust_saturation), ("hue", 0.2, TF.adjust_hue),
              ("hue", -0.45, TF.adjust_hue)]  # fmt: skip
    bilinear = InterpolationMode.BILINEAR
    checks = [
        ("hflip", "p=1 equals torch.flip", True,
         lambda: [(K.RandomHorizontalFlip(p=1.0)(x), x.flip(-1))]),
        ("vflip", "p=1 equals torch.flip", True,
         lambda: [(K.RandomVerticalFlip(p=1.0)(x), x.flip(-2))]),
        ("random_crop", "outputs are exact windows of the input", True, _crop_windows),
        ("resize", "equals TF.resize (antialias) at 5 sizes", False,
         lambda: [(kornia_op({"op": "resize", "size": s})(tall),
                   TF.resize(tall, _tv_size(s), antialias=True)) for s in resize_sizes]),
        ("center_crop", "equals TF.center_crop at 5 sizes", True,
         lambda: [(K.CenterCrop(_size(s))(tall), TF.center_crop(tall, _tv_size(s)))
                  for s in crop_sizes]),
        ("rotation", "30° equals TF.rotate (bilinear); 0° is the identity", False,
         lambda: [(kornia_op({"op": "rotation", "degrees": [30, 30]})(smooth),
                   TF.rotate(smooth, 30.0, interpolation=bilinear)),
                  (kornia_op({"op": "rotation", "degrees": 0})(x), x)]),
        ("random_resized_crop", "scale [1, 1] at the image's ratio is the identity", False,
         lambda: [(kornia_op({"op": "random_resized_crop", "size": [21, 17], "scale": [1, 1],
                              "ratio": [17 / 21, 17 / 21]})(x), x)]),
        ("color_jitter", "fixed factors equal TF.adjust_* (5 cases)", False,
         lambda: [(kornia_op({"op": "color_jitter", arg: [v, v]})(x), ref(x, v)) for arg, v, ref in jitter]),
        ("perspective", "distortion 0 is the identity", False,
         lambda: [(kornia_op({"op": "perspective", "distortion": 0, "p": 1})(x), x)]),
    ]  # fmt: skip
    rows = []
    for op, what, exact, pairs in checks:
        ok, detail = _compare(pairs, exact)
        rows.append({"op": op, "check": what, "ok": ok, "detail": detail})
    return rows


def generator_support() -> dict:
    """Can a torch.Generator drive kornia's draws, and does the global seed reproduce a batch?"""
    try:
        K.RandomRotation(15, generator=torch.Generator())
        takes = "accepted"
    except TypeError as err:
        takes = f"no: {err}"
    x = _images(n=8, h=32, w=32)
    pipeline = kornia_pipeline([{"op": "rotation", "degrees": 15}, {"op": "hflip"}])
    torch.manual_seed(0)
    a = pipeline(x)
    torch.manual_seed(0)
    b = pipeline(x)
    return {"generator": takes, "global_seed_reproduces": bool(torch.equal(a, b))}


# ------------------------------------------------------------------ report


def decide(rows: list[dict], checks: list[dict], generator: dict) -> dict[str, str]:
    """The issue's rule per op: kornia only where within 1.2× of ours, faithful, and seedable per stream."""
    faithful = {c["op"]: c["ok"] for c in checks}
    seedable = generator["generator"] == "accepted"
    decisions = {}
    for op in sorted({r["op"].split()[0] for r in rows if not r["op"].startswith("whole")}):
        worst = max(r["ratio"] for r in rows if r["op"].split()[0] == op)
        reasons = []
        if worst > WITHIN:
            reasons.append(f"kornia up to {worst:.2f}× our time")
        if op in faithful and not faithful[op]:
            reasons.append("fails the torchvision parity check")
        if not seedable:
            reasons.append("no torch.Generator")
        decisions[op] = "kornia" if not reasons else "ours: " + "; ".join(reasons)
    return decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--repeats", type=int, default=11, help="timed calls per op and side; the median is kept"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if K is None:
        raise SystemExit("this comparison needs kornia, which cnnpipe does not depend on: pip install kornia")
    device = torch.device(args.device)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = [row for name in MODELS for row in time_model(name, params, device, args.repeats)]
    checks, generator = fidelity_checks(), generator_support()
    decisions = decide(rows, checks, generator)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}, "
        f"torch {torch.__version__}, kornia {kornia.__version__}, median of {args.repeats}"
    )
    if load_before is not None:
        print(f"1-minute load average: {load_before:.2f} before, {load_after:.2f} after")
    print(f"{'model':<15} {'op':<58} {'input':<16} {'ours ms':>8} {'kornia ms':>10} {'kornia/ours':>12}")
    for r in rows:
        shape = "×".join(map(str, r["input"]))
        print(
            f"{r['model']:<15} {r['op'][:58]:<58} {shape:<16} {r['ours_ms']:8.2f} {r['kornia_ms']:10.2f} "
            f"{r['ratio']:11.2f}×"
        )
    print("\nkornia vs the torchvision parity our tests demand of our ops:")
    for c in checks:
        print(f"  {c['op']:<20} {'ok  ' if c['ok'] else 'FAIL'} {c['check']} ({c['detail']})")
    print(f"\ntorch.Generator: {generator['generator']}")
    print(f"same global seed, same batch: {generator['global_seed_reproduces']}")
    print("\ndecision per op:")
    for op, verdict in decisions.items():
        print(f"  {op:<20} {verdict}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": platform.machine(), "threads": torch.get_num_threads(), "device": str(device),
            "torch": torch.__version__, "kornia": kornia.__version__, "repeats": args.repeats,
            "load_average": [load_before, load_after], "rows": rows, "checks": checks,
            "generator": generator, "decisions": decisions,
        }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
