"""The exported post-processing (TAO outputs) decodes to exactly what the PyTorch post-processing returns."""

from __future__ import annotations

import pytest
import torch

from mask2former.deploy.decode import decode_tao_outputs
from mask2former.export.heads import ExportableMask2Former, output_names
from mask2former.model.postprocessing import Postprocessor
from mask2former.model.tiny import build_tiny_model
from tests.deploy.deploy_fixtures import NUM_CLASSES

SIZE = 64
THINGS = (0, 1, 2)


def _run(mode: str, seed: int = 0):
    model = build_tiny_model(NUM_CLASSES, seed=seed).eval()
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    wrapper = ExportableMask2Former(model, mode=mode, output_size=(SIZE, SIZE), topk=20)
    with torch.no_grad():
        values = wrapper(images)
    tao = dict(zip(output_names(mode), values))
    raw = {"pred_logits": values[-2], "pred_masks": values[-1]}
    post = Postprocessor(mode=mode, thing_ids=THINGS, object_mask_threshold=0.0, overlap_threshold=0.3,
                         test_topk_per_image=20)
    expected = post(raw, input_size=(SIZE, SIZE), image_sizes=[(SIZE, SIZE)] * 2)
    decoded = decode_tao_outputs(tao, mode=mode, num_classes=NUM_CLASSES, thing_ids=THINGS,
                                 object_mask_threshold=0.0, overlap_threshold=0.3)
    return expected, decoded


def test_semantic_scores_match() -> None:
    expected, decoded = _run("semantic")
    for want, got in zip(expected, decoded):
        torch.testing.assert_close(got["sem_seg"], want["sem_seg"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_panoptic_segments_match(seed: int) -> None:
    expected, decoded = _run("panoptic", seed)
    segments = 0
    for want, got in zip(expected, decoded):
        want_p, got_p = want["panoptic_seg"], got["panoptic_seg"]
        assert torch.equal(got_p.id_map, want_p.id_map.cpu())
        assert [(s["id"], s["category_id"], s["isthing"]) for s in got_p.segments_info] == \
               [(s["id"], s["category_id"], s["isthing"]) for s in want_p.segments_info]
        for a, b in zip(got_p.segments_info, want_p.segments_info):
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)
        segments += len(want_p.segments_info)
    assert segments > 0  # the comparison covered real segments


def test_instance_predictions_match() -> None:
    expected, decoded = _run("instance")
    for want, got in zip(expected, decoded):
        w, g = want["instances"], got["instances"]
        w_order, g_order = w.scores.argsort(descending=True), g.scores.argsort(descending=True)
        torch.testing.assert_close(g.scores[g_order], w.scores[w_order], rtol=1e-5, atol=1e-6)
        assert torch.equal(g.labels[g_order], w.labels[w_order])
        assert torch.equal(g.masks[g_order], w.masks[w_order])
        assert g.masks.any()


def test_decode_resizes_to_output_sizes() -> None:
    model = build_tiny_model(NUM_CLASSES).eval()
    wrapper = ExportableMask2Former(model, mode="instance", output_size=(SIZE, SIZE), topk=5)
    with torch.no_grad():
        values = wrapper(torch.rand(1, 3, SIZE, SIZE))
    tao = dict(zip(output_names("instance"), values))
    (result,) = decode_tao_outputs(tao, mode="instance", num_classes=NUM_CLASSES, output_sizes=[(96, 80)])
    assert result["instances"].masks.shape == (5, 96, 80) and result["instances"].masks.dtype == torch.bool
