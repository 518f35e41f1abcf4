"""Training throughput: images/s and peak memory of one Mask2Former config, ours and `transformers`' side by side,
and per backbone (Swin vs EfficientViT) in the same run.

    python benchmarks/train_throughput.py [--quick] [--spec SPEC.yaml] [--resolution 512] [--batch-size 2]
        [--steps 10] [--warmup 3] [--device auto|cpu|cuda] [--require-cuda]
        [--precision fp32 --precision bf16 ...] [--threads N] [--repeats N] [--impl ours --impl transformers]
        [--backbone swin --backbone efficientvit] [--efficientvit-name l1]
        [--out benchmarks/results/train_throughput.json]

The config is the model section of `--spec` (a TAO-style spec; default: the train template, i.e.
Swin-T, 100 queries, 200 classes). `transformers`' `Mask2FormerForUniversalSegmentation` is built with
the equivalent settings (its decoder gets one extra layer because it builds `decoder_layers - 1`;
its pixel-decoder encoder uses the decoder's head count). `--quick` is the tiny model at 64 px for CI.

Each implementation runs in its own process (`--repeats` fresh processes each, interleaved, the fastest
reported, all step times kept in the JSON), so peak memory is its own: on CUDA the peak allocated by
torch during the timed steps; on CPU the growth of the process's peak resident set over its
post-import baseline (ru_maxrss). A training step is forward, loss, backward, full-model gradient
clipping and an AdamW step on a synthetic batch (random images, 5 random rectangle segments per image);
the time of each phase is reported too (for `transformers`, whose loss runs inside its forward, the
forward share is a label-free forward timed separately and excluded from the step time). Each
`--precision` given (default fp32) is measured for each implementation, and the table gives, per
precision, ours / transformers as ratios of images/s and of peak memory from the same run. Prints a rich
table and writes JSON. `--require-cuda` fails instead of quietly measuring the CPU (benchmarks/gpu_check.sh).

`--backbone` (repeatable; default: the spec's own) sets `model.backbone.type`; `efficientvit` uses the size
`--efficientvit-name` (default l1, the EfficientViT-L1 of the comparison in the README), the rest of the
model section unchanged. `transformers` has no EfficientViT Mask2Former, so EfficientViT runs ours only;
with both backbones the report adds, per precision, efficientvit / swin ratios of our images/s and peak
memory from the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SEGMENTS_PER_IMAGE = 5


def _spec(args: argparse.Namespace, backbone: str | None = None) -> dict[str, Any]:
    """The spec measured; `backbone` (from --backbone) replaces the spec's model.backbone.type when given."""
    from skillkit.spec import load_spec

    overrides: list[str] = []
    if args.quick:
        from mask2former.model.tiny import tiny_spec_overrides

        overrides += [f"{k}={json.dumps(v)}" for k, v in tiny_spec_overrides(num_classes=8).items()]
    overrides += list(args.override or [])
    if backbone:
        overrides.append(f"model.backbone.type={backbone}")
    if backbone == "efficientvit":
        overrides.append(f"model.backbone.efficientvit.name={args.efficientvit_name}")
    return load_spec(args.spec, action="train", overrides=overrides, check_classes=False)


def _backbone_label(spec: dict[str, Any]) -> str:
    backbone = spec["model"]["backbone"]
    if backbone["type"] == "efficientvit":
        return f"efficientvit-{backbone['efficientvit']['name']}"
    return f"swin-{backbone['swin']['type']}"


def _batch(batch_size: int, resolution: int, num_classes: int, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, resolution, resolution, generator=generator)
    targets = []
    for _ in range(batch_size):
        masks = torch.zeros(SEGMENTS_PER_IMAGE, resolution, resolution, dtype=torch.bool)
        for k in range(SEGMENTS_PER_IMAGE):
            y0, x0 = torch.randint(0, resolution // 2, (2,), generator=generator).tolist()
            h, w = torch.randint(resolution // 8, resolution // 2, (2,), generator=generator).tolist()
            masks[k, y0:y0 + h, x0:x0 + w] = True
        labels = torch.randint(0, num_classes, (SEGMENTS_PER_IMAGE,), generator=generator)
        targets.append({"labels": labels, "masks": masks})
    return images, targets


def _hf_model(constructor_args: dict[str, Any], resolution: int):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    swin, pixel = constructor_args["backbone"]["swin"], constructor_args["pixel_decoder"]
    pred, crit = constructor_args["predictor"], constructor_args["criterion"]
    backbone = SwinConfig(
        image_size=resolution, patch_size=swin["patch_size"], embed_dim=swin["embed_dim"], depths=swin["depths"],
        num_heads=swin["num_heads"], window_size=swin["window_size"], mlp_ratio=swin["mlp_ratio"],
        qkv_bias=swin["qkv_bias"], drop_path_rate=swin["drop_path_rate"], use_absolute_embeddings=swin["ape"],
        out_features=[f"stage{i + 1}" for i in swin["out_indices"]],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone, feature_size=pixel["conv_dim"], mask_feature_size=pixel["mask_dim"],
        hidden_dim=pred["hidden_dim"], encoder_feedforward_dim=pixel["transformer_dim_feedforward"],
        encoder_layers=pixel["transformer_enc_layers"], decoder_layers=pred["dec_layers"] + 1,
        num_attention_heads=pred["nheads"], dropout=pred["dropout"], dim_feedforward=pred["dim_feedforward"],
        pre_norm=pred["pre_norm"], common_stride=pixel["common_stride"], num_queries=pred["num_queries"],
        num_labels=pred["num_classes"], no_object_weight=crit["no_object_weight"], class_weight=crit["class_weight"],
        mask_weight=crit["mask_weight"], dice_weight=crit["dice_weight"], train_num_points=crit["num_points"],
        oversample_ratio=crit["oversample_ratio"], importance_sample_ratio=crit["importance_sample_ratio"],
        use_auxiliary_loss=crit["deep_supervision"],
    )
    return Mask2FormerForUniversalSegmentation(config)


def _measure(impl: str, spec: dict[str, Any], options: dict[str, Any], queue: Any) -> None:
    """Child process: build `impl`, run warm-up + timed steps, put the result dict on `queue`."""
    try:
        queue.put(_measure_inner(impl, spec, options))
    except Exception as error:  # noqa: BLE001 - reported as a row, the other implementation still runs
        queue.put({"impl": impl, "error": f"{type(error).__name__}: {error}"})


def _measure_inner(impl: str, spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    import torch

    from mask2former.config import config_from_dict
    from mask2former.model.build import build_criterion, build_model, model_constructor_args
    from mask2former.training.optim import build_adamw

    torch.manual_seed(0)
    if options["threads"]:
        torch.set_num_threads(options["threads"])
    device = torch.device(options["device"])
    cfg = config_from_dict(spec)
    constructor_args = model_constructor_args(cfg)
    num_classes = constructor_args["predictor"]["num_classes"]
    resolution, batch_size = options["resolution"], options["batch_size"]
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if impl == "ours":
        model = build_model(cfg, load_pretrained=False).to(device)
        criterion = build_criterion(cfg).to(device)
    else:
        model = _hf_model(constructor_args, resolution).to(device)
        criterion = None
    model.train()
    optimizer = build_adamw(model, lr=1e-4, weight_decay=0.05, backbone_multiplier=0.1, momentum=0.9)
    images, targets = _batch(batch_size, resolution, num_classes)
    images = images.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[options["precision"]]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(phases: dict[str, float]) -> float:
        """One training step; adds forward / loss / backward / optimizer seconds to `phases`."""
        t0 = sync()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if impl == "ours":
                outputs = model(images)
                t1 = sync()
                loss = sum(criterion(outputs, targets).values())
            else:
                # transformers computes the loss inside forward when labels are given; its forward alone
                # (no labels) is timed first so the loss share can be told apart.
                del model(pixel_values=images).class_queries_logits  # graph freed right away
                t_plain = sync() - t0
                t0 = sync()
                outputs = model(pixel_values=images, mask_labels=[t["masks"].float() for t in targets],
                                class_labels=[t["labels"] for t in targets])
                loss = outputs.loss
                t1 = t0 + t_plain
        t2 = sync()
        scaler.scale(loss).backward()
        t3 = sync()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        t4 = sync()
        for name, value in (("forward", t1 - t0), ("loss", t2 - t1), ("backward", t3 - t2), ("optimizer", t4 - t3)):
            phases[name] = phases.get(name, 0.0) + value
        return float(loss.detach())

    for _ in range(options["warmup"]):
        step({})
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    phases: dict[str, float] = {}
    losses = [step(phases) for _ in range(options["steps"])]
    elapsed = sum(phases.values())
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
        memory_kind = "CUDA peak allocated"
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024
        memory_kind = "peak RSS growth"
    return {
        "impl": impl,
        "params_millions": sum(p.numel() for p in model.parameters()) / 1e6,
        "images_per_second": batch_size * options["steps"] / elapsed,
        "step_ms": 1000 * elapsed / options["steps"],
        "peak_memory_mib": peak_mib,
        "memory_kind": memory_kind,
        "final_loss": losses[-1],
        "phase_ms": {name: 1000 * value / options["steps"] for name, value in phases.items()},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    backbones: list[str | None] = list(dict.fromkeys(args.backbone or [None]))
    specs = {backbone: _spec(args, backbone) for backbone in backbones}
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.require_cuda and (device != "cuda" or not torch.cuda.is_available()):
        raise SystemExit("--require-cuda: no CUDA device is available to this process (torch.cuda.is_available() "
                         "is False); nothing was measured.")
    precisions = list(dict.fromkeys(args.precision or ["fp32"]))
    options = {
        "device": device,
        "precisions": precisions,
        "resolution": args.resolution or (64 if args.quick else 512),
        "batch_size": args.batch_size,
        "steps": args.steps or (2 if args.quick else 10),
        "warmup": args.warmup if args.warmup is not None else (1 if args.quick else 3),
        "threads": args.threads,
        "repeats": max(1, args.repeats),
    }
    context = mp.get_context("spawn")
    impls = args.impl or ["ours", "transformers"]
    # transformers builds Mask2Former with Swin only: EfficientViT is measured for ours alone.
    cases = [(backbone, impl, precision) for precision in precisions for backbone in backbones for impl in impls
             if specs[backbone]["model"]["backbone"]["type"] == "swin" or impl == "ours"]
    if not cases:
        raise SystemExit("--backbone efficientvit with --impl transformers only: transformers has no EfficientViT "
                         "Mask2Former, so there is nothing to measure; add --impl ours.")
    runs: dict[tuple[str | None, str, str], list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(max(1, args.repeats)):
        for backbone, impl, precision in cases:  # interleaved, so a load change on a shared machine hits all alike
            queue = context.Queue()
            process = context.Process(target=_measure,
                                      args=(impl, specs[backbone], {**options, "precision": precision}, queue))
            process.start()
            runs[(backbone, impl, precision)].append(
                {**queue.get(), "precision": precision, "backbone": _backbone_label(specs[backbone])})
            process.join()
    rows = []
    for case in cases:
        good = [r for r in runs[case] if "error" not in r]
        if not good:
            rows.append(runs[case][0])
            continue
        best = dict(min(good, key=lambda r: r["step_ms"]))  # best of the repeats: least disturbed
        best["step_ms_all_repeats"] = [r["step_ms"] for r in good]
        rows.append(best)
    report = {
        "benchmark": "train_throughput",
        "options": options,
        "model": {k: specs[backbones[0]]["model"][k] for k in ("backbone", "sem_seg_head", "mask_former")},
        "backbones": [_backbone_label(specs[b]) for b in backbones],
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
                    "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor()},
        "results": rows,
        "ratios": _ratios(rows),
        "backbone_ratios": _backbone_ratios(rows),
    }
    return report


def _ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per precision: ours / transformers for images/s and peak memory (both measured in this run)."""
    ratios = []
    for precision in dict.fromkeys(row["precision"] for row in rows):
        by_impl = {row["impl"]: row for row in rows
                   if row["precision"] == precision and "error" not in row and row["backbone"].startswith("swin")}
        if {"ours", "transformers"} <= set(by_impl):
            ours, theirs = by_impl["ours"], by_impl["transformers"]
            ratios.append({
                "precision": precision,
                "images_per_second_ours_over_transformers": ours["images_per_second"] / theirs["images_per_second"],
                "peak_memory_ours_over_transformers": (ours["peak_memory_mib"] / theirs["peak_memory_mib"]
                                                       if theirs["peak_memory_mib"] > 0 else None),
            })
    return ratios


def _backbone_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per precision: our EfficientViT / our Swin for images/s and peak memory (both measured in this run)."""
    ratios = []
    for precision in dict.fromkeys(row["precision"] for row in rows):
        ours = {row["backbone"].split("-")[0]: row for row in rows
                if row["precision"] == precision and row["impl"] == "ours" and "error" not in row}
        if {"swin", "efficientvit"} <= set(ours):
            evit, swin = ours["efficientvit"], ours["swin"]
            ratios.append({
                "precision": precision,
                "backbones": f"{evit['backbone']} / {swin['backbone']}",
                "images_per_second_efficientvit_over_swin": evit["images_per_second"] / swin["images_per_second"],
                "peak_memory_efficientvit_over_swin": (evit["peak_memory_mib"] / swin["peak_memory_mib"]
                                                       if swin["peak_memory_mib"] > 0 else None),
            })
    return ratios


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    options = report["options"]
    table = Table(title=f"Mask2Former training throughput ({options['device']}, "
                        f"{options['resolution']} px, batch {options['batch_size']}, {options['steps']} timed steps)")
    for column in ("backbone", "impl", "precision", "params M", "images/s", "step ms", "fwd / loss / bwd / opt ms", "peak MiB",
                   "memory measured as"):
        table.add_column(column, justify="left" if column in ("backbone", "impl", "precision", "memory measured as") else "right",
                         no_wrap=True)
    for row in report["results"]:
        if "error" in row:
            table.add_row(row["backbone"], row["impl"], row["precision"], "-", "-", "-", "-", "-",
                          f"failed: {row['error'][:60]}")
            continue
        phases = " / ".join(f"{row['phase_ms'][k]:.0f}" for k in ("forward", "loss", "backward", "optimizer"))
        table.add_row(row["backbone"], row["impl"], row["precision"], f"{row['params_millions']:.2f}", f"{row['images_per_second']:.2f}",
                      f"{row['step_ms']:.0f}", phases, f"{row['peak_memory_mib']:.0f}", row["memory_kind"])
    console = Console()
    if not console.is_terminal:  # logs and CI: wide enough for every column
        console = Console(width=150)
    console.print(table)
    for ratio in report.get("ratios", []):
        memory = ratio["peak_memory_ours_over_transformers"]
        console.print(f"{ratio['precision']}: ours / transformers = "
                      f"{ratio['images_per_second_ours_over_transformers']:.2f}x images/s, "
                      + (f"{memory:.2f}x peak memory" if memory is not None else "peak memory not comparable"))
    for ratio in report.get("backbone_ratios", []):
        memory = ratio["peak_memory_efficientvit_over_swin"]
        console.print(f"{ratio['precision']}: ours, {ratio['backbones']} = "
                      f"{ratio['images_per_second_efficientvit_over_swin']:.2f}x images/s, "
                      + (f"{memory:.2f}x peak memory" if memory is not None else "peak memory not comparable"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 64 px, 2 timed steps (CI)")
    parser.add_argument("--spec", help="TAO-style train spec whose model section is benchmarked")
    parser.add_argument("--override", action="append", metavar="KEY=VALUE", help="dotted spec override (repeatable)")
    parser.add_argument("--resolution", type=int, help="square input size in pixels (default 512; 64 with --quick)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, help="timed steps (default 10; 2 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3; 1 with --quick)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", action="append", choices=("fp32", "bf16", "fp16"),
                        help="precision(s) to measure, repeatable (default: fp32)")
    parser.add_argument("--require-cuda", action="store_true", help="fail when no CUDA device is available")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per implementation, interleaved; the fastest is reported")
    parser.add_argument("--impl", action="append", choices=("ours", "transformers"),
                        help="implementation(s) to run (default: both)")
    parser.add_argument("--backbone", action="append", choices=("swin", "efficientvit"),
                        help="model.backbone.type to measure, repeatable (default: the spec's)")
    parser.add_argument("--efficientvit-name", default="l1", choices=("b0", "b1", "b2", "b3", "l0", "l1", "l2", "l3"),
                        help="EfficientViT size for --backbone efficientvit (default l1)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    report = run(args)
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all("error" not in row for row in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
