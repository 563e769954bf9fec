// Step 2: tensor parallelism. See Lessons/02-tensor-parallel.md.
