"""The producer: reads a file of chat messages, cleans it, samples/splits it and enqueues micro-batches."""
