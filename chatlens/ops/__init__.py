"""Operating chatlens: the `chatlens status` screen and JSON, and the Prometheus exporter."""
