"""The durable store: SQLModel tables, the engine, and the queries the service needs."""
