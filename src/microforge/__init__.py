"""microforge: generate alloy micrographs from target properties, and measure them."""

__version__ = "0.1.0"
