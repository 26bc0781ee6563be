"""Local infrastructure: the single-node (or three-node) KRaft broker and a standalone
Spark cluster, for the demo, tests and benchmarks."""
