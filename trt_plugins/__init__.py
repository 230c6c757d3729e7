"""Custom ops that carry what is awkward to export: batched NMS and multi-level RoIAlign."""
