"""The embedded demo: a synthetic Sentinel-2 archive over Shandong with known events."""
