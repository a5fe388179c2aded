"""Jobs over many files: the Spark helper, the per-file work, statistics and the dashboard index."""
