"""Tests of tfaesthetic.records."""
