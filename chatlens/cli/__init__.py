"""The top layer: the `chatlens` command and the demo, which assemble the roles."""
