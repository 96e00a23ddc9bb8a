using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace DTSKD.Benchmarks;

/// <summary>
/// The benchmarks' command-line hygiene: sizes that must be positive are checked before anything runs, comma lists of
/// sizes are checked entry by entry, and the errors a user causes (a folder that does not exist, a value a library
/// refuses) end in one line and exit 2 instead of a stack trace.
/// </summary>
public static class BenchCommandLine
{
    /// <summary>Options where 0 means something (no bombs, no least duration).</summary>
    private static readonly HashSet<Option> ZeroAllowed = [];

    /// <summary>Comma-separated lists of sizes.</summary>
    private static readonly HashSet<string> SizeLists = ["--image-sizes", "--batch-sizes"];

    /// <summary>Lets <paramref name="options"/> be 0 (call before <see cref="Check"/>).</summary>
    public static void AllowZero(params Option[] options) => ZeroAllowed.UnionWith(options);

    /// <summary>Adds the checks to every integer and real option of <paramref name="commands"/>, given or not (null: not given, not checked).</summary>
    public static void Check(params Command[] commands)
    {
        // An option shared by two commands is checked once.
        foreach (var option in commands.SelectMany(c => c.Options).Distinct())
        {
            var minimum = ZeroAllowed.Contains(option) ? 0 : 1;
            switch (option)
            {
                case Option<int> whole:
                    whole.Validators.Add(r =>
                    {
                        var value = r.GetValueOrDefault<int>();
                        if (value < minimum)
                        {
                            r.AddError($"{option.Name} must be {minimum} or more; got {value.ToString(CultureInfo.InvariantCulture)}.");
                        }
                    });
                    break;
                case Option<int?> given:
                    given.Validators.Add(r =>
                    {
                        if (r.GetValueOrDefault<int?>() is { } value && value < minimum)
                        {
                            r.AddError($"{option.Name} must be {minimum} or more; got {value.ToString(CultureInfo.InvariantCulture)}.");
                        }
                    });
                    break;
                case Option<double?> givenReal:
                    givenReal.Validators.Add(r =>
                    {
                        if (r.GetValueOrDefault<double?>() is { } value && (minimum == 0 ? !(value >= 0) : !(value > 0)))
                        {
                            r.AddError($"{option.Name} must be {(minimum == 0 ? "0 or more" : "greater than 0")}; got {value.ToString(CultureInfo.InvariantCulture)}.");
                        }
                    });
                    break;
                case Option<double> real:
                    real.Validators.Add(r =>
                    {
                        var value = r.GetValueOrDefault<double>();
                        if (minimum == 0 ? !(value >= 0) : !(value > 0))
                        {
                            r.AddError($"{option.Name} must be {(minimum == 0 ? "0 or more" : "greater than 0")}; got {value.ToString(CultureInfo.InvariantCulture)}.");
                        }
                    });
                    break;
                case Option<string> list when SizeLists.Contains(option.Name):
                    list.Validators.Add(r =>
                    {
                        var value = r.GetValueOrDefault<string>() ?? string.Empty;
                        var entries = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                        if (entries.Length == 0 || entries.Any(e => !int.TryParse(e, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1))
                        {
                            r.AddError($"{option.Name} must be whole numbers from 1, separated by commas; got '{value}'.");
                        }
                    });
                    break;
            }
        }
    }

    /// <summary>Runs the parsed command; a user's error is one line and exit 2, anything else stays a crash with its stack.</summary>
    public static int Invoke(ParseResult parsed)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        if (parsed.Errors.Count > 0)
        {
            // One line per error, without the help page (--help shows it).
            foreach (var error in parsed.Errors.Select(e => e.Message).Distinct())
            {
                Console.Error.WriteLine($"error: {error}");
            }

            return 2;
        }

        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // ImageFolderException, FileNotFoundException, InvalidDataException and a library's refused argument all say
            // what is wrong and with which file or value.
            Console.Error.WriteLine($"error: {ex.Message.Split(" (Parameter '", 2)[0].TrimEnd('.')}.");
            return 2;
        }
    }
}
