"""Fill a spec's dataset paths from dataset roots, per the skill's `data_sources` table.

A root is a local folder or an `s3://` prefix holding the seed layout (`images.tar.gz`,
`annotations.json`, `annotations_panoptic.json`, `images_panoptic.tar.gz`, `label_map_panoptic.json`
for coco_panoptic, `label_map.json` for the other formats). Archives are referenced as they are;
whoever reads them extracts them once (the trainer's cache, or S3 staging).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from skillkit.errors import DataError, SpecError
from skillkit.skill_dir import SkillDir
from skillkit.spec.dotted import get_dotted, set_dotted

SOURCE_ARGUMENTS = ("train_datasets", "eval_dataset", "inference_dataset")
# A source that was not given falls back to another: the skill card's inference table reads the images to
# predict (`dataset.test.img_dir`) from `inference_dataset`; a job given only an eval dataset predicts that.
SOURCE_FALLBACKS = {"inference_dataset": "eval_dataset"}
ARCHIVE_SUFFIX = ".tar.gz"


def is_remote(uri: str) -> bool:
    return "://" in uri


def join_root(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if is_remote(root) else str(Path(root) / name)


def detect_dataset_type(root: str) -> str | None:
    """The format of a local dataset root from the files it holds (None for remote roots or unknown)."""
    if is_remote(root):
        return None
    folder = Path(root)
    if (folder / "annotations_panoptic.json").is_file():
        return "coco_panoptic"
    if (folder / "annotations.jsonl").is_file():
        return "ade"
    if (folder / "annotations.json").is_file():
        return "coco"
    return None


def _split_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "dataset" and parts[1] in ("train", "val", "test") else None


def _local_candidate(root: str, path: str, entry: Mapping[str, Any]) -> str | None:
    """The path if it exists; for an archive, its already-extracted folder also counts: the entry's
    `x_extracted_folder` (relative to the root; "." for archives whose members sit at the root's level,
    like ADE's images/ + annotations/), else the archive's name without `.tar.gz`."""
    if Path(path).exists():
        return path
    if entry.get("runtime") == "extracted_folder" and path.endswith(ARCHIVE_SUFFIX):
        relative = entry.get("x_extracted_folder")
        folder = str(Path(root) / relative) if relative else path[: -len(ARCHIVE_SUFFIX)]
        if Path(folder).is_dir() and (relative != "." or any(Path(folder).iterdir())):
            return str(Path(folder))
    return None


def resolve_data_sources(
    spec: dict[str, Any],
    skill: SkillDir,
    action: str,
    *,
    train_datasets: str | None = None,
    eval_dataset: str | None = None,
    inference_dataset: str | None = None,
    dataset_type: str | None = None,
) -> dict[str, Any]:
    """Fill `spec` in place from the given roots and return it.

    The dataset type of each split is `dataset_type` if given, else detected from a local root's files,
    else the spec's own; it selects which entries apply (`x_dataset_types`) and the label map's name
    (`x_path_by_type`). Entries whose source was not given (nor its fallback in `SOURCE_FALLBACKS`) are left
    alone.
    """
    given: dict[str, str | None] = {
        "train_datasets": train_datasets, "eval_dataset": eval_dataset, "inference_dataset": inference_dataset,
    }
    roots: Mapping[str, str | None] = {
        source: root or given.get(SOURCE_FALLBACKS.get(source, ""))  # type: ignore[arg-type]
        for source, root in given.items()
    }
    table = skill.data_sources(action)
    if not table:
        raise SpecError(f"skill_info.yaml has no data_sources for action '{action}'.")
    split_roots: dict[str, str] = {}
    for dotted, entry in table.items():
        split = _split_of(dotted)
        root = roots.get(entry.get("source", ""))
        if split and root:
            split_roots.setdefault(split, root)
    for split, root in split_roots.items():
        chosen = dataset_type or detect_dataset_type(root)
        if chosen:
            set_dotted(spec, f"dataset.{split}.type", chosen)
    for dotted, entry in table.items():
        root = roots.get(entry.get("source", ""))
        if not root:
            continue
        split = _split_of(dotted) or "train"
        split_type = get_dotted(spec, f"dataset.{split}.type", None)
        allowed_types = entry.get("x_dataset_types")
        if allowed_types and split_type not in allowed_types:
            continue
        name = (entry.get("x_path_by_type") or {}).get(split_type, entry["path"])
        path = join_root(root, name)
        if not is_remote(root):
            found = _local_candidate(root, path, entry)
            if found is None:
                if entry.get("optional"):
                    continue
                present = ", ".join(sorted(p.name for p in Path(root).iterdir())) if Path(root).is_dir() else "nothing: the folder does not exist"
                raise DataError(
                    f"dataset root '{root}' (given as {entry['source']}) has no '{name}', needed for '{dotted}' "
                    f"of a {split_type} dataset; the root holds: {present}."
                )
            path = found
        set_dotted(spec, dotted, path)
    return spec
