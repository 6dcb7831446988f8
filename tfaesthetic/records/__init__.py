"""tfaesthetic.records."""
