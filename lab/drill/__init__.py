"""The outage drill: every stage under the same failure, the same load, measured the same way."""
