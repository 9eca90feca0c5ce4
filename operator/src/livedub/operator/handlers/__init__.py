"""Handler bodies; ``livedub.operator.main`` registers them with kopf and does nothing else."""
