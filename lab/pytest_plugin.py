"""The name the pytest configurations load (`-p lab.pytest_plugin`); the plugin is lab.testing.plugin."""

pytest_plugins = ["lab.testing.plugin"]
