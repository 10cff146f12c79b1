"""Generic training: loop, EMA, checkpoints, loggers, rank awareness."""
