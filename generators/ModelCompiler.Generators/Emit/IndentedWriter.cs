using System;
using System.Text;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Writes C# text with 4-space indentation and '\n' newlines (CommunityToolkit's IndentedTextWriter, reduced).
    /// <see cref="WriteBlock"/> opens a brace and returns a scope whose disposal closes it.
    /// </summary>
    internal sealed class IndentedWriter
    {
        private readonly StringBuilder _builder = new();
        private int _indent;

        public void WriteLine(string line = "")
        {
            if (line.Length > 0) _builder.Append(' ', _indent * 4).Append(line);
            _builder.Append('\n');
        }

        public void WriteLineIf(bool condition, string line)
        {
            if (condition) WriteLine(line);
        }

        /// <summary>Writes each line of <paramref name="text"/> as a /// doc-comment line.</summary>
        public void WriteDocLines(string text)
        {
            foreach (string line in text.Split('\n')) WriteLine(line.Length == 0 ? "///" : "/// " + line);
        }

        /// <summary>Writes <c>/// &lt;summary&gt;text&lt;/summary&gt;</c>; the text is XML-escaped.</summary>
        public void WriteSummary(string text) => WriteLine("/// <summary>" + Xml.Escape(text) + "</summary>");

        public Block WriteBlock(string header)
        {
            WriteLine(header);
            WriteLine("{");
            _indent++;
            return new Block(this);
        }

        /// <summary>Opens a brace on its own line (after a signature or an <c>if</c> already written); disposal closes it.</summary>
        public Block WriteBraces()
        {
            WriteLine("{");
            _indent++;
            return new Block(this);
        }

        public override string ToString()
        {
            if (_indent != 0) throw new InvalidOperationException("Unbalanced blocks in generated code.");
            return _builder.ToString();
        }

        public readonly struct Block : IDisposable
        {
            private readonly IndentedWriter _writer;

            public Block(IndentedWriter writer) => _writer = writer;

            public void Dispose()
            {
                _writer._indent--;
                _writer.WriteLine("}");
            }
        }
    }

    /// <summary>XML escaping for doc comments.</summary>
    internal static class Xml
    {
        public static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
    }
}
