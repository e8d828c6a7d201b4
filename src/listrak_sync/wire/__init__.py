"""What the SOAP and REST clients share: one bounded HTTP transport, the adaptive limiter, the
retry policy, the counters, and how the service writes dates."""
