using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace ModelCompiler.Generators.Model
{
    /// <summary>A source position without its syntax tree, so that it can sit in a cached record (Roslyn's Location cannot).</summary>
    /// <param name="FilePath">Path of the file.</param>
    /// <param name="TextSpan">Character span.</param>
    /// <param name="LineSpan">Line and column span.</param>
    internal sealed record LocationInfo(string FilePath, TextSpan TextSpan, LinePositionSpan LineSpan)
    {
        public Location ToLocation() => Location.Create(FilePath, TextSpan, LineSpan);

        public static LocationInfo? From(SyntaxNode? node) => node is null ? null : From(node.GetLocation());

        public static LocationInfo? From(Location? location)
        {
            if (location?.SourceTree is null) return null;
            return new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
        }
    }
}
