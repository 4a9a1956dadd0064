// plan | verify <checkpoint-dir> | generate <checkpoint-dir> --prompt-ids 1,2,3 [--max-new-tokens 12] [--bench]
return ModelName.ModelName.Module.RunCommands(args);
