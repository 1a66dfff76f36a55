"""The kit Heddle's own tests and benchmarks use; nothing in heddle imports it."""
