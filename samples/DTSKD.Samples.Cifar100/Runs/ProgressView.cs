using System.Globalization;
using DTSKD.Core.Training;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// Shows training progress, as a trainer callback: on a terminal, a live bar for the current epoch under a table of the
/// latest epochs; when the output is redirected, plain lines.
/// </summary>
public sealed class ProgressView(IAnsiConsole console, int headCount) : TrainerCallback
{
    private const int TableRows = 12;
    private readonly List<EpochMetrics> _epochs = [];
    private TrainingProgress? _current;
    private DateTime _epochStart = DateTime.UtcNow;
    private Action<TrainingProgress> _show = _ => { };

    /// <summary>Runs <paramref name="train"/> (a trainer's run with this view among its callbacks), showing its progress.</summary>
    public TrainingResult Show(Func<TrainingResult> train, IEnumerable<EpochMetrics> earlier)
    {
        _epochs.AddRange(earlier);
        _epochStart = DateTime.UtcNow;
        if (!console.Profile.Capabilities.Interactive)
        {
            _show = Plain;
            return train();
        }

        TrainingResult? result = null;
        console.Live(Render()).AutoClear(false).Start(ctx =>
        {
            _show = p =>
            {
                Update(p);
                ctx.UpdateTarget(Render());
            };
            result = train();
        });
        return result!;
    }

    /// <inheritdoc />
    public override void OnProgress(Trainer trainer, TrainingProgress progress) => _show(progress);

    private void Update(TrainingProgress p)
    {
        _current = p;
        if (p.Completed is { } done)
        {
            _epochs.Add(done);
            _epochStart = DateTime.UtcNow;
        }
    }

    private void Plain(TrainingProgress p)
    {
        Update(p);
        if (p.Completed is { } m)
        {
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {m.Epoch + 1}/{p.TotalEpochs}  lr {m.LearningRate:G3}  alpha {Alpha(m)}  " +
                $"loss {m.TrainLoss:F4}  train {m.TrainTop1:F2}%  test {string.Join(" / ", m.TestTop1.Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))}%  " +
                $"top-5 {m.TestTop5:F2}%  {m.ImagesPerSecond:F0} img/s"));
        }
        else
        {
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {p.Epoch + 1}/{p.TotalEpochs}  step {p.Step}/{p.StepsPerEpoch}  loss {p.RunningLoss:F4}  top-1 {p.RunningTop1:F2}%  {p.ImagesPerSecond:F0} img/s  ETA {Eta(p)}"));
        }
    }

    private Rows Render()
    {
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]DTSKD[/] per-epoch test accuracy");
        table.AddColumns("epoch", "lr", "alpha", "loss", "train top-1");
        table.AddColumn("[bold]backbone[/]");
        for (var h = 1; h < headCount; h++)
        {
            table.AddColumn($"branch {h}");
        }

        table.AddColumns("top-5", "img/s");
        foreach (var m in _epochs.TakeLast(TableRows))
        {
            var cells = new List<string>
            {
                (m.Epoch + 1).ToString(CultureInfo.InvariantCulture), m.LearningRate.ToString("G3", CultureInfo.InvariantCulture),
                Alpha(m), m.TrainLoss.ToString("F4", CultureInfo.InvariantCulture),
                m.TrainTop1.ToString("F2", CultureInfo.InvariantCulture),
            };
            cells.AddRange(m.TestTop1.Select((t, i) => i == 0 ? $"[bold]{t.ToString("F2", CultureInfo.InvariantCulture)}[/]" : t.ToString("F2", CultureInfo.InvariantCulture)));
            cells.Add(m.TestTop5.ToString("F2", CultureInfo.InvariantCulture));
            cells.Add(m.ImagesPerSecond.ToString("F0", CultureInfo.InvariantCulture));
            table.AddRow(cells.ToArray());
        }

        if (_current is not { } p)
        {
            return new Rows(table, new Markup("[grey]starting...[/]"));
        }

        const int width = 30;
        var filled = p.StepsPerEpoch == 0 ? 0 : (int)Math.Round(width * (double)p.Step / p.StepsPerEpoch);
        var bar = new string('█', filled) + new string('░', width - filled);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"epoch [bold]{p.Epoch + 1}/{p.TotalEpochs}[/] [green]{bar}[/] {p.Step}/{p.StepsPerEpoch}  loss {p.RunningLoss:F4}  top-1 {p.RunningTop1:F2}%  {p.ImagesPerSecond:F0} img/s  ETA {Eta(p)}");
        return new Rows(table, new Markup(line));
    }

    private string Eta(TrainingProgress p)
    {
        if (p.Step == 0 || p.Completed is not null)
        {
            return "-";
        }

        var perStep = (DateTime.UtcNow - _epochStart).TotalSeconds / Math.Max(1, p.Step);
        var epochLeft = TimeSpan.FromSeconds(perStep * (p.StepsPerEpoch - p.Step));
        var runLeft = TimeSpan.FromSeconds(perStep * (((p.TotalEpochs - p.Epoch - 1) * (double)p.StepsPerEpoch) + (p.StepsPerEpoch - p.Step)));
        return $"{epochLeft:hh\\:mm\\:ss} (run {(int)runLeft.TotalHours}h{runLeft.Minutes:00}m)";
    }

    // DualTeacherLoss reports alpha_t, the one-hot label's weight; other objectives have none.
    private static string Alpha(EpochMetrics m) =>
        m.Scalars.TryGetValue("alpha", out var a) ? a.ToString("F3", CultureInfo.InvariantCulture) : "-";
}
