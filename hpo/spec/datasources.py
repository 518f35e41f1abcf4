"""Fill a spec's dataset paths from dataset roots, per the skill's `data_sources` table.

A root is a local folder or an `s3://` prefix holding the seed layout (`images.tar.gz`,
`annotations.json`, `annotations_panoptic.json`, `images_panoptic.tar.gz`, `label_map_panoptic.json`
for coco_panoptic, `label_map.json` for the other formats). Archives are referenced as they are;
whoever reads them extracts them once (the trainer's cache, or S3 staging).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

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


#: The file whose presence at a dataset root identifies its format, in the order they are looked for
#: (a COCO-panoptic root also holds annotations.json, so panoptic comes first).
FORMAT_MARKERS: tuple[tuple[str, str], ...] = (
    ("annotations_panoptic.json", "coco_panoptic"),
    ("annotations.jsonl", "ade"),
    ("annotations.json", "coco"),
)


def root_entries(root: str) -> list[str] | None:
    """What a dataset root holds, as `ls` shows it (sub-folders end with "/"): a local folder or an `s3://`
    prefix alike (one listing of the prefix). None for a local folder that does not exist, or a scheme we
    cannot list."""
    if is_remote(root):
        if not root.startswith("s3://"):
            return None
        from hpo.storage import Storage  # boto3 only when a root is on S3

        return Storage().entries(root)
    folder = Path(root)
    if not folder.is_dir():
        return None
    return sorted(path.name + ("/" if path.is_dir() else "") for path in folder.iterdir())


def detect_dataset_type(root: str, entries: Collection[str] | None = None) -> str | None:
    """The format of a dataset root (folder or `s3://` prefix) from the files it holds, or None."""
    names = set(root_entries(root) or ()) if entries is None else set(entries)
    for marker, dataset_type in FORMAT_MARKERS:
        if marker in names:
            return dataset_type
    return None


def _describe(entries: Collection[str] | None, root: str) -> str:
    if entries is None:
        return "nothing: the folder does not exist" if not is_remote(root) else "nothing we can list"
    if not entries:
        return "nothing (no object under that prefix)" if is_remote(root) else "nothing"
    return ", ".join(sorted(entries))


def undetected_error(root: str, source: str, entries: Collection[str] | None, known: Collection[str]) -> DataError:
    """The one message for a root whose format was not given and cannot be told from its files."""
    looked_for = ", ".join(f"{marker} ({dataset_type})" for marker, dataset_type in FORMAT_MARKERS)
    return DataError(
        f"cannot tell the format of dataset root '{root}' (given as {source}): it holds none of the files that "
        f"identify one ({looked_for}); it holds: {_describe(entries, root)}. Put the dataset in one of these "
        f"layouts, or name its format with `datasets.type` in the sweep config (`--dataset-type` on the command "
        f"line): {', '.join(known)}."
    )


def known_dataset_types(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every format the skill's data_sources table distinguishes (`x_dataset_types`, `x_path_by_type`)."""
    found: dict[str, None] = {}
    for entry in table.values():
        for name in [*(entry.get("x_dataset_types") or ()), *(entry.get("x_path_by_type") or {})]:
            found.setdefault(str(name))
    order = [dataset_type for _, dataset_type in FORMAT_MARKERS]
    return sorted(found, key=lambda name: (order.index(name) if name in order else len(order), name))


def _split_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "dataset" and parts[1] in ("train", "val", "test") else None


def _candidate(root: str, name: str, entry: Mapping[str, Any], entries: Collection[str] | None) -> str | None:
    """Where the entry's file is under `root`, or None. For an archive, its already-extracted folder also
    counts: the entry's `x_extracted_folder` (relative to the root; "." for archives whose members sit at the
    root's level, like ADE's images/ + annotations/), else the archive's name without `.tar.gz`."""
    path = join_root(root, name)
    if is_remote(root):
        names = set(entries or ())
        if name in names:
            return path
        if entry.get("runtime") == "extracted_folder" and name.endswith(ARCHIVE_SUFFIX):
            relative = entry.get("x_extracted_folder") or name[: -len(ARCHIVE_SUFFIX)]
            if relative == "." and names:
                return root
            if f"{relative.rstrip('/')}/" in names:
                return join_root(root, relative)
        return None
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

    Each root (folder or `s3://` prefix) is listed once. The dataset type of each split is `dataset_type` if
    given, else detected from the root's files (`FORMAT_MARKERS`), else the spec's own; it selects which
    entries apply (`x_dataset_types`) and the label map's name (`x_path_by_type`). A file an entry needs that
    the root lacks is an error naming the root, the file and what the root holds -- or, when the format was
    neither given nor detected, the one error saying which formats were looked for and how to name one.
    Entries whose source was not given (nor its fallback in `SOURCE_FALLBACKS`) are left alone.
    """
    given: dict[str, str | None] = {
        "train_datasets": train_datasets, "eval_dataset": eval_dataset, "inference_dataset": inference_dataset,
    }
    roots: Mapping[str, str | None] = {
        source: root or given.get(SOURCE_FALLBACKS.get(source, ""))
        for source, root in given.items()
    }
    table = skill.data_sources(action)
    if not table:
        raise SpecError(f"skill_info.yaml has no data_sources for action '{action}'.")
    known = known_dataset_types(table)
    if dataset_type and known and dataset_type not in known:
        raise DataError(f"dataset type '{dataset_type}' (datasets.type / --dataset-type) is not one the skill knows; "
                        f"use one of: {', '.join(known)}.")
    split_roots: dict[str, tuple[str, str]] = {}
    for dotted, entry in table.items():
        split = _split_of(dotted)
        root = roots.get(entry.get("source", ""))
        if split and root:
            split_roots.setdefault(split, (root, str(entry.get("source"))))
    listings: dict[str, list[str] | None] = {}

    def listing(root: str) -> list[str] | None:
        if root not in listings:
            listings[root] = root_entries(root)
        return listings[root]

    undetected: set[str] = set()
    for split, (root, _source) in split_roots.items():
        chosen = dataset_type or detect_dataset_type(root, listing(root) or ())
        if chosen:
            set_dotted(spec, f"dataset.{split}.type", chosen)
        else:
            undetected.add(split)
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
        if is_remote(root) and not root.startswith("s3://"):
            set_dotted(spec, dotted, join_root(root, name))  # a scheme we cannot list: taken as given
            continue
        found = _candidate(root, name, entry, listing(root))
        if found is None:
            if entry.get("optional"):
                continue
            if split in undetected:
                raise undetected_error(root, str(entry["source"]), listing(root), known)
            raise DataError(
                f"dataset root '{root}' (given as {entry['source']}) has no '{name}', needed for '{dotted}' "
                f"of a {split_type} dataset; the root holds: {_describe(listing(root), root)}."
            )
        set_dotted(spec, dotted, found)
    return spec
