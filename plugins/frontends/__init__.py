"""Built-in front-ends, each a plugin registered through the same hook as third-party ones."""
