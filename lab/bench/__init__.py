"""The benchmarks: one module per `workbook bench NAME`, and the figures they share."""
