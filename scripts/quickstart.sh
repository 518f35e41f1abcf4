#!/usr/bin/env bash
# The main job on a fresh machine: set up, generate a small synthetic COCO-panoptic dataset, run a CPU
# AutoML sweep of real tiny Mask2Former trials (timed first, so it prints its estimate and, at the end, how
# the estimate compared), promote the best trial (workspace/quickstart/best/) and export it to ONNX, so the
# deploy-side commands run straight away.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# (Re)generate unless the data of this exact command is there (an older quickstart wrote 16 images).
if ! grep -qs '"num_images": 32,' data/quickstart/train/synth.json || [ ! -f data/quickstart/val/annotations_panoptic.json ]; then
  mask2former dataset synth --format coco_panoptic --out data/quickstart --num-images 32 --split-val 6 --size 64 --seed 0
fi
if [ -d workspace/quickstart ]; then
  # A finished or interrupted earlier run: keep it (nothing is lost) and start a fresh one beside it.
  mv workspace/quickstart "workspace/quickstart.$(date +%Y%m%d-%H%M%S)"
fi
hpo run configs/quickstart.yaml --yes --probe
best=workspace/quickstart/best
mask2former export -e "$best/export_spec.yaml" >/dev/null
echo
echo "Promoted model: $best/ (best.json, checkpoint, train/export/deploy specs, mask2former.onnx)"
echo "Next, the deployed graph on this machine's runtime (see the comment at the top of the spec):"
echo "  mask2former evaluate -e $best/deploy_evaluate_spec.yaml"
