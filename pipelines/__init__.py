"""wirestream pipelines and command-line interface."""
