using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("ModelCompiler.Generators.Tests")]
