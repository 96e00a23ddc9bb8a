// Turns every ```csharp block of the README, the docs and the package readmes into a C# file of a project that compiles
// them against the packed packages (eng/consumer-check.sh builds it): a snippet that no longer compiles fails CI.
//
//   dotnet run eng/doc-snippets.cs -- <repository root> <output folder>
//
// A block compiles on its own, as the body of a method (its `using` directives hoisted, its type declarations beside
// the method). An HTML comment right before a block gives what it assumes:
//   <!-- snippet: ILogger logger, CancellationToken cancellationToken -->   the parameters the block uses
//   <!-- snippet: continues -->                                              the block goes on from the previous one
// `#line` directives make compiler errors point at the Markdown file and line.
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
#:property AnalysisLevel=none
using System.Text;
using System.Text.RegularExpressions;

var root = Path.GetFullPath(args[0]);
var output = Path.GetFullPath(args[1]);
Directory.CreateDirectory(output);
var documents = new[] { "README.md" }
    .Concat(Directory.GetFiles(Path.Combine(root, "docs"), "*.md").Select(f => Path.GetRelativePath(root, f)).Order(StringComparer.Ordinal))
    .Concat(Directory.GetFiles(Path.Combine(root, "src"), "PACKAGE.md", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f)).Order(StringComparer.Ordinal));
var typeStart = new Regex(@"^(public |internal |file )?(sealed |static |abstract |partial )*(class|record|struct|interface|enum) \w+");
var count = 0;
foreach (var document in documents)
{
    var lines = File.ReadAllLines(Path.Combine(root, document));
    var groups = new List<Group>();
    string? pending = null;
    for (var i = 0; i < lines.Length; i++)
    {
        var marker = Regex.Match(lines[i], @"^<!--\s*snippet:\s*(.*?)\s*-->\s*$");
        if (marker.Success)
        {
            pending = marker.Groups[1].Value;
            continue;
        }

        if (lines[i].TrimEnd() != "```csharp")
        {
            if (lines[i].Trim().Length > 0)
            {
                pending = null;
            }

            continue;
        }

        var start = i + 1;
        var end = start;
        while (end < lines.Length && lines[end].TrimEnd() != "```")
        {
            end++;
        }

        var block = new Block(start + 1, lines[start..end]);
        if (pending == "continues" && groups.Count > 0)
        {
            groups[^1].Blocks.Add(block);
        }
        else
        {
            groups.Add(new Group(pending ?? string.Empty, [block]));
        }

        pending = null;
        i = end;
    }

    for (var g = 0; g < groups.Count; g++)
    {
        var directives = new List<string>();
        var statements = new StringBuilder();
        var types = new StringBuilder();
        var path = Path.Combine(root, document).Replace("\\", "/", StringComparison.Ordinal);
        foreach (var block in groups[g].Blocks)
        {
            for (var l = 0; l < block.Lines.Length; l++)
            {
                var line = block.Lines[l];
                if (Regex.IsMatch(line, @"^using (static )?[\w.]+( = [\w.<>]+)?;\s*$"))
                {
                    directives.Add(line.Trim());
                    continue;
                }

                if (typeStart.IsMatch(line))
                {
                    // A type runs to its closing brace at the start of a line.
                    types.AppendLine($"#line {block.FirstLine + l} \"{path}\"");
                    for (; l < block.Lines.Length; l++)
                    {
                        types.AppendLine(block.Lines[l]);
                        if (block.Lines[l] == "}")
                        {
                            break;
                        }
                    }

                    continue;
                }

                statements.AppendLine($"#line {block.FirstLine + l} \"{path}\"");
                statements.AppendLine(line);
            }
        }

        var name = $"{Regex.Replace(document, "[^A-Za-z0-9]", "_")}_{g + 1}";
        var file = new StringBuilder();
        foreach (var directive in directives.Distinct(StringComparer.Ordinal))
        {
            file.AppendLine(directive);
        }

        file.AppendLine($"namespace Snippets.{name};");
        file.AppendLine("#line default");
        file.AppendLine("internal static class Snippet");
        file.AppendLine("{");
        file.AppendLine($"    internal static async Task Run({groups[g].Context})");
        file.AppendLine("    {");
        file.AppendLine("        await Task.CompletedTask;");
        file.Append(statements);
        file.AppendLine("#line default");
        file.AppendLine("    }");
        file.AppendLine("}");
        file.Append(types);
        File.WriteAllText(Path.Combine(output, name + ".cs"), file.ToString());
        count++;
    }
}

Console.WriteLine($"{count} snippets from {documents.Count()} documents written to {output}");

internal sealed record Block(int FirstLine, string[] Lines);

internal sealed record Group(string Context, List<Block> Blocks);
