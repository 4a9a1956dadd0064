using System.Globalization;

namespace ModelCompiler.Planning
{
    /// <summary>Human-readable counts, FLOPs and bytes, culture-invariant; shared by the generated doc comments and the CLI.</summary>
    public static class Units
    {
        /// <summary>A count with a decimal prefix: 671.026 B, 37.552 B, 295.448 K (B = billion).</summary>
        public static string Count(long value) => Scale(value, "K", "M", "B", "T", string.Empty).Trim();

        /// <summary>FLOPs with an SI prefix: 250.456 GFLOP.</summary>
        public static string Flops(long value) => Scale(value, "k", "M", "G", "T", "FLOP");

        /// <summary>Bytes in binary units: 2.48 TiB, 68.63 KiB.</summary>
        public static string Bytes(long bytes)
        {
            string[] units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
            double value = bytes;
            int unit = 0;
            while (value >= 1024 && unit < units.Length - 1)
            {
                value /= 1024;
                unit++;
            }

            return value.ToString(unit == 0 ? "0" : "0.##", CultureInfo.InvariantCulture) + " " + units[unit];
        }

        /// <summary>A C# double literal that round-trips: 1E-06, 2.5, 10000.0.</summary>
        public static string DoubleLiteral(double value)
        {
            string text = value.ToString("R", CultureInfo.InvariantCulture);
            return text.IndexOf('.') >= 0 || text.IndexOf('E') >= 0 ? text : text + ".0";
        }

        private static string Scale(long value, string k, string m, string g, string t, string unit)
        {
            double v = value;
            (double Factor, string Prefix) p = v >= 1e12 ? (1e12, t) : v >= 1e9 ? (1e9, g) : v >= 1e6 ? (1e6, m) : v >= 1e3 ? (1e3, k) : (1, string.Empty);
            return (v / p.Factor).ToString("0.###", CultureInfo.InvariantCulture) + " " + p.Prefix + unit;
        }
    }
}
