using System.Globalization;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>Culture-invariant C# literals and display numbers.</summary>
    internal static class Literals
    {
        /// <summary>A double literal that round-trips: 1E-06, 2.5, 10000.0.</summary>
        public static string Double(double value)
        {
            string text = value.ToString("R", CultureInfo.InvariantCulture);
            return text.IndexOf('.') >= 0 || text.IndexOf('E') >= 0 ? text : text + ".0";
        }

        public static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

        public static string Bool(bool value) => value ? "true" : "false";

        public static string Enum<TEnum>(TEnum value)
            where TEnum : struct => "global::ModelCompiler." + typeof(TEnum).Name + "." + value;

        /// <summary>A grouped display number: 671,026,522,112.</summary>
        public static string Grouped(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

        /// <summary>A short display number: 671.03 B, 187.1 M, 70.3 K.</summary>
        public static string Short(double value)
        {
            double abs = System.Math.Abs(value);
            return abs >= 1e12 ? (value / 1e12).ToString("0.###", CultureInfo.InvariantCulture) + " T"
                : abs >= 1e9 ? (value / 1e9).ToString("0.###", CultureInfo.InvariantCulture) + " B"
                : abs >= 1e6 ? (value / 1e6).ToString("0.###", CultureInfo.InvariantCulture) + " M"
                : abs >= 1e3 ? (value / 1e3).ToString("0.###", CultureInfo.InvariantCulture) + " K"
                : value.ToString("0.###", CultureInfo.InvariantCulture);
        }

        public static string Display(double value) => value.ToString("G7", CultureInfo.InvariantCulture);
    }
}
