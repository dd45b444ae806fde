"""Operations: health and readiness probes, Prometheus metrics, start-up checks."""
