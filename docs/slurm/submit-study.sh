#!/bin/bash
# Submits the study's job array, then the merge that waits for every task of it (afterok) and writes the report;
# prints both job ids.
set -euo pipefail
DTSKD=${DTSKD:-/shared/dtskd}
STUDY=${STUDY:-/shared/studies/my-images}
job=$(sbatch --parsable "$(dirname "$0")/study.sbatch")
echo "$job"
# One merge job, even where SBATCH_ARRAY_INX sets the array's size for the study.
env -u SBATCH_ARRAY_INX sbatch --parsable --job-name=dtskd-merge --dependency="afterok:$job" --wrap \
  "dotnet '$DTSKD/bench/DTSKD.Benchmarks.dll' ablation merge --runs-dir '$STUDY/runs' --output '$STUDY/report.md'"
