"""cdp: the Python side of the privacy-by-design customer data warehouse."""

__version__ = "0.1.0"
