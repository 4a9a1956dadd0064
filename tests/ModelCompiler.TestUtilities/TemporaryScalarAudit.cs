using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Operations;
using TorchSharp;

namespace ModelCompiler.TestUtilities;

/// <summary>
/// Finds where C# code hands TorchSharp a <see cref="Scalar"/> that nothing keeps alive through the native call. TorchSharp
/// 0.107 passes only a Scalar's handle to libtorch, so a temporary one — an implicit conversion of a number, or one made
/// inside TorchSharp for <c>tensor + 1.0</c>, <c>a.add(b)</c>'s alpha or <c>square()</c>'s exponent — can be finalised by a
/// collection that another thread starts mid-call, and libtorch then reads freed memory (README, "Known issue").
/// </summary>
/// <remarks>
/// Which TorchSharp members make such temporaries is read from TorchSharp's own IL: every method whose body converts a
/// number to a Scalar, and every method that calls one of those, so the list follows the TorchSharp version referenced.
/// </remarks>
public static class TemporaryScalarAudit
{
    private static readonly Lazy<ImmutableHashSet<string>> s_makers = new(FindMakers);

    /// <summary>
    /// The places in <paramref name="files"/> that pass a temporary Scalar to TorchSharp or call a TorchSharp member that
    /// makes one, as "file:line: what". The files are compiled together against the assemblies beside the test, less
    /// <paramref name="compiledHere"/>: the assemblies those sources are, the test assembly last (its name is the
    /// compilation's, so that InternalsVisibleTo applies).
    /// </summary>
    public static IReadOnlyList<string> Find(IEnumerable<string> files, IEnumerable<string> globalUsings, params string[] compiledHere)
    {
        string root = RepositoryPaths.Root;
        var trees = files
            .Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), CompilationFactory.ParseOptions, path: Path.GetRelativePath(root, f)))
            .Append(CSharpSyntaxTree.ParseText(string.Join("\n", globalUsings.Select(u => $"global using {u};")), CompilationFactory.ParseOptions))
            .ToList();
        var compilation = CSharpCompilation.Create(
            compiledHere.LastOrDefault() ?? "Audited",
            trees,
            References(compiledHere),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
        if (errors.Count > 0) throw new InvalidOperationException("The audited sources do not compile:\n" + string.Join("\n", errors));

        var findings = new List<string>();
        foreach (var tree in trees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var node in tree.GetRoot().DescendantNodes())
            {
                if (model.GetOperation(node) is not { } operation || operation.Syntax != node) continue;
                if (Finding(operation) is { } what)
                {
                    findings.Add($"{tree.FilePath}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {what}");
                }
            }
        }

        return findings.Distinct().ToList();
    }

    /// <summary>The C# files of a project folder, without bin/ and obj/ (a project's generated files are added by name).</summary>
    public static IEnumerable<string> SourcesIn(string folder) =>
        Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(folder, f).Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"));

    private static string? Finding(IOperation operation)
    {
        IMethodSymbol? called = operation switch
        {
            IInvocationOperation i => i.TargetMethod,
            IBinaryOperation b => b.OperatorMethod,
            IUnaryOperation u => u.OperatorMethod,
            ICompoundAssignmentOperation c => c.OperatorMethod,
            IPropertyReferenceOperation p => p.Property.GetMethod,
            IObjectCreationOperation o => o.Constructor,
            _ => null,
        };
        if (called is not null && IsTorchSharp(called) && s_makers.Value.Contains(Key(called.OriginalDefinition)))
        {
            return $"{called.ContainingType.Name}.{called.Name}({string.Join(", ", called.Parameters.Select(p => p.Type.Name))}) makes a temporary Scalar";
        }

        if (operation is IArgumentOperation { Parameter: { } parameter } argument && IsTorchSharp(parameter.ContainingSymbol) && IsScalar(parameter.Type) && !IsKept(argument.Value))
        {
            return $"the argument '{argument.Syntax}' is a Scalar nothing keeps alive";
        }

        // An operator's operands are not arguments: tensor < 0.5 converts 0.5 for Tensor.operator <(Tensor, Scalar).
        IOperation[] operands = operation switch
        {
            IBinaryOperation b => [b.LeftOperand, b.RightOperand],
            ICompoundAssignmentOperation c => [c.Target, c.Value],
            IUnaryOperation u => [u.Operand],
            _ => [],
        };
        if (called is not null && IsTorchSharp(called))
        {
            for (int i = 0; i < operands.Length; i++)
            {
                if (IsScalar(called.Parameters[i].Type) && !IsKept(operands[i])) return $"the operand '{operands[i].Syntax}' is a Scalar nothing keeps alive";
            }
        }

        return null;
    }

    /// <summary>
    /// A Scalar lives through the call when it is a field, a method's result (a kept one), a using variable, or a local
    /// holding one of those; a local converted from a number may be collected once the JIT no longer needs it.
    /// </summary>
    private static bool IsKept(IOperation value) => value switch
    {
        IConversionOperation { OperatorMethod: not null } => false,
        IConversionOperation c => IsKept(c.Operand),
        IFieldReferenceOperation or IInvocationOperation or IPropertyReferenceOperation or IParameterReferenceOperation => true,
        ILocalReferenceOperation l => l.Local.IsUsing || InitialValue(l) is { } initial && IsKept(initial),
        IDefaultValueOperation or ILiteralOperation { ConstantValue.Value: null } => true,
        _ => false,
    };

    private static IOperation? InitialValue(ILocalReferenceOperation local) =>
        local.Local.DeclaringSyntaxReferences is [var declaration]
        && declaration.GetSyntax() is Microsoft.CodeAnalysis.CSharp.Syntax.VariableDeclaratorSyntax { Initializer.Value: { } initializer }
            ? local.SemanticModel!.GetOperation(initializer)
            : null;

    private static bool IsTorchSharp(ISymbol symbol) => symbol.ContainingAssembly?.Name == nameof(TorchSharp);

    private static bool IsScalar(ITypeSymbol type) =>
        type is INamedTypeSymbol { Name: nameof(Scalar), ContainingNamespace: { Name: nameof(TorchSharp), ContainingNamespace.IsGlobalNamespace: true } };

    private static ImmutableArray<MetadataReference> References(string[] compiledHere)
    {
        string[] platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return platform
            .Concat(Directory.GetFiles(AppContext.BaseDirectory, "*.dll"))
            .Where(p => !compiledHere.Contains(Path.GetFileNameWithoutExtension(p)))
            .DistinctBy(Path.GetFileName)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToImmutableArray();
    }

    // The same key for a Roslyn method symbol and a reflected one: type, name and parameter types without namespaces.
    private static string Key(IMethodSymbol method) =>
        $"{method.ContainingType.MetadataName}.{method.MetadataName}({string.Join(",", method.Parameters.Select(p => Name(p.Type) + (p.RefKind == RefKind.None ? "" : "&")))})";

    private static string Name(ITypeSymbol type) => type is IArrayTypeSymbol array ? Name(array.ElementType) + "[]" : type.MetadataName;

    private static string Key(MethodBase method) =>
        $"{method.DeclaringType!.Name}.{method.Name}({string.Join(",", method.GetParameters().Select(p => p.ParameterType.Name))})";

    private static ImmutableHashSet<string> FindMakers()
    {
        Assembly torchSharp = typeof(Scalar).Assembly;
        Type[] types;
        try
        {
            types = torchSharp.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            types = e.Types.OfType<Type>().ToArray(); // optional dependencies (protobuf, SkiaSharp) are not all present
        }

        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var methods = types.SelectMany(t => t.GetMethods(all).Cast<MethodBase>().Concat(t.GetConstructors(all))).ToList();
        var callers = new Dictionary<MethodBase, List<MethodBase>>();
        var makers = new HashSet<MethodBase>();
        var pending = new Queue<MethodBase>();
        foreach (var method in methods)
        {
            foreach (var callee in Callees(method))
            {
                if ((callee.DeclaringType == typeof(Scalar) && callee.Name == "op_Implicit") || callee.Name == "ToScalar")
                {
                    if (makers.Add(method)) pending.Enqueue(method);
                }
                else if (callers.TryGetValue(callee, out var known))
                {
                    known.Add(method);
                }
                else
                {
                    callers[callee] = [method];
                }
            }
        }

        while (pending.TryDequeue(out var maker))
        {
            foreach (var caller in callers.GetValueOrDefault(maker) ?? [])
            {
                if (makers.Add(caller)) pending.Enqueue(caller);
            }
        }

        // Scalar's conversions themselves are the arguments' business (IsKept), not calls to flag.
        return makers.Where(m => m.DeclaringType != typeof(Scalar) && (m.IsPublic || m.IsFamily)).Select(Key).ToImmutableHashSet();
    }

    private static readonly Lazy<Dictionary<short, OpCode>> s_opCodes = new(() => typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value));

    // The methods a method's IL calls (call, callvirt, newobj, ldftn), read opcode by opcode.
    private static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception e) when (e is FileNotFoundException or TypeLoadException or BadImageFormatException)
        {
            yield break;
        }

        if (il is null) yield break;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i++];
            if (value == 0xFE) value = (short)(0xFE00 | il[i++]);
            if (!s_opCodes.Value.TryGetValue(value, out var op)) yield break;
            if (op.OperandType == OperandType.InlineMethod)
            {
                MethodBase? callee = null;
                try
                {
                    callee = method.Module.ResolveMethod(
                        BitConverter.ToInt32(il, i),
                        method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null,
                        method.IsGenericMethod ? method.GetGenericArguments() : null);
                }
                catch (Exception e) when (e is ArgumentException or FileNotFoundException or TypeLoadException or BadImageFormatException)
                {
                }

                if (callee is not null) yield return callee is MethodInfo { IsGenericMethod: true } g ? g.GetGenericMethodDefinition() : callee;
            }

            i += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, i)),
                _ => 4,
            };
        }
    }
}
