"""Test helpers for plugin authors: a loopback protocol server with fault injection."""
