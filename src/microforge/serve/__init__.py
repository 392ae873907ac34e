"""``microforge serve``: a local web page to explore property targets."""
