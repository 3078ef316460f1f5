#!/usr/bin/env bash
# The GPU benchmarks, as run on a single H100 (see benchmarks/README.md). The machine has no
# network: the Python packages it lacks travel as wheels in .whl/ and are installed to /tmp/site;
# the SmolLM2 tokenizer and config travel in .gpu/smollm2-135m (copied from the converted demo
# model), and gpu_models.py builds the models with random weights there.
#   bash benchmarks/gpu.sh [all|rest]   # rest: what a 10-minute call left undone
set -euo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD"
OUT="${OUT:-benchmarks/_work}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, trl, peft, datasets; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__)"
python3 benchmarks/gpu_models.py --tokenizer .gpu/smollm2-135m --out /tmp/models
save() { cp benchmarks/_work/*.json "$OUT"/ 2>/dev/null || true; }
T="python3 benchmarks/train_throughput.py --device cuda --logging-steps 10"
S="python3 benchmarks/gpu_step.py --length 160"
# In priority order, each result saved as it lands (a run cut short still returns the earlier ones).
if [ "${1:-all}" = all ]; then
  for model in smollm2-135m smollm2-1.7b; do
    if [ "$model" = smollm2-135m ]; then batch=64 rows=6000; else batch=32 rows=3000; fi
    $S --model /tmp/models/$model --batch $batch | tee -a "$OUT/gpu_step.jsonl"
    $T --base-dir /tmp/models/$model --label $model --batch $batch --rows $rows --repeats 1 --packing; save
    $T --base-dir /tmp/models/$model --label $model --batch $batch --rows $rows --repeats 1; save
  done
fi
python3 benchmarks/memory_estimate.py --base-dir /tmp/models/smollm2-135m --label smollm2-135m --quick; save
$T --base-dir /tmp/models/smollm2-1.7b --label smollm2-1.7b --batch 32 --rows 3000 --repeats 1; save
