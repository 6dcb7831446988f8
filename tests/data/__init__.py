"""Tests of tfaesthetic.data."""
