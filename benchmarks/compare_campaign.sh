#!/usr/bin/env bash
# The comparison campaign (issue 33) in the background: one row of benchmarks/compare_models.py per
# invocation, one thread, results committed after each row, so a lost machine loses at most the row in
# flight. Rows already in benchmarks/compare/results.jsonl are skipped by the runner itself. When every
# seed-0 row of a data set is done, seeds 1 and 2 of its two best rows (F1@0.5) follow.
# Two runners on disjoint data sets keep two cores busy:
#   nohup benchmarks/compare_campaign.sh bbbc018-cells usiigaci > runs/compare_a.log 2>&1 &
#   nohup benchmarks/compare_campaign.sh koyuncu aitslab > runs/compare_b.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$PWD
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(bbbc018-cells koyuncu aitslab usiigaci)
commit() {
    for _ in 1 2 3 4 5 6; do  # the other runner may hold the index for a moment
        git add benchmarks/compare && git commit -q -m "$1" -- benchmarks/compare && return 0
        git diff --cached --quiet -- benchmarks/compare && return 0
        sleep 20
    done
}
row() {  # dataset model train_data seeds
    python benchmarks/compare_models.py --datasets "$1" --models "$2" --train-data "$3" --seeds "$4" || return 1
    python benchmarks/compare_models.py --report > /dev/null
    commit "Comparison campaign: $1 / $2 / $3 / seed $4"
}
best_rows() {  # the two best seed-0 rows of a data set, "model train_data" per line
    python - "$1" <<'PY'
import sys
from benchmarks.compare_models import RESULTS, read_results
ok = [r for r in read_results(RESULTS) if r["dataset"] == sys.argv[1] and r.get("status") == "ok" and r["seed"] == 0]
for r in sorted(ok, key=lambda r: -r["f1_50"])[:2]:
    print(r["model"], r["train_data"])
PY
}
for ds in "${datasets[@]}"; do
    for train_data in original synth; do
        for model in lacss-supervised unet unet-expanded lacss-weak lacss-weak+aux points points-patch; do
            row "$ds" "$model" "$train_data" 0
        done
    done
done
for ds in "${datasets[@]}"; do
    best_rows "$ds" | while read -r model train_data; do
        for seed in 1 2; do row "$ds" "$model" "$train_data" "$seed"; done
    done
done
