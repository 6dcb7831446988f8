"""tfaesthetic: image aesthetic assessment from images and comments (MRACNN, CFAN)."""

__version__ = "0.1.0"
