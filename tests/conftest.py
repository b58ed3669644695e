"""The lab's tests: at the end of the run, say where the screenshots of the browser check are."""


def pytest_terminal_summary(terminalreporter):
    # Tests record each screenshot with `record_property("screenshot", path)`.
    screenshots = {
        value: None
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "screenshot"
    }
    if screenshots:
        terminalreporter.section("screenshots")
        for path in screenshots:
            terminalreporter.write_line(path)
