#nullable enable
// Compiled at build time by MSBuild's RoslynCodeTaskFactory (see DTSKD.Core.targets), and into the
// test project with DTSKD_ELF_LOGIC_ONLY defined so the ELF logic is unit-tested without MSBuild.
// Keep it to C# that the task factory accepts (netstandard2.0 API surface, no external packages).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace DTSKD.Build
{
    /// <summary>What <see cref="ElfVersionNeeds.Weaken"/> did to one file.</summary>
    public sealed class ElfPatchReport
    {
        /// <summary>Version needs that were marked weak by this call.</summary>
        public List<string> Weakened { get; } = new List<string>();

        /// <summary>Version needs that were already weak (a second run changes nothing).</summary>
        public List<string> AlreadyWeak { get; } = new List<string>();

        /// <summary>Missing versions that some relocation really binds to: weakening them would only move the failure.</summary>
        public List<string> Blocked { get; } = new List<string>();

        /// <summary>Why the file was left alone, when it was not a 64-bit little-endian ELF with version needs.</summary>
        public string? Unsupported { get; set; }

        /// <summary>True when the file's bytes changed.</summary>
        public bool Changed => Weakened.Count > 0;
    }

    /// <summary>
    /// Reads and edits the GNU symbol-versioning tables of 64-bit little-endian ELF files (x86-64, arm64).
    /// </summary>
    /// <remarks>
    /// The dynamic loader refuses a library whose <c>.gnu.version_r</c> names a version its dependency
    /// does not define, unless that entry carries VER_FLG_WEAK. An entry that no relocation binds to is
    /// only a declaration, so marking it weak is safe: nothing is ever looked up under it.
    /// </remarks>
    public static class ElfVersionNeeds
    {
        private const uint ShtRela = 4;
        private const uint ShtRel = 9;
        private const uint ShtDynsym = 11;
        private const uint ShtGnuVerdef = 0x6ffffffd;
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const uint ShtGnuVersym = 0x6fffffff;

        /// <summary>VER_FLG_WEAK in a Vernaux entry's vna_flags.</summary>
        public const ushort VerFlagWeak = 0x2;

        /// <summary>The version names a shared library defines (its <c>.gnu.version_d</c>).</summary>
        public static HashSet<string> DefinedVersions(byte[] elf)
        {
            var result = new HashSet<string>(StringComparer.Ordinal);
            var file = Parse(elf, out var error);
            if (file == null)
            {
                throw new InvalidDataException(error);
            }

            foreach (var section in file.Sections.Where(s => s.Type == ShtGnuVerdef))
            {
                var strtab = file.Sections[(int)section.Link];
                long offset = (long)section.Offset;
                for (uint i = 0; i < section.Info; i++)
                {
                    uint aux = U32(elf, offset + 12);
                    uint next = U32(elf, offset + 16);
                    uint name = U32(elf, offset + aux);
                    result.Add(CString(elf, (long)strtab.Offset + name));
                    if (next == 0)
                    {
                        break;
                    }

                    offset += next;
                }
            }

            return result;
        }

        /// <summary>
        /// Marks weak every version that <paramref name="elf"/> needs from <paramref name="dependency"/>
        /// which is missing from <paramref name="available"/> and which no relocation binds to.
        /// Edits <paramref name="elf"/> in place; running it again changes nothing.
        /// </summary>
        public static ElfPatchReport Weaken(byte[] elf, string dependency, ISet<string> available)
        {
            var report = new ElfPatchReport();
            var file = Parse(elf, out var error);
            if (file == null)
            {
                report.Unsupported = error;
                return report;
            }

            var verneed = file.Sections.FirstOrDefault(s => s.Type == ShtGnuVerneed);
            if (verneed == null)
            {
                report.Unsupported = "it has no .gnu.version_r section";
                return report;
            }

            var strtab = file.Sections[(int)verneed.Link];
            var boundVersions = VersionIndicesBoundByRelocations(elf, file);
            long needOffset = (long)verneed.Offset;
            for (uint n = 0; n < verneed.Info; n++)
            {
                ushort count = U16(elf, needOffset + 2);
                string fileName = CString(elf, (long)strtab.Offset + U32(elf, needOffset + 4));
                long auxOffset = needOffset + U32(elf, needOffset + 8);
                for (int a = 0; a < count; a++)
                {
                    ushort flags = U16(elf, auxOffset + 4);
                    ushort index = U16(elf, auxOffset + 6);
                    string name = CString(elf, (long)strtab.Offset + U32(elf, auxOffset + 8));
                    if (fileName == dependency && !available.Contains(name))
                    {
                        if ((flags & VerFlagWeak) != 0)
                        {
                            report.AlreadyWeak.Add(name);
                        }
                        else if (boundVersions.TryGetValue(index, out var symbols))
                        {
                            report.Blocked.Add(name + " (used by " + string.Join(", ", symbols.Take(3)) + ")");
                        }
                        else
                        {
                            WriteU16(elf, auxOffset + 4, (ushort)(flags | VerFlagWeak));
                            report.Weakened.Add(name);
                        }
                    }

                    uint nextAux = U32(elf, auxOffset + 12);
                    if (nextAux == 0)
                    {
                        break;
                    }

                    auxOffset += nextAux;
                }

                uint next = U32(elf, needOffset + 12);
                if (next == 0)
                {
                    break;
                }

                needOffset += next;
            }

            return report;
        }

        /// <summary>Patches a file on disk by writing a temporary copy and renaming it over the original.</summary>
        /// <remarks>The rename gives the path a new inode, so a hard link into a package cache is never written through.</remarks>
        public static ElfPatchReport WeakenFile(string path, string dependency, ISet<string> available)
        {
            var bytes = File.ReadAllBytes(path);
            var report = Weaken(bytes, dependency, available);
            if (report.Changed)
            {
                var lastWrite = File.GetLastWriteTimeUtc(path);
                var temp = path + ".dtskd-" + Guid.NewGuid().ToString("N") + ".tmp";
                try
                {
                    File.WriteAllBytes(temp, bytes);

                    // Keeping the copy's timestamp lets incremental builds see it as up to date.
                    File.SetLastWriteTimeUtc(temp, lastWrite);
                    File.Replace(temp, path, null);
                }
                finally
                {
                    if (File.Exists(temp))
                    {
                        File.Delete(temp);
                    }
                }
            }

            return report;
        }

        /// <summary>Version indices (vna_other values) of every dynamic symbol some relocation refers to.</summary>
        private static Dictionary<ushort, List<string>> VersionIndicesBoundByRelocations(byte[] elf, ElfFile file)
        {
            var result = new Dictionary<ushort, List<string>>();
            int dynsymIndex = file.Sections.FindIndex(s => s.Type == ShtDynsym);
            var versym = file.Sections.FirstOrDefault(s => s.Type == ShtGnuVersym);
            if (dynsymIndex < 0 || versym == null)
            {
                return result;
            }

            var dynsym = file.Sections[dynsymIndex];
            var dynstr = file.Sections[(int)dynsym.Link];
            foreach (var rel in file.Sections.Where(s => (s.Type == ShtRela || s.Type == ShtRel) && s.Link == dynsymIndex))
            {
                ulong entrySize = rel.EntrySize != 0 ? rel.EntrySize : (rel.Type == ShtRela ? 24UL : 16UL);
                for (ulong off = 0; off + entrySize <= rel.Size; off += entrySize)
                {
                    ulong info = U64(elf, (long)(rel.Offset + off + 8));
                    uint symbol = (uint)(info >> 32);
                    if (symbol == 0)
                    {
                        continue;
                    }

                    ushort version = (ushort)(U16(elf, (long)versym.Offset + 2L * symbol) & 0x7fff);
                    if (!result.TryGetValue(version, out var names))
                    {
                        names = new List<string>();
                        result[version] = names;
                    }

                    if (names.Count < 3)
                    {
                        uint nameOffset = U32(elf, (long)dynsym.Offset + 24L * symbol);
                        names.Add(CString(elf, (long)dynstr.Offset + nameOffset));
                    }
                }
            }

            return result;
        }

        private sealed class ElfSection
        {
            public uint Type;
            public ulong Offset;
            public ulong Size;
            public uint Link;
            public uint Info;
            public ulong EntrySize;
        }

        private sealed class ElfFile
        {
            public List<ElfSection> Sections = new List<ElfSection>();
        }

        private static ElfFile? Parse(byte[] elf, out string error)
        {
            error = string.Empty;
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            {
                error = "it is not an ELF file";
                return null;
            }

            if (elf[4] != 2 || elf[5] != 1)
            {
                error = "it is not a 64-bit little-endian ELF file";
                return null;
            }

            ulong shoff = U64(elf, 0x28);
            ushort shentsize = U16(elf, 0x3A);
            ushort shnum = U16(elf, 0x3C);
            if (shentsize < 64 || shoff + (ulong)shnum * shentsize > (ulong)elf.Length)
            {
                error = "its section header table lies outside the file (truncated?)";
                return null;
            }

            var file = new ElfFile();
            for (int i = 0; i < shnum; i++)
            {
                long h = (long)shoff + (long)i * shentsize;
                var section = new ElfSection
                {
                    Type = U32(elf, h + 4),
                    Offset = U64(elf, h + 24),
                    Size = U64(elf, h + 32),
                    Link = U32(elf, h + 40),
                    Info = U32(elf, h + 44),
                    EntrySize = U64(elf, h + 56),
                };
                if (section.Type != 8 && section.Offset + section.Size > (ulong)elf.Length)
                {
                    error = "section " + i + " lies outside the file (truncated?)";
                    return null;
                }

                file.Sections.Add(section);
            }

            return file;
        }

        private static ushort U16(byte[] b, long o) => (ushort)(b[o] | (b[o + 1] << 8));

        private static uint U32(byte[] b, long o) => (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));

        private static ulong U64(byte[] b, long o) => U32(b, o) | ((ulong)U32(b, o + 4) << 32);

        private static void WriteU16(byte[] b, long o, ushort v)
        {
            b[o] = (byte)v;
            b[o + 1] = (byte)(v >> 8);
        }

        private static string CString(byte[] b, long o)
        {
            long end = o;
            while (end < b.Length && b[end] != 0)
            {
                end++;
            }

            return Encoding.ASCII.GetString(b, (int)o, (int)(end - o));
        }
    }

#if !DTSKD_ELF_LOGIC_ONLY
    /// <summary>
    /// MSBuild task: makes libLibTorchSharp.so in a build or publish output loadable on hosts whose
    /// libstdc++ lacks a GLIBCXX version that TorchSharp declares but never binds to.
    /// </summary>
    public sealed class WeakenMissingElfVersionNeeds : Microsoft.Build.Utilities.Task
    {
        /// <summary>The ELF files to examine (copies in the build or publish output).</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        /// <summary>The host's libstdc++.so.6, whose defined versions decide what is missing.</summary>
        public string? HostLibrary { get; set; }

        /// <summary>A folder that must never be written to (the NuGet package cache).</summary>
        public string? ProtectedRoot { get; set; }

        /// <inheritdoc />
        public override bool Execute()
        {
            string? host = string.IsNullOrEmpty(HostLibrary) ? FindHostLibStdCxx() : HostLibrary;
            if (host == null || !File.Exists(host))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                    "DTSKD: no libstdc++.so.6 found on this host; leaving TorchSharp's native library as it is.");
                return true;
            }

            HashSet<string> available;
            try
            {
                available = ElfVersionNeeds.DefinedVersions(File.ReadAllBytes(host));
            }
            catch (Exception ex) when (ex is IOException || ex is InvalidDataException || ex is UnauthorizedAccessException)
            {
                Log.LogWarning("DTSKD: could not read the versions of '{0}': {1}. TorchSharp's native library was not patched.", host, ex.Message);
                return true;
            }

            foreach (var item in Files)
            {
                string path = Path.GetFullPath(item.ItemSpec);
                if (!string.IsNullOrEmpty(ProtectedRoot) &&
                    path.StartsWith(Path.GetFullPath(ProtectedRoot!).TrimEnd('/') + "/", StringComparison.Ordinal))
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "DTSKD: skipping '{0}', it is in the package cache.", path);
                    continue;
                }

                if (new FileInfo(path).Attributes.HasFlag(FileAttributes.ReparsePoint))
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "DTSKD: skipping '{0}', it is a symbolic link.", path);
                    continue;
                }

                var report = ElfVersionNeeds.WeakenFile(path, "libstdc++.so.6", available);
                if (report.Unsupported != null)
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "DTSKD: left '{0}' alone: {1}.", path, report.Unsupported);
                }

                if (report.Changed)
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                        "DTSKD: marked {0} weak in '{1}' so it loads with '{2}' (see docs/troubleshooting.md).",
                        string.Join(", ", report.Weakened), path, host);
                }

                if (report.Blocked.Count > 0)
                {
                    Log.LogWarning(
                        "DTSKD: '{0}' needs {1} from libstdc++.so.6, which '{2}' lacks and which cannot be weakened safely. " +
                        "TorchSharp will fail to load on this host: install a newer libstdc++ (GCC 13 or later). See docs/troubleshooting.md.",
                        path, string.Join(", ", report.Blocked), host);
                }
            }

            return true;
        }

        private static string? FindHostLibStdCxx()
        {
            string[] folders =
            {
                "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                "/lib64", "/usr/lib64", "/usr/lib", "/lib",
            };
            return folders.Select(f => Path.Combine(f, "libstdc++.so.6")).FirstOrDefault(File.Exists);
        }
    }
#endif
}
