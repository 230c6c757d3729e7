"""``sdk::multilevel_roi_align``."""
