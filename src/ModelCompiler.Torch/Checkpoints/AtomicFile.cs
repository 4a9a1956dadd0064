namespace ModelCompiler.Torch.Checkpoints;

/// <summary>Writes that never leave a half-written file: a temporary file beside the target, then a rename over it.</summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllText(string path, string text)
    {
        string temp = path + ".tmp-" + Environment.ProcessId;
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
