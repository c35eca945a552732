"""Writing model videos to files people open in Fiji, napari, players and browsers."""
