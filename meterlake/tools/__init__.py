"""Data tools: the synthetic month generator and the publisher into Kafka."""
