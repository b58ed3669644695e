"""What the tests share: the pytest plugin, fixtures, the site client, invariants, Kestrel, a browser."""
