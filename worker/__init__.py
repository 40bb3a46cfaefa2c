"""RQ workers: load the classifiers once per process and run micro-batches through them."""
