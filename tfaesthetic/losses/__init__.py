"""tfaesthetic.losses."""
