"""What writes the site's generated pages: the stage diffs, the invariants matrix, the CLI reference."""
