namespace ModelCompiler.Gpu;

/// <summary>Length checks the generated launchers make before a launch: a wrong buffer is an exception naming it, never a stray write.</summary>
public static class BufferChecks
{
    /// <summary>Rows of a [rows, <paramref name="width"/>] buffer; throws when its length is not a multiple of the width.</summary>
    public static int Rows(long length, int width, string kernel, string name)
    {
        if (length % width != 0)
        {
            throw new ArgumentException($"{kernel}: {name} holds {length} values, not a whole number of rows of {width}.", name);
        }

        return checked((int)(length / width));
    }

    /// <summary>Throws unless <paramref name="length"/> is <paramref name="expected"/>.</summary>
    public static void Length(long length, long expected, string kernel, string name)
    {
        if (length != expected)
        {
            throw new ArgumentException($"{kernel}: {name} holds {length} values; expected {expected}.", name);
        }
    }

    /// <summary>Groups of <paramref name="groupSize"/> covering <paramref name="items"/>.</summary>
    public static int Groups(long items, int groupSize) => checked((int)((items + groupSize - 1) / groupSize));
}
