"""The ConfigStore and the sources that feed it."""
