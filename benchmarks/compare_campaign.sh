#!/usr/bin/env bash
# The comparison campaign (issue 33) in the background: one row of benchmarks/compare_models.py per
# invocation, one thread, results committed after each row, so a lost machine loses at most the row in
# flight. Rows already in benchmarks/compare/results.jsonl are skipped by the runner itself.
#   nohup benchmarks/compare_campaign.sh > compare_campaign.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$PWD
commit() {
    for _ in 1 2 3 4 5 6; do  # another commit may hold the index for a moment
        git add benchmarks/compare && git commit -q -m "$1" -- benchmarks/compare && return 0
        git diff --cached --quiet -- benchmarks/compare && return 0
        sleep 20
    done
}
for train_data in original synth; do
    for ds in bbbc018-cells koyuncu aitslab usiigaci; do
        for model in lacss-supervised unet unet-expanded lacss-weak lacss-weak+aux points points-patch; do
            python benchmarks/compare_models.py --datasets "$ds" --models "$model" --train-data "$train_data" \
                --seeds 0 || continue
            python benchmarks/compare_models.py --report > /dev/null
            commit "Comparison campaign: $ds / $model / $train_data / seed 0"
        done
    done
done
