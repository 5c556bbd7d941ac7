"""dosi.brain: city-brain services that decide, not just observe (adaptive signal control)."""
