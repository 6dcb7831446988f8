"""tfaesthetic.layers."""
