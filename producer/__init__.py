"""The producer: reads chat messages (a file, stdin, a growing file), cleans them, samples/splits a file
and enqueues micro-batches."""
