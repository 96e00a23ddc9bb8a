#!/usr/bin/env bash
# Writes the format-2 checkpoints the compatibility tests read (tests/DTSKD.Core.Tests/TestData/format2/): a tiny
# model trained by the last DTSKD.Core that wrote format 2 (commit bf9f701), in float32 and bfloat16, with the metrics
# of its uninterrupted runs. Run by hand, from the repository root: bash eng/make-format2-checkpoints.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
commit=bf9f701
scratch=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$scratch/src" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git -C "$root" worktree add --detach "$scratch/src" "$commit" >/dev/null
out="$root/tests/DTSKD.Core.Tests/TestData/format2"
mkdir -p "$out" "$scratch/app"
cat > "$scratch/app/Format2.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable><ImplicitUsings>enable</ImplicitUsings><ManagePackageVersionsCentrally>true</ManagePackageVersionsCentrally></PropertyGroup>
  <ItemGroup>
    <ProjectReference Include="$scratch/src/src/DTSKD.Core/DTSKD.Core.csproj" />
    <PackageReference Include="TorchSharp-cpu" />
  </ItemGroup>
  <Import Project="$scratch/src/eng/DTSKD.Core.targets" />
</Project>
XML
cp "$root/tests/DTSKD.Core.Tests/Format2Fixture.cs" "$scratch/app/Format2Fixture.cs"
cat > "$scratch/app/Program.cs" <<'CS'
using System.Text.Json;
using DTSKD.Core.Tests;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Training;
using static TorchSharp.torch;

var output = args[0];
set_num_threads(1);
foreach (var precision in new[] { TrainingPrecision.Float32, TrainingPrecision.BFloat16 })
{
    using var train = Format2Fixture.Halves(96, 1);
    using var test = Format2Fixture.Halves(32, 2);
    TrainingResult Run(string? dir, CancellationTokenSource? stop)
    {
        manual_seed(5);
        using var model = Format2Fixture.Model();
        using var loss = DualTeacherLoss.For(model, train.Count, new DualTeacherLossOptions { ScaleKdByTemperatureSquared = false });
        using var trainer = new Trainer(model, loss, train, test, new BatchAugmentation([0.4], [0.3], padding: 1), Format2Fixture.Options(precision, dir));
        if (stop is not null)
        {
            trainer.Callbacks.Add(new StopAfterFirstEpoch(stop));
        }

        return trainer.Run(stop?.Token ?? default);
    }

    var full = Run(null, null);
    var name = precision == TrainingPrecision.Float32 ? "fp32" : "bf16";
    File.WriteAllText(Path.Combine(output, $"{name}-metrics.json"),
        JsonSerializer.Serialize(full.Metrics.Select(m => new { m.Epoch, m.TrainLoss, m.TrainTop1, m.TestTop1, m.TestTop5, m.TestLoss })));
    using var stop = new CancellationTokenSource();
    var dir = Path.Combine(Path.GetTempPath(), $"format2-{name}-{Guid.NewGuid():N}");
    Run(dir, stop);
    File.Copy(Path.Combine(dir, "last.ckpt"), Path.Combine(output, $"{name}-epoch1.ckpt"), overwrite: true);
    Directory.Delete(dir, recursive: true);
}

/// <summary>Stops the run once its first epoch (and that epoch's checkpoint) is done.</summary>
sealed class StopAfterFirstEpoch(CancellationTokenSource stop) : TrainerCallback
{
    public override void OnEpochEnd(Trainer trainer, EpochMetrics metrics) => stop.Cancel();
}
CS
cd "$scratch/app"
cp "$root/Directory.Packages.props" "$root/nuget.config" .
dotnet run -c Release -- "$out"
ls -la "$out"
