"""Pure builders: a parsed spec in, a Kubernetes manifest dict out. No I/O, no kopf calls."""
