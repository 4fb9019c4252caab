"""edgebench: measure a Python service under an edge robot's limits."""
