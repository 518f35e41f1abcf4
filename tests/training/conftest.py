"""Fixtures for training tests: tiny synthetic coco_panoptic data and one shared short run.

Everything is CPU-sized: 64 px images, the tiny model,
256 sampled points, 1-2 steps per epoch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mask2former.data.synth import write_synthetic_splits
from tests.training.training_support import SHARED_RUN, make_config


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    """Tiny networks on 2 busy shared cores: one intra-op thread beats several competing ones."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def panoptic_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_panoptic")
    write_synthetic_splits(root, fmt="coco_panoptic", num_train=4, num_val=2, seed=0, size=64)
    return root


@pytest.fixture(scope="session")
def trained_run(panoptic_data, tmp_path_factory) -> Path:
    """One 2-epoch run (2 steps per epoch, lr halved after epoch 1) shared by tests that read its outputs."""
    from mask2former.training import run_training

    results = tmp_path_factory.mktemp("trained_run")
    cfg, spec = make_config(panoptic_data, results, **SHARED_RUN)
    run_training(cfg, spec)
    return results


@pytest.fixture(autouse=True)
def panopticapi_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run panopticapi's `pq_compute` scoring in this process.

    Its `pq_compute_multi_core` forks a `multiprocessing.Pool` of one worker a core. These tests fork after
    training in-process, with torch's threads running, and a forked child can then hang on a lock one of those
    threads held: a fresh-clone suite run stopped in such a child. The per-image scoring is panopticapi's own
    `pq_compute_single_core` either way, and the stats are summed the same way.
    """
    try:
        from panopticapi import evaluation
    except ImportError:  # only the tests that score with panopticapi need it, and they import it themselves
        return

    def single_process(matched_annotations_list, gt_folder, pred_folder, categories):  # type: ignore[no-untyped-def]
        return evaluation.pq_compute_single_core(0, matched_annotations_list, gt_folder, pred_folder, categories)

    monkeypatch.setattr(evaluation, "pq_compute_multi_core", single_process)
