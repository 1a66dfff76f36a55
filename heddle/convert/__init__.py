"""Converters from other projects' configuration to what Heddle reads (`heddle convert`)."""
