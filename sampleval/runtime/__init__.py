"""How work runs: CPU kernel pins, torch determinism, the job executor (here or on Ray) and content fingerprints."""
