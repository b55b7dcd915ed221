"""What a run records: HDR histograms, host metrics, validity, and the run folder format."""
