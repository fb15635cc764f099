"""What an operator's tooling sees of a running agent: metrics, the heartbeat Consul probes,
systemd notifications, logging, and the HTTP listener they share."""
