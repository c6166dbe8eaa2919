"""Test helpers shared by the whole suite (importable as ``tests.helpers``)."""
