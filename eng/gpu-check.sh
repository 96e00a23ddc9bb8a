#!/usr/bin/env bash
# The GPU check, in two steps (see docs/gpu.md):
#
#   1. here (a machine with the .NET SDK):   bash eng/gpu-check.sh prepare
#      publishes the benchmark self-contained for linux-x64 WITHOUT a libtorch bundle (18 MB), and stages it
#      with Fashion-MNIST (30 MB) in .device/ (ignored by git; about 50 MB, within the device tool's 64 MiB).
#   2. on the GPU machine (no .NET, PyTorch with CUDA installed), from the repository root:
#      bash eng/gpu-check.sh run              (with the device tool: run it with carry [".device"])
#      points TorchSharp's native layer at PyTorch's own LibTorch (LD_LIBRARY_PATH) and runs
#        - DTSKD.Core's training throughput on CUDA in fp32, tf32, bf16 and fp16 (reference resnet18_dtskd, batch 128),
#        - a few epochs of Fashion-MNIST with DTSKD on CUDA, with accuracy,
#        - the same architecture, loss and optimizer in PyTorch (bench/pytorch/dtskd_step_bench.py) with autocast,
#      and writes gpu-check.md (plus logs) to $OUT, or .device/out when OUT is unset.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stage="$root/.device"

case "${1:-}" in
prepare)
  rm -rf "$stage"
  mkdir -p "$stage/data"
  dotnet publish "$root/bench/DTSKD.Benchmarks/DTSKD.Benchmarks.csproj" -c Release -r linux-x64 --self-contained \
    -p:TorchSharpBackend=external -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true \
    -p:PublishTrimmed=true -p:TrimMode=partial -p:JsonSerializerIsReflectionEnabledByDefault=true \
    -p:TreatWarningsAsErrors=false -p:DebugType=none -p:GenerateDocumentationFile=false -o "$stage/bench" -nologo -v q
  cp /usr/share/datasets/fashion-mnist/*-ubyte.gz "$stage/data/"
  du -sh "$stage"
  ;;
run)
  out="${OUT:-$stage/out}"
  mkdir -p "$out"
  report="$out/gpu-check.md"
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
  export DOTNET_BUNDLE_EXTRACT_BASE_DIR="${TMPDIR:-/tmp}/dtskd-bundle"
  bench="$stage/bench/DTSKD.Benchmarks"
  {
    echo "# GPU check"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'
    echo "LibTorch for TorchSharp: $torch_lib"
    echo '```'
  } > "$report"

  status=0
  echo "== DTSKD.Core training throughput on CUDA"
  if "$bench" steps --device cuda --modes fp32,tf32,bf16,fp16 --reference-width --steps 100 --output "$out/dotnet-steps.md" > "$out/dotnet-steps.log" 2>&1; then
    { echo; echo "## DTSKD.Core (TorchSharp 0.107 on this LibTorch)"; echo; cat "$out/dotnet-steps.md"; } >> "$report"
  else
    status=1
    { echo; echo "## DTSKD.Core failed on this machine"; echo; echo '```'; tail -n 40 "$out/dotnet-steps.log"; echo '```'; } >> "$report"
  fi

  echo "== Fashion-MNIST, 3 epochs, DTSKD, reference width, on CUDA"
  if "$bench" ablation --device cuda --data-path "$stage/data" --rows dtskd --seeds 1 --epochs 3 --base-width 64 --neck-width 512 \
       --output "$out/fmnist.md" > "$out/fmnist.log" 2>&1; then
    { echo; echo "## Fashion-MNIST (DTSKD.Core on CUDA)"; echo; sed -n '3,6p' "$out/fmnist.md"; grep -E "seed 1" "$out/fmnist.log" || true; } >> "$report"
  else
    status=1
    { echo; echo "## Fashion-MNIST run failed"; echo; echo '```'; tail -n 40 "$out/fmnist.log"; echo '```'; } >> "$report"
  fi

  echo "== PyTorch, same architecture and recipe, autocast"
  if python3 "$root/bench/pytorch/dtskd_step_bench.py" --steps 100 > "$out/pytorch-steps.md" 2> "$out/pytorch-steps.log"; then
    { echo; echo "## PyTorch on the same GPU"; echo; cat "$out/pytorch-steps.md"; } >> "$report"
  else
    status=1
    { echo; echo "## PyTorch comparison failed"; echo; echo '```'; tail -n 40 "$out/pytorch-steps.log"; echo '```'; } >> "$report"
  fi

  cat "$report"
  exit $status
  ;;
*)
  echo "usage: bash eng/gpu-check.sh prepare|run" >&2
  exit 2
  ;;
esac
