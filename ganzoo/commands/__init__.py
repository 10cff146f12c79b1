"""Parts of the command line (`ganzoo.cli`) that are more than argument parsing. Only the CLI imports these."""
