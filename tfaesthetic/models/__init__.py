"""tfaesthetic.models."""
