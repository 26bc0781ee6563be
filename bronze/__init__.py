"""Bronze: every Kafka message, as it came, in Delta."""
