#!/usr/bin/env bash
# Packs the libraries into a local feed, then builds and runs a fresh console app outside the solution that
# consumes DTSKD.Core the way a user does (dotnet add package), with TorchSharp-cpu: it builds a small
# resnet18_dtskd, trains a few steps with DualTeacherLoss and prints the losses. Fails if anything the
# package needs is missing (the buildTransitive TorchSharp load fix included: on Debian 12 the app only
# runs if the fix was applied to its output). Then it compiles every C# snippet of the README, the docs and the
# package readmes against the packed packages (eng/doc-snippets.cs), so documentation that no longer compiles fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
torchsharp=$(sed -n 's:.*<TorchSharpVersion>\(.*\)</TorchSharpVersion>.*:\1:p' "$root/Directory.Packages.props")
packageVersion() { sed -n "s:.*<PackageVersion Include=\"$1\" Version=\"\([^\"]*\)\".*:\1:p" "$root/Directory.Packages.props"; }
onnxruntime=$(packageVersion Microsoft.ML.OnnxRuntime)
# A unique version, so the global NuGet cache never hands back an older build of the package.
version="0.1.0-consumer.$(date +%Y%m%d%H%M%S).$$"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
feed="$scratch/feed"
app="$scratch/ConsumerCheck"

packages=(DTSKD.Core DTSKD.Core.Deployment DTSKD.Core.Interop DTSKD.Core.Images DTSKD.Core.Onnx)
for package in "${packages[@]}"; do
  echo "== packing $package $version"
  dotnet pack "$root/src/$package/$package.csproj" -c Release -p:Version="$version" -o "$feed" -nologo -v q
done

echo "== creating a console app outside the solution"
mkdir -p "$app"
cat > "$app/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
XML
cat > "$app/ConsumerCheck.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
  </PropertyGroup>
</Project>
XML
cat > "$app/Program.cs" <<'CS'
using DTSKD.Core;
using DTSKD.Core.Models;
using static TorchSharp.torch;

manual_seed(1);
// Widths that are multiples of 16: LibTorch 2.10's CPU 3x3 convolution gets its input gradient wrong otherwise.
using var model = MultiBranchModels.resnet18_dtskd(numClasses: 10, baseWidth: 16, neckWidth: 64);
using var loss = DualTeacherLoss.For(model, sampleCount: 64);
using var optimizer = optim.SGD(model.parameters(), 0.05, momentum: 0.9, nesterov: true);
using var images = randn(64, 3, 32, 32);
using var labels = randint(0, 10, [64], dtype: ScalarType.Int64);
var losses = new List<float>();
for (var step = 0; step < 8; step++)
{
    using var scope = NewDisposeScope();
    var idx = arange(step % 2 * 32, (step % 2 * 32) + 32, dtype: ScalarType.Int64);
    using var output = model.call(images.index_select(0, idx));
    using var result = loss.Compute(output, labels.index_select(0, idx), idx, epoch: step / 2, totalEpochs: 4);
    optimizer.zero_grad();
    result.Total.backward();
    optimizer.step();
    losses.Add(result.Total.item<float>());
    Console.WriteLine($"step {step}: loss {losses[^1]:F4}  " + string.Join("  ", result.Components.Select(c => $"{c.Key} {c.Value.item<float>():F4}")));
}

if (losses.Any(l => !float.IsFinite(l)) || losses[^1] >= losses[0])
{
    Console.Error.WriteLine("consumer check: the loss did not go down");
    return 1;
}

Console.WriteLine("consumer check: OK");
return 0;
CS

cd "$app"
dotnet add package DTSKD.Core --version "$version" >/dev/null
dotnet add package TorchSharp-cpu --version "$torchsharp" >/dev/null
echo "== building and running it"
dotnet build -c Release -nologo -v q
dotnet run -c Release --no-build

libstdcxx=$(ls /lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib64/libstdc++.so.6 2>/dev/null | head -n 1 || true)
if command -v readelf >/dev/null && [ -n "$libstdcxx" ] && ! grep -q GLIBCXX_3.4.32 "$libstdcxx"; then
  echo "== checking the package's TorchSharp load fix (this host's libstdc++ lacks GLIBCXX_3.4.32)"
  native=runtimes/linux-x64/native/libLibTorchSharp.so
  # readelf's output is read whole first: `readelf | grep -q` under pipefail fails at random when grep exits before
  # readelf has written its last lines (SIGPIPE).
  versions=$(readelf -V "bin/Release/net10.0/$native")
  grep -q 'GLIBCXX_3.4.32 *Flags: WEAK' <<<"$versions" \
    || { echo "consumer check: the app's libLibTorchSharp.so was not patched" >&2; exit 1; }
  dotnet build -c Release -nologo -v q -p:DtskdFixTorchSharpLoad=false -o "$scratch/optout" >/dev/null
  versions=$(readelf -V "$scratch/optout/$native")
  if grep -q 'GLIBCXX_3.4.32 *Flags: WEAK' <<<"$versions"; then
    echo "consumer check: DtskdFixTorchSharpLoad=false did not turn the fix off" >&2
    exit 1
  fi
  echo "patched by default, left alone with DtskdFixTorchSharpLoad=false: OK"
fi

echo "== a second app: DTSKD.Core.Images on a folder of PNG files (SkiaSharp's native library comes with the package)"
images="$scratch/ImagesCheck"
mkdir -p "$images"
cp "$app/nuget.config" "$app/ConsumerCheck.csproj" "$images/"
mv "$images/ConsumerCheck.csproj" "$images/ImagesCheck.csproj"
cat > "$images/Program.cs" <<'CS'
using DTSKD.Core;
using DTSKD.Core.Images;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using SkiaSharp;
using static TorchSharp.torch;

var root = Path.Combine(Path.GetTempPath(), $"images-check-{Guid.NewGuid():N}");
try
{
    // Two classes: dark and bright squares with noise.
    var rng = new Random(3);
    for (var i = 0; i < 24; i++)
    {
        var bright = i % 2 == 1;
        using var bitmap = new SKBitmap(16, 16);
        for (var p = 0; p < 256; p++)
        {
            var v = (byte)Math.Clamp((bright ? 190 : 60) + rng.Next(-30, 30), 0, 255);
            bitmap.SetPixel(p % 16, p / 16, new SKColor(v, v, v));
        }

        var path = Path.Combine(root, bright ? "bright" : "dark", $"{i:D2}.png");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var encoded = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, encoded.ToArray());
    }

    using var data = ImageFolder.Open(root, new ImageFolderOptions { ImageSize = 16, Channels = 1, HoldOutFraction = 0.25, CacheDirectory = Path.Combine(root, ".cache") });
    manual_seed(1);
    using var model = MultiBranchModels.resnet18_dtskd(numClasses: 2, inputChannels: 1, baseWidth: 16, neckWidth: 16);
    var objective = CrossEntropyObjective.AllHeads(model);
    using var trainer = new Trainer(model, objective, data.Train, data.Test, data.Preprocessing, new TrainerOptions { Epochs = 3, BatchSize = 6, LearningRate = 0.05, Milestones = [] });
    var result = trainer.Run();
    Console.WriteLine($"{data.ClassNames.Count} classes, {data.Train.Count} + {data.Test.Count} images, {data.Mode}; final top-1 {result.FinalTop1:F1}%");
    return data.ClassNames.SequenceEqual(["bright", "dark"]) && data.Train.Count == 18 ? 0 : 1;
}
finally
{
    Directory.Delete(root, recursive: true);
}
CS
(cd "$images" && dotnet add package DTSKD.Core.Images --version "$version" >/dev/null && dotnet add package TorchSharp-cpu --version "$torchsharp" >/dev/null \
  && dotnet build -c Release -nologo -v q && dotnet run -c Release --no-build)
echo "images check: OK"

echo "== a third app: DTSKD.Core.Onnx exports a model, ONNX Runtime runs it and gives TorchSharp's logits"
onnx="$scratch/OnnxCheck"
mkdir -p "$onnx"
cp "$app/nuget.config" "$app/ConsumerCheck.csproj" "$onnx/"
mv "$onnx/ConsumerCheck.csproj" "$onnx/OnnxCheck.csproj"
cat > "$onnx/Program.cs" <<'CS'
using DTSKD.Core.Models;
using DTSKD.Core.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using static TorchSharp.torch;

manual_seed(1);
using var model = MultiBranchModels.resnet18_dtskd(numClasses: 10, baseWidth: 16, neckWidth: 16);
model.eval();
using var x = randn(2, 3, 32, 32);
using var backbone = BackboneClassifier.From(model);
using var expected = backbone.call(x);
var bytes = OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = 32, Mean = [0.5, 0.5, 0.5], Std = [0.25, 0.25, 0.25], FoldBatchNorm = true });
using var session = new InferenceSession(bytes);
using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(x.data<float>().ToArray(), [2, 3, 32, 32]))]);
var got = results[0].AsTensor<float>().ToArray();
var want = expected.data<float>().ToArray();
var worst = got.Zip(want).Max(p => Math.Abs(p.First - p.Second)) / want.Max(Math.Abs);
Console.WriteLine($"{bytes.Length:N0} bytes; ONNX Runtime within {worst:E1} of TorchSharp's largest logit");
return worst < 1e-4 ? 0 : 1;
CS
(cd "$onnx" && dotnet add package DTSKD.Core.Onnx --version "$version" >/dev/null && dotnet add package TorchSharp-cpu --version "$torchsharp" >/dev/null \
  && dotnet add package Microsoft.ML.OnnxRuntime --version "$onnxruntime" >/dev/null && dotnet build -c Release -nologo -v q && dotnet run -c Release --no-build)
echo "onnx check: OK"

echo "== the serving sample publishes without LibTorch, TorchSharp or DTSKD.Core (DTSKD.Core.Deployment only)"
dotnet publish "$root/samples/DTSKD.Samples.Serve/DTSKD.Samples.Serve.csproj" -c Release -o "$scratch/serve" -nologo -v q
training() { find "$scratch/serve" \( -iname 'libtorch*' -o -iname 'TorchSharp*' -o -iname 'libc10*' -o -iname 'DTSKD.Core.dll' -o -iname 'DTSKD.Core.Images*' -o -iname 'DTSKD.Core.Onnx*' -o -iname 'DTSKD.Core.Interop*' \); }
if training | grep -q .; then
  echo "consumer check: the serving sample's publish output holds LibTorch, TorchSharp or DTSKD.Core:" >&2
  training >&2
  exit 1
fi
find "$scratch/serve" -name 'libonnxruntime.so*' | grep -q . || { echo "consumer check: the serving sample's publish output has no ONNX Runtime" >&2; exit 1; }
find "$scratch/serve" -name 'DTSKD.Core.Deployment.dll' | grep -q . || { echo "consumer check: the serving sample's publish output has no DTSKD.Core.Deployment" >&2; exit 1; }
echo "serving sample: $(du -sm "$scratch/serve" | cut -f1) MB published, no LibTorch: OK"

echo "== compiling the documentation's C# snippets against the packed packages"
snippets="$scratch/DocSnippets"
mkdir -p "$snippets"
cp "$app/nuget.config" "$snippets/"
{
  echo '<Project Sdk="Microsoft.NET.Sdk">'
  echo '  <PropertyGroup>'
  echo '    <OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable><ImplicitUsings>enable</ImplicitUsings>'
  echo '    <!-- Snippets are fragments: unused variables and methods without await are fine; errors are not. -->'
  echo '    <NoWarn>$(NoWarn);CS8321;CS0168;CS0219;CS1998;CS0162</NoWarn>'
  echo '  </PropertyGroup>'
  echo '  <ItemGroup>'
  for package in "${packages[@]}"; do echo "    <PackageReference Include=\"$package\" Version=\"$version\" />"; done
  echo "    <PackageReference Include=\"TorchSharp-cpu\" Version=\"$torchsharp\" />"
  echo "    <PackageReference Include=\"Microsoft.ML.OnnxRuntime\" Version=\"$onnxruntime\" />"
  echo "    <PackageReference Include=\"Microsoft.ML\" Version=\"$(packageVersion Microsoft.ML)\" />"
  echo "    <PackageReference Include=\"Microsoft.ML.OnnxTransformer\" Version=\"$(packageVersion Microsoft.ML.OnnxTransformer)\" />"
  echo '  </ItemGroup>'
  echo '</Project>'
} > "$snippets/DocSnippets.csproj"
echo 'return 0;' > "$snippets/Program.cs"
(cd "$root" && dotnet run eng/doc-snippets.cs -- "$root" "$snippets/generated")
dotnet build "$snippets/DocSnippets.csproj" -c Release -nologo -v q
echo "documentation snippets: OK"
