"""RQ workers: load their models once per process, then classify micro-batches, summarise conversations
and, serving the eval queue, run the nightly evaluation."""
