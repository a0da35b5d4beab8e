"""Pure functions over the model: frames merged with symbols, trust, verdicts."""
