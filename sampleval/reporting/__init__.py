"""What a person reads: the report, the figures, the suspects table."""
