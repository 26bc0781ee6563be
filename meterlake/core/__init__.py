"""The runtime core: configuration, the SparkSession, tables, commits, checkpoints,
compaction, progress lines. The layers and every other package import it; it imports
nothing of theirs."""
