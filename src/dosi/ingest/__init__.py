"""dosi.ingest: the IoT agent that turns device measurements into hub updates."""
