using System.Globalization;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>Culture-invariant C# literals and display numbers.</summary>
    internal static class Literals
    {
        /// <summary>A double literal that round-trips: 1E-06, 2.5, 10000.0.</summary>
        public static string Double(double value) => Units.DoubleLiteral(value);

        public static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

        public static string Bool(bool value) => value ? "true" : "false";

        /// <summary><paramref name="expression"/> + <paramref name="offset"/>, or the expression alone for 0: generated code never reads "+ 0".</summary>
        public static string Plus(string expression, long offset) => offset == 0 ? expression : $"{expression} + {Int(offset)}";

        /// <summary><paramref name="expression"/> * <paramref name="factor"/>, or the expression alone for 1.</summary>
        public static string Times(string expression, long factor) => factor == 1 ? expression : $"{expression} * {Int(factor)}";

        public static string Enum<TEnum>(TEnum value)
            where TEnum : struct => "global::ModelCompiler." + typeof(TEnum).Name + "." + value;

        /// <summary>A grouped display number: 671,026,522,112.</summary>
        public static string Grouped(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

        public static string Display(double value) => value.ToString("G7", CultureInfo.InvariantCulture);
    }
}
