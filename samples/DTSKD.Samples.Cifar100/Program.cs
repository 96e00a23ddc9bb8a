using System.Runtime.InteropServices;
using DTSKD.Core;
using DTSKD.Core.Training;
using DTSKD.Samples.Cifar100;
using Spectre.Console;

// Reproduces the DTSKD paper's CIFAR-100 ResNet-18 experiment with DTSKD.Core's building blocks:
// a multi-branch ResNet, the dual-teacher loss (historical + structural teacher), and the trainer.
// Run with --help for every option.
var stop = new SampleStop();

// Ctrl+C (SIGINT) and SIGTERM (timeout, docker stop, schedulers): finish the current step, save a checkpoint and exit.
// A second signal ends the process at once.
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, stop.Handle);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, stop.Handle);

// An exception on another thread ends the process too: one line and a log of the stack, never an abort.
AppDomain.CurrentDomain.UnhandledException += (_, e) => Environment.Exit(Sample.Crash((Exception)e.ExceptionObject, Console.Error, null));
if (Console.IsOutputRedirected || Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null)
{
    // Plain output: one line per message, however long (mpirun gives each rank a terminal, but what it prints goes to a log).
    AnsiConsole.Profile.Width = 500;
}

return await Sample.RunAsync(args, AnsiConsole.Console, Console.Error, stop);

namespace DTSKD.Samples.Cifar100
{
    /// <summary>The sample's steps, callable in-process (the tests run it this way).</summary>
    public static class Sample
    {
        /// <summary>The run finished.</summary>
        public const int Ok = 0;

        /// <summary>Bad data or a bad checkpoint (missing or unreadable files, a checkpoint of another run).</summary>
        public const int Failed = 1;

        /// <summary>Bad arguments, or a run folder that cannot be used as asked (an existing run, not writable).</summary>
        public const int BadArguments = 2;

        /// <summary>The training diverged (NaN or infinite loss); the last checkpoint before it is intact.</summary>
        public const int Diverged = 3;

        /// <summary>A file of the run could not be written (disk full, no permission); what was there before is intact.</summary>
        public const int CannotWrite = 4;

        /// <summary>Another process is training in the run folder.</summary>
        public const int InUse = 5;

        /// <summary>Something unexpected (a bug): one line, and the stack in a log file it names.</summary>
        public const int Internal = 70;

        /// <summary>Stopped by Ctrl+C (SIGINT) after saving a checkpoint.</summary>
        public const int Interrupted = 130;

        /// <summary>Stopped by SIGTERM after saving a checkpoint.</summary>
        public const int Terminated = 143;

        /// <summary>Runs the command line; every outcome is an exit code and, on failure, one line on <paramref name="errors"/>.</summary>
        /// <param name="args">The command line.</param>
        /// <param name="console">Where progress goes.</param>
        /// <param name="errors">Where the one line of a failure goes.</param>
        /// <param name="stop">Ctrl+C and SIGTERM.</param>
        /// <param name="cifar100Source">Where to download CIFAR-100 from (tests give a local file).</param>
        /// <param name="configureTrainer">Called with the trainer before it runs (tests add callbacks that inject faults).</param>
        public static async Task<int> RunAsync(
            string[] args, IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source = null, Action<Trainer>? configureTrainer = null)
        {
            ArgumentNullException.ThrowIfNull(args);
            ArgumentNullException.ThrowIfNull(console);
            ArgumentNullException.ThrowIfNull(errors);
            ArgumentNullException.ThrowIfNull(stop);
            var run = new RunState();
            try
            {
                return await RunCoreAsync(args, console, errors, stop, cifar100Source, configureTrainer, run).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                return Crash(ex, errors, run.Folder, args);
            }
        }

        /// <summary>The last resort: one line naming the error and a log file with its stack (in the run folder when there is one).</summary>
        /// <returns><see cref="Internal"/>.</returns>
        public static int Crash(Exception error, TextWriter errors, string? runFolder, IEnumerable<string>? args = null)
        {
            ArgumentNullException.ThrowIfNull(error);
            ArgumentNullException.ThrowIfNull(errors);
            var name = $"crash-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log";
            var text = $"{DateTime.UtcNow:O} DTSKD.Samples.Cifar100 {string.Join(' ', args ?? [])}{Environment.NewLine}{SampleCommandLine.VersionText()}{Environment.NewLine}{error}{Environment.NewLine}";
            string? log = null;
            foreach (var folder in new[] { runFolder, Path.GetTempPath() }.Where(f => f is not null && Directory.Exists(f)))
            {
                try
                {
                    log = Path.Combine(folder!, name);
                    AtomicFile.WriteAllText(log, text);
                    break;
                }
                catch (IOException)
                {
                    log = null;
                }
            }

            var message = string.Join(" ", error.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            errors.WriteLine($"error: unexpected {error.GetType().Name}: {message} ({(log is null ? "no log could be written" : $"the details are in '{log}'")}; please report it).");
            return Internal;
        }

        private static async Task<int> RunCoreAsync(
            string[] args, IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source, Action<Trainer>? configureTrainer, RunState run)
        {
            // The command table: training (the root command, defaults: the paper's recipe), or one of the after-training
            // commands (evaluate, export, predict); help and errors of the command line itself.
            using var help = new StringWriter();
            var (request, error, helpShown) = SampleCommandLine.Parse(args, help);
            if (helpShown)
            {
                console.Write(new Text(help.ToString()));
                return Ok;
            }

            if (request is null)
            {
                errors.WriteLine($"error: {error}");
                return BadArguments;
            }

            if (request.Tool is { } tool)
            {
                return await AfterTraining.RunAsync(tool, console, errors, stop.Token).ConfigureAwait(false);
            }

            // A data-parallel run: one sample per rank, started by the launcher; rank 0 writes and speaks for the run.
            var (ranks, rankError) = SampleRanks.Start(request.Train!);
            if (ranks is null)
            {
                errors.WriteLine($"error: {rankError}");
                return BadArguments;
            }

            using (ranks)
            {
                (console, errors) = (ranks.Console(console), ranks.Errors(errors));
                foreach (var note in request.Notes)
                {
                    console.MarkupLineInterpolated($"note: {note}");
                }

                var training = new TrainCommand(console, errors, stop, cifar100Source, configureTrainer, ranks);
                int code;
                try
                {
                    code = await training.RunAsync(args, request.Train!, request.Given).ConfigureAwait(false);
                }
                catch (Exception ex) when (ranks.WorldSize > 1 && ex is not OutOfMemoryException)
                {
                    code = Crash(ex, errors, training.WrittenFolder, args);
                }
                finally
                {
                    run.Folder = training.WrittenFolder;
                }

                // A rank that cannot go on ends the job now: the others would wait for it at their next collective.
                if (ranks.WorldSize > 1 && code is not (Ok or Interrupted or Terminated))
                {
                    errors.Flush();
                    ranks.Abort(code);
                }

                return code;
            }
        }

        /// <summary>What a crash log needs to know about the run so far.</summary>
        private sealed class RunState
        {
            public string? Folder { get; set; }
        }
    }
}
