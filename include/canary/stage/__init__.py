"""One stage held by its gate: the look loop, its evidence, its traffic and its state in S3."""
