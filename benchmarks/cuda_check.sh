#!/bin/bash
# The CUDA check, on a machine with a GPU and lstm-inspect installed (run from the repository's root):
# the CUDA tests, then the default grid measured and estimated (--method both) in infer, train, train+adam,
# bfloat16 and a bidirectional GRU, each saved as JSON under ${OUT:-cuda-check}/, then the per-call cuDNN probe.
# What it printed on an H200 is in the README ("Memory on CUDA").
OUT=${OUT:-cuda-check}
mkdir -p "$OUT"
python -m pytest -q -p no:cacheprovider tests/test_memory_cudnn.py tests/test_memory.py -k "cuda or cudnn"
run() { local name=$1; shift; python -m lstm_inspect memory --device cuda --method both --json "$@" > "$OUT/$name.json"; }
run infer_none --mode infer
run train_none --mode train
run train_adam --mode train --optimizer adam
run train_bfloat16 --mode train --dtype bfloat16
run gru_bidirectional_train --mode train --cell gru --bidirectional --hidden-dim 512 --embed-dim 512
python -m lstm_inspect memory --device cuda --method both --mode infer --no-chart
python -m lstm_inspect memory --device cuda --method both --mode train --no-chart
python benchmarks/cudnn_probe.py "$OUT/probe.json" 140
