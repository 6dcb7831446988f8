"""tfaesthetic.metrics."""
