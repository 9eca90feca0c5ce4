"""livedub runtime: the Socket.IO dubbing server and its pipeline."""
