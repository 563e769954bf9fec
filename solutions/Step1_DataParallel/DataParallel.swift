// Step 1: data parallelism. See Lessons/01-data-parallel.md.
